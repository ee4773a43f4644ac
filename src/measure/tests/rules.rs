//! The attribution rules, one hand-built log each.

use super::*;
use crate::measure::format::{Format, write};
use crate::measure::model::CampaignRow;

fn row<'a>(r: &'a Report, id: &str) -> &'a CampaignRow {
    r.campaign(id).unwrap_or_else(|| panic!("no row for {id}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// One shopper shown campaigns on the web at `ts` (one slot each, in order).
fn shown<'a>(ts: i64, decision: u128, ids: &'a [LoggedId], txn: &'a str) -> Shown<'a> {
    Shown {
        ts,
        decision,
        channel: Channel::Online,
        ids,
        txn,
    }
}

fn bought<'a>(
    at: i64,
    order: &'a str,
    channel: Channel,
    ids: &'a [LoggedId],
    items: &'a [(&'a str, f64, u32)],
) -> Bought<'a> {
    Bought {
        ts: at,
        occurred: at,
        order,
        channel,
        ids,
        linked: true,
        items,
    }
}

/// The classic connected-commerce example: spend 50,000, online revenue 200,000 and
/// in-store revenue 620,000 from the same exposures: online-only ROAS 4.0, connected
/// ROAS 16.4.
#[test]
fn connected_roas_counts_the_store_online_roas_does_not() {
    let mut log = vec![campaign(T0 - DAY, "cmp-acme", "Acme", 0.0)];
    let ids: Vec<[LoggedId; 2]> = (0..5).map(|k| [email(k), loyalty(k)]).collect();
    let online: Vec<[LoggedId; 1]> = (0..5).map(|k| [email(k)]).collect();
    let store: Vec<[LoggedId; 1]> = (0..5).map(|k| [loyalty(k)]).collect();
    let orders: Vec<(String, String)> = (0..5)
        .map(|k| (format!("WEB-{k}"), format!("POS-{k}")))
        .collect();
    for (k, who) in ids.iter().enumerate() {
        let s = shown(T0 + k as i64 * MIN, 100 + k as u128, who, "ORD-X");
        log.push(decision(&s, 0, "cmp-acme", Kind::Decision));
        log.push(event(
            Kind::Impression,
            &s,
            0,
            "cmp-acme",
            s.ts + 1_000,
            10_000.0,
        ));
    }
    for k in 0..5 {
        let at = T0 + HOUR + k as i64 * MIN;
        log.push(purchase(&bought(
            at,
            &orders[k].0,
            Channel::Online,
            &online[k],
            &[("Acme", 40_000.0, 1)],
        )));
        log.push(purchase(&bought(
            at + MIN,
            &orders[k].1,
            Channel::InStore,
            &store[k],
            &[("acme", 62_000.0, 2)],
        )));
    }
    let r = run(&log);
    let c = row(&r, "cmp-acme");
    assert_eq!(c.spend, 50_000.0);
    assert_eq!(
        (c.revenue.online, c.revenue.in_store, c.revenue.app),
        (200_000.0, 620_000.0, 0.0)
    );
    assert!(
        close(c.roas_online_only.unwrap(), 4.0),
        "{:?}",
        c.roas_online_only
    );
    assert!(close(c.roas.unwrap(), 16.4), "{:?}", c.roas);
    assert_eq!((c.conversions, c.cross_channel_conversions), (10, 5));
    assert_eq!(c.cross_channel_rate, Some(0.5));
    assert_eq!((c.decisions, c.impressions, c.clicks), (5, 5, 0));
    assert_eq!(c.name.as_deref(), Some("cmp-acme name"));
    assert_eq!(r.overall.identity_resolution_rate, Some(1.0));
    assert_eq!(r.overall.attributed_orders, 10);
    assert!(close(r.totals.roas.unwrap(), 16.4));

    // Every format shows it.
    let text = |f: Format| {
        let mut out = Vec::new();
        write(&r, f, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let table = text(Format::Table);
    assert!(
        table.contains("cmp-acme") && table.contains("16.40x") && table.contains("4.00x"),
        "{table}"
    );
    assert!(table.contains("620,000.00"), "{table}");
    let csv = text(Format::Csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2);
    let head: Vec<&str> = lines[0].split(',').collect();
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(head.len(), crate::measure::format::CSV_COLUMNS.len());
    assert_eq!(cells.len(), head.len());
    let at = |name: &str| cells[head.iter().position(|h| *h == name).unwrap()];
    assert_eq!((at("roas"), at("roas_online_only")), ("16.4", "4"));
    let json: serde_json::Value = serde_json::from_str(&text(Format::Json)).unwrap();
    assert_eq!(json["campaigns"][0]["revenue"]["in_store"], 620_000.0);
    assert_eq!(json["campaigns"][0]["roas"], 16.4);
    let back: Report = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    let html = text(Format::Html);
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<svg") && html.contains("16.40x")
    );
    for external in ["<script", "src=", "<link", "url("] {
        assert!(
            !html.contains(external),
            "the page must be self-contained: {external}"
        );
    }
}

#[test]
fn a_click_beats_a_later_view_and_the_last_of_a_kind_wins() {
    let mut log = vec![
        campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0),
        campaign(T0 - DAY, "cmp-b", "Crunchy", 0.0),
    ];
    let who: Vec<[LoggedId; 1]> = (0..3).map(|k| [email(k)]).collect();
    let item = [("Crunchy", 10.0, 1)];
    for (k, (a_click, b_click)) in [(true, false), (false, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        let s = shown(T0, 10 + k as u128, &who[k], "ORD-0");
        log.push(decision(&s, 0, "cmp-a", Kind::Decision));
        log.push(decision(&s, 1, "cmp-b", Kind::Decision));
        log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + MIN, 0.01));
        if a_click {
            log.push(event(Kind::Click, &s, 0, "cmp-a", T0 + MIN, 0.5));
        }
        log.push(event(Kind::Impression, &s, 1, "cmp-b", T0 + 10 * MIN, 0.01));
        if b_click {
            log.push(event(Kind::Click, &s, 1, "cmp-b", T0 + 10 * MIN, 0.5));
        }
        let order = format!("ORD-{}", k + 1);
        log.push(purchase(&bought(
            T0 + HOUR,
            &order,
            Channel::Online,
            &who[k],
            &item,
        )));
    }
    let r = run(&log);
    // Shopper 0: clicked A, only saw B later → A. Shopper 1: saw both → B, the later.
    // Shopper 2: clicked both → B, the later click.
    assert_eq!(
        (row(&r, "cmp-a").conversions, row(&r, "cmp-b").conversions),
        (1, 2)
    );
    assert_eq!(
        (
            row(&r, "cmp-a").revenue.total,
            row(&r, "cmp-b").revenue.total
        ),
        (10.0, 20.0)
    );
    assert_eq!(row(&r, "cmp-a").clicks + row(&r, "cmp-b").clicks, 3);
}

