//! Holdout groups: a generated population with a known true lift, and the rules for
//! profiles that merge.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const P_CONTROL: f64 = 0.10;
const P_EXPOSED: f64 = 0.13;
const PRICE: f64 = 30.0;
const COST: f64 = 0.05;

/// 20,000 shoppers, 10% held out; exposure lifts the chance of buying the brand from
/// 10% to 13% (a true lift of +30%). Every estimate's interval covers the truth.
#[test]
fn the_interval_covers_a_known_true_lift() {
    let mut rng = StdRng::seed_from_u64(42);
    let mut log = vec![campaign(T0 - DAY, "cmp-h", "Meal", 10.0)];
    let people: Vec<[LoggedId; 1]> = (0..20_000).map(|k| [email(k)]).collect();
    let (mut exposed, mut control) = (0u64, 0u64);
    for (k, who) in people.iter().enumerate() {
        let t = T0 + k as i64 * 1_000;
        let s = Shown {
            ts: t,
            decision: 1_000_000 + k as u128,
            channel: Channel::Online,
            ids: who,
            txn: "ORD-0",
        };
        let held_out = rng.random::<f64>() < 0.1;
        if held_out {
            control += 1;
            let mut r = decision(&s, 0, "", Kind::Nofill);
            r.ids = who.to_vec();
            log.push(r);
            log.push(decision(
                &Shown { ids: &[], ..s },
                1,
                "cmp-h",
                Kind::Control,
            ));
            log.last_mut().unwrap().profile = profile_of(who);
        } else {
            exposed += 1;
            log.push(decision(&s, 0, "cmp-h", Kind::Decision));
            log.push(event(Kind::Impression, &s, 0, "cmp-h", t + 1_000, COST));
        }
        let order = |n: u32| format!("O-{k}-{n}");
        // Some bought the brand before they were ever assigned: that does not count.
        if rng.random::<f64>() < 0.05 {
            let mut b = purchase(&Bought {
                ts: t - HOUR,
                occurred: t - HOUR,
                order: &order(0),
                channel: Channel::InStore,
                ids: who,
                linked: true,
                items: &[("Meal", PRICE, 1)],
            });
            b.ts = t - HOUR;
            log.push(b);
        }
        let p = if held_out { P_CONTROL } else { P_EXPOSED };
        if rng.random::<f64>() < p {
            let channel = [Channel::Online, Channel::App, Channel::InStore][k % 3];
            log.push(purchase(&Bought {
                ts: t + DAY,
                occurred: t + DAY,
                order: &order(1),
                channel,
                ids: who,
                linked: true,
                items: &[("Meal", PRICE, 1), ("Bread", 3.0, 1)],
            }));
        }
    }
    log.sort_by_key(|r| r.ts);
    let r = run(&log);
    let c = r.campaign("cmp-h").unwrap();
    let h = c
        .holdout
        .as_ref()
        .expect("a holdout campaign has the comparison");
    assert_eq!((h.exposed.profiles, h.control.profiles), (exposed, control));
    assert_eq!(h.holdout_percent, 10.0);
    assert!((h.exposed.spend - exposed as f64 * COST).abs() < 1e-6);
    assert_eq!(h.control.spend, 0.0);
    let n = exposed as f64;
    let truth_diff = P_EXPOSED - P_CONTROL;
    let diff = h.conversion_rate_difference.unwrap();
    let lift = h.lift.unwrap();
    let conversions = h.incremental_conversions.unwrap();
    let revenue = h.incremental_revenue.unwrap();
    let roas = h.incremental_roas.unwrap();
    assert!(diff.contains(truth_diff), "{diff:?}");
    assert!(lift.contains(P_EXPOSED / P_CONTROL - 1.0), "{lift:?}");
    assert!(lift.low > 0.0, "20,000 shoppers show the effect: {lift:?}");
    assert!(conversions.contains(truth_diff * n), "{conversions:?}");
    assert!(revenue.contains(truth_diff * PRICE * n), "{revenue:?}");
    assert!(roas.contains(truth_diff * PRICE / COST), "{roas:?}");
    assert!((h.exposed.conversion_rate.unwrap() - P_EXPOSED).abs() < 0.01);
    assert!((h.control.conversion_rate.unwrap() - P_CONTROL).abs() < 0.025);
    // Bread is not the campaign's: revenue per converted profile is the meal alone.
    assert!((h.exposed.revenue / h.exposed.converted as f64 - PRICE).abs() < 1e-6);
}

/// A shopper held out on the web, then shown the campaign in the app as another
/// profile, is one shopper once linked: the first assignment (control) stands.
#[test]
fn merged_profiles_keep_their_first_assignment() {
    let mut log = vec![campaign(T0 - DAY, "cmp-h", "Meal", 50.0)];
    let web = [email(1)];
    let app = [device(1)];
    let s = Shown {
        ts: T0,
        decision: 1,
        channel: Channel::Online,
        ids: &web,
        txn: "W-1",
    };
    let mut nofill = decision(&s, 0, "", Kind::Nofill);
    nofill.ids = web.to_vec();
    log.push(nofill);
    log.push(decision(
        &Shown { ids: &[], ..s },
        1,
        "cmp-h",
        Kind::Control,
    ));
    log.last_mut().unwrap().profile = profile_of(&web);
    let s2 = Shown {
        ts: T0 + HOUR,
        decision: 2,
        channel: Channel::App,
        ids: &app,
        txn: "A-1",
    };
    log.push(decision(&s2, 0, "cmp-h", Kind::Decision));
    log.push(event(Kind::Impression, &s2, 0, "cmp-h", T0 + HOUR, 1.0));
    // A conversion carrying both links them; it buys the brand.
    let both = [email(1), device(1)];
    log.push(purchase(&Bought {
        ts: T0 + 2 * HOUR,
        occurred: T0 + 2 * HOUR,
        order: "X-1",
        channel: Channel::Online,
        ids: &both,
        linked: true,
        items: &[("Meal", 10.0, 1)],
    }));
    let r = run(&log);
    let h = r.campaign("cmp-h").unwrap().holdout.clone().unwrap();
    assert_eq!((h.exposed.profiles, h.control.profiles), (0, 1));
    assert_eq!((h.control.converted, h.control.revenue), (1, 10.0));
    assert_eq!(
        h.exposed.spend, 0.0,
        "spend on the control shopper is not the exposed group's"
    );
    // Attribution is separate from the holdout: the impression still takes the sale.
    assert_eq!(r.campaign("cmp-h").unwrap().conversions, 1);
}