#[test]
fn exposures_outside_their_window_are_not_credited() {
    let mut log = vec![campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0)];
    let who: Vec<[LoggedId; 1]> = (0..3).map(|k| [email(k)]).collect();
    let item = [("Crunchy", 10.0, 1)];
    // Shopper 0 saw it and bought two days later (view window 1 day); shopper 1 clicked
    // and bought 15 days later (click window 14 days); shopper 2 clicked, bought after 13.
    for (k, click, after) in [
        (0, false, 2 * DAY),
        (1, true, 15 * DAY),
        (2, true, 13 * DAY),
    ] {
        let s = shown(T0, 20 + k as u128, &who[k], "ORD-0");
        log.push(decision(&s, 0, "cmp-a", Kind::Decision));
        log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + MIN, 0.01));
        if click {
            log.push(event(Kind::Click, &s, 0, "cmp-a", T0 + MIN, 0.5));
        }
        let at = T0 + MIN + after;
        let order = format!("BUY-{k}");
        log.push(purchase(&bought(
            at,
            &order,
            Channel::Online,
            &who[k],
            &item,
        )));
    }
    log.sort_by_key(|r| r.ts);
    let r = run(&log);
    assert_eq!(
        row(&r, "cmp-a").conversions,
        1,
        "only the purchase 13 days after a click"
    );
    // A longer view window credits the view two days before.
    let wide = Options {
        view_window_ms: 3 * DAY,
        ..Options::default()
    };
    assert_eq!(row(&run_with(&log, &wide), "cmp-a").conversions, 2);
}

#[test]
fn an_exposure_after_the_purchase_is_not_credited() {
    let mut log = vec![campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0)];
    let who = [email(1)];
    let s = shown(T0 + HOUR, 30, &who, "ORD-0");
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + HOUR, 0.01));
    // Bought at T0, reported by the POS two hours later: the impression came after.
    let mut late = bought(
        T0 + 2 * HOUR,
        "POS-1",
        Channel::InStore,
        &who,
        &[("Crunchy", 10.0, 1)],
    );
    late.occurred = T0;
    log.push(purchase(&late));
    // Another shopper's purchase stamped four minutes ahead of the server's clock: an
    // impression the server receives after the conversion record cannot have caused it.
    let other = [email(2)];
    let mut skewed = bought(
        T0 + 3 * HOUR,
        "POS-2",
        Channel::InStore,
        &other,
        &[("Crunchy", 10.0, 1)],
    );
    skewed.occurred = T0 + 3 * HOUR + 4 * MIN;
    log.push(purchase(&skewed));
    let s2 = shown(T0 + 3 * HOUR + MIN, 31, &other, "ORD-9");
    log.push(decision(&s2, 0, "cmp-a", Kind::Decision));
    log.push(event(
        Kind::Impression,
        &s2,
        0,
        "cmp-a",
        T0 + 3 * HOUR + MIN,
        0.01,
    ));
    let r = run(&log);
    assert_eq!(row(&r, "cmp-a").conversions, 0);
    assert_eq!(r.overall.purchases, 2);
}

#[test]
fn the_order_that_triggered_a_decision_is_not_credited_to_it() {
    let mut log = vec![campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0)];
    let who = [loyalty(1)];
    let item = [("Crunchy", 10.0, 1)];
    // At the POS after payment: the decision is for ORD-1, whose conversion the POS
    // posts a minute later, timestamped after the impression.
    let s = Shown {
        channel: Channel::InStore,
        ..shown(T0, 40, &who, "ORD-1")
    };
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + 1_000, 0.01));
    log.push(purchase(&bought(
        T0 + MIN,
        "ORD-1",
        Channel::InStore,
        &who,
        &item,
    )));
    let r = run(&log);
    assert_eq!(row(&r, "cmp-a").conversions, 0);
    // The next order is credited to it; and an earlier decision's exposure may take
    // the triggering order.
    log.push(purchase(&bought(
        T0 + 2 * MIN,
        "ORD-2",
        Channel::InStore,
        &who,
        &item,
    )));
    let s2 = Shown {
        channel: Channel::InStore,
        ..shown(T0 + 3 * MIN, 41, &who, "ORD-3")
    };
    log.push(decision(&s2, 0, "cmp-a", Kind::Decision));
    log.push(event(
        Kind::Impression,
        &s2,
        0,
        "cmp-a",
        T0 + 3 * MIN + 1_000,
        0.01,
    ));
    log.push(purchase(&bought(
        T0 + 4 * MIN,
        "ORD-3",
        Channel::InStore,
        &who,
        &item,
    )));
    let r = run(&log);
    let c = row(&r, "cmp-a");
    assert_eq!(
        (c.conversions, c.revenue.in_store),
        (2, 20.0),
        "ORD-2 and ORD-3"
    );
}

#[test]
fn refunds_take_back_what_their_purchase_was_credited() {
    let mut log = vec![campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0)];
    let who = [email(1)];
    let s = shown(T0, 50, &who, "ORD-0");
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + 1_000, 1.0));
    let items = [
        ("Crunchy", 30.0, 2),
        ("Crunchy", 20.0, 1),
        ("Other", 99.0, 1),
    ];
    log.push(purchase(&bought(
        T0 + MIN,
        "R-1",
        Channel::Online,
        &who,
        &items,
    )));
    let whole = [("Crunchy", 100.0, 1)];
    log.push(purchase(&bought(
        T0 + 2 * MIN,
        "R-2",
        Channel::Online,
        &who,
        &whole,
    )));
    let r = run(&log);
    assert_eq!(
        (
            row(&r, "cmp-a").revenue.online,
            row(&r, "cmp-a").conversions
        ),
        (180.0, 2)
    );

    // One unit of the 30 back, and a quarter of R-2 by total alone.
    let one = [("Crunchy", 30.0, 1)];
    log.push(conversion(
        &bought(T0 + HOUR, "R-1", Channel::Online, &who, &one),
        ConversionType::Refund,
    ));
    let mut quarter = conversion(
        &bought(T0 + HOUR, "R-2", Channel::Online, &who, &[]),
        ConversionType::Refund,
    );
    quarter.total = Some(m(25.0));
    log.push(quarter);
    let r = run(&log);
    assert_eq!(
        (
            row(&r, "cmp-a").revenue.online,
            row(&r, "cmp-a").conversions
        ),
        (125.0, 2)
    );
    assert_eq!(r.overall.refunds, 2);

    // The rest of R-1's credited items: its conversion goes, the other order stays.
    let rest = [("Crunchy", 30.0, 5), ("Crunchy", 20.0, 1)];
    log.push(conversion(
        &bought(T0 + 2 * HOUR, "R-1", Channel::Online, &who, &rest),
        ConversionType::Refund,
    ));
    let r = run(&log);
    let c = row(&r, "cmp-a");
    assert_eq!(
        (c.revenue.online, c.conversions),
        (75.0, 1),
        "never more than was bought"
    );
    assert_eq!(r.overall.attributed_orders, 1);
}

#[test]
fn an_item_goes_to_one_campaign_only() {
    let mut log = vec![
        campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0),
        campaign(T0 - DAY, "cmp-b", "Crunchy", 0.0),
        campaign(T0 - DAY, "cmp-c", "Fizz", 0.0),
    ];
    let who = [email(1)];
    let s = shown(T0, 60, &who, "ORD-0");
    for (slot, c) in ["cmp-a", "cmp-b", "cmp-c"].into_iter().enumerate() {
        log.push(decision(&s, slot as u8, c, Kind::Decision));
        log.push(event(
            Kind::Impression,
            &s,
            slot as u8,
            c,
            T0 + slot as i64 * 1_000,
            0.01,
        ));
    }
    let items = [("Crunchy", 10.0, 1), ("Fizz", 5.0, 2), ("Plain", 7.0, 1)];
    log.push(purchase(&bought(
        T0 + HOUR,
        "ORD-1",
        Channel::Online,
        &who,
        &items,
    )));
    let r = run(&log);
    let (a, b, c) = (row(&r, "cmp-a"), row(&r, "cmp-b"), row(&r, "cmp-c"));
    assert_eq!(
        (a.revenue.total, b.revenue.total, c.revenue.total),
        (0.0, 10.0, 10.0)
    );
    assert_eq!((a.conversions, b.conversions, c.conversions), (0, 1, 1));
    assert_eq!(
        r.totals.revenue.total, 20.0,
        "the unmatched item goes nowhere"
    );
    assert_eq!(r.overall.attributed_orders, 1);
}

#[test]
fn a_later_event_with_both_identifiers_links_channels() {
    let mut log = vec![campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0)];
    let web = [email(7)];
    let pos = [loyalty(7)];
    let both = [email(7), loyalty(7)];
    let s = shown(T0, 70, &web, "ORD-0");
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + 1_000, 0.01));
    log.push(purchase(&bought(
        T0 + HOUR,
        "POS-7",
        Channel::InStore,
        &pos,
        &[("Crunchy", 12.0, 1)],
    )));
    let r = run(&log);
    assert_eq!(
        row(&r, "cmp-a").conversions,
        0,
        "nothing links the card to the web yet"
    );
    assert_eq!(r.overall.identity_resolution_rate, Some(0.0));

    // A day later the shopper logs into the app with both: the in-store purchase was
    // this profile's all along.
    let app = Shown {
        channel: Channel::App,
        ..shown(T0 + DAY, 71, &both, "APP-1")
    };
    log.push(decision(&app, 0, "", Kind::Nofill));
    let r = run(&log);
    let c = row(&r, "cmp-a");
    assert_eq!(
        (
            c.conversions,
            c.revenue.in_store,
            c.cross_channel_conversions
        ),
        (1, 12.0, 1)
    );
    assert_eq!(r.overall.identity_resolution_rate, Some(1.0));
    assert_eq!(r.overall.cross_channel_rate, Some(1.0));
}

#[test]
fn in_unit_purchases_count_once() {
    let mut log = vec![campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0)];
    let who = [email(1)];
    let s = shown(T0, 80, &who, "ORD-0");
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + 1_000, 0.02));
    let mut p = Record::new(Kind::Purchase, T0 + MIN);
    p.decision_id = Some(H128(80));
    p.slot = Some(0);
    p.campaign = Some("cmp-a".into());
    p.channel = Some(Channel::Online);
    p.profile = profile_of(&who);
    p.order_id = Some("ac_1".into());
    p.sku = Some("SKU-77".into());
    p.quantity = Some(2);
    p.price = Some(m(19.99));
    p.total = Some(m(39.98));
    p.occurred = Some(T0 + MIN);
    log.push(p);
    // The retailer's order system posts the same order again, and an unrelated one.
    let item = [("Crunchy", 19.99, 2)];
    log.push(purchase(&bought(
        T0 + 2 * MIN,
        "ac_1",
        Channel::Online,
        &who,
        &item,
    )));
    let r = run(&log);
    let c = row(&r, "cmp-a");
    assert_eq!((c.conversions, c.revenue.online), (1, 39.98));
    assert_eq!(r.overall.purchases, 1);
}

#[test]
fn erased_profiles_are_never_attributed_but_their_spend_counts() {
    let mut log = vec![campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0)];
    let who = [email(9), device(9)];
    let s = shown(T0, 90, &who, "ORD-0");
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + 1_000, 2.0));
    log.push(purchase(&bought(
        T0 + HOUR,
        "ORD-1",
        Channel::Online,
        &who,
        &[("Crunchy", 10.0, 1)],
    )));
    assert_eq!(row(&run(&log), "cmp-a").conversions, 1);
    let mut erasure = Record::new(Kind::Erasure, T0 + DAY);
    erasure.ids = vec![device(9)];
    log.push(erasure);
    let r = run(&log);
    let c = row(&r, "cmp-a");
    assert_eq!((c.conversions, c.spend, c.impressions), (0, 2.0, 1));
}

#[test]
fn requests_fill_rate_and_identity_resolution() {
    let mut log = vec![
        campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0),
        campaign(T0 - DAY, "cmp-b", "Fizz", 0.0),
    ];
    let who = [email(1)];
    let s = shown(T0, 1, &who, "ORD-0");
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(decision(&s, 1, "cmp-b", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + 1_000, 0.5));
    log.push(event(Kind::Click, &s, 0, "cmp-a", T0 + 2_000, 1.25));
    let s2 = shown(T0 + MIN, 2, &who, "ORD-1");
    log.push(decision(&s2, 0, "", Kind::Nofill));
    let stranger = [loyalty(99)];
    log.push(purchase(&bought(
        T0 + HOUR,
        "A",
        Channel::Online,
        &who,
        &[("Plain", 1.0, 1)],
    )));
    log.push(purchase(&bought(
        T0 + HOUR,
        "B",
        Channel::InStore,
        &stranger,
        &[("Plain", 1.0, 1)],
    )));
    let r = run(&log);
    let p = &r.placements[0];
    assert_eq!(
        (p.placement.as_str(), p.channel.as_str()),
        ("order_confirmation", "online")
    );
    assert_eq!(
        (p.requests, p.filled, p.offers, p.fill_rate),
        (2, 1, 2, Some(0.5))
    );
    assert_eq!((p.impressions, p.clicks, p.revenue), (1, 1, 1.75));
    assert_eq!(row(&r, "cmp-a").ctr, Some(1.0));
    assert_eq!(row(&r, "cmp-b").ctr, None);
    assert_eq!(r.overall.identity_resolution_rate, Some(0.5));
    assert_eq!((r.overall.profiles, r.overall.identifiers), (1, 2));
    assert_eq!(r.log.records, log.len() as u64);
    assert_eq!(r.log.kinds["decision"], 2);
}

#[test]
fn the_period_and_campaign_filters() {
    let mut log = vec![
        campaign(T0 - DAY, "cmp-a", "Crunchy", 0.0),
        campaign(T0 - DAY, "cmp-b", "Fizz", 0.0),
    ];
    let who = [email(1)];
    let s = shown(T0, 1, &who, "ORD-0");
    log.push(decision(&s, 0, "cmp-a", Kind::Decision));
    log.push(decision(&s, 1, "cmp-b", Kind::Decision));
    log.push(event(Kind::Impression, &s, 0, "cmp-a", T0 + 1_000, 3.0));
    log.push(event(Kind::Impression, &s, 1, "cmp-b", T0 + 1_000, 3.0));
    log.push(purchase(&bought(
        T0 + 2 * HOUR,
        "A",
        Channel::Online,
        &who,
        &[("Crunchy", 9.0, 1)],
    )));
    // From an hour after the exposure: its spend is outside, the purchase inside and
    // still credited to it (the window looks back past `from`).
    let later = Options {
        from_ms: Some(T0 + HOUR),
        ..Options::default()
    };
    let r = run_with(&log, &later);
    let a = row(&r, "cmp-a");
    assert_eq!(
        (a.spend, a.decisions, a.conversions, a.revenue.total),
        (0.0, 0, 1, 9.0)
    );
    assert_eq!(a.roas, None);
    let only_b = Options {
        campaign: Some("cmp-b".into()),
        to_ms: Some(T0 + HOUR),
        ..Options::default()
    };
    let r = run_with(&log, &only_b);
    assert_eq!(r.campaigns.len(), 1);
    assert_eq!((r.totals.spend, r.totals.conversions), (3.0, 0));
    assert_eq!(r.overall.purchases, 0, "the purchase is after `to`");
    let data = write_log(&log);
    let one = crate::measure::campaign_report(data.path(), "cmp-a", &Options::default()).unwrap();
    assert_eq!(one.map(|c| c.conversions), Some(1));
    assert!(
        crate::measure::campaign_report(data.path(), "nope", &Options::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn windows_and_times_parse() {
    use crate::measure::{parse_time, parse_window};
    assert_eq!(parse_window("14d"), Ok(14 * DAY));
    assert_eq!(parse_window("36h"), Ok(36 * HOUR));
    assert_eq!(parse_window("2w"), Ok(14 * DAY));
    assert!(
        parse_window("14").is_err() && parse_window("d").is_err() && parse_window("-1d").is_err()
    );
    assert_eq!(
        parse_time("2026-11-21T18:00:00Z", false),
        Ok(1_795_284_000_000)
    );
    assert_eq!(parse_time("2026-11-21", false), Ok(1_795_219_200_000));
    assert_eq!(parse_time("2026-11-21", true), Ok(1_795_219_200_000 + DAY));
    assert!(parse_time("yesterday", false).is_err());
}

#[test]
fn an_empty_or_missing_log() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("log")).unwrap();
    let r = report(data.path(), &Options::default()).unwrap();
    assert_eq!((r.log.records, r.campaigns.len()), (0, 0));
    assert!(report(&data.path().join("nowhere"), &Options::default()).is_err());
}
