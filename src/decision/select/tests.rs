//! Selection against a reference written the slow, obvious way: every campaign checked
//! with [`CompiledCampaign::matches`], string comparisons for rules and separation, and
//! a full sort. Through the index or by a scan, with or without `explain`, `select`
//! must pick the same winners, and `explain` must report the reference's stages.

use super::*;
use crate::index::Snapshot;
use crate::money::Micros;
use crate::synth::{mixed_campaigns, mixed_queries};
use xxhash_rust::xxh3::xxh3_64;

type Picked = Vec<(u8, Arc<str>, usize, i64)>;

/// Why the reference rejects `c`, or its eCPM.
fn verdict(
    c: &CompiledCampaign,
    q: &Query,
    rules: Option<&PlacementRules>,
    times: &mut LocalTimes,
) -> Result<i64, Stage> {
    c.matches(q, times)?;
    let ecpm = c.ecpm(PRIOR_CTR);
    if let Some(r) = rules {
        if ecpm < r.floor_ecpm.0 {
            return Err(Stage::PlacementFloor);
        }
        let advertiser = r
            .blocked_advertisers
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&c.advertiser));
        let category =
            (c.separation.as_deref()).is_some_and(|s| r.blocked_categories.iter().any(|b| b == s));
        if advertiser || category {
            return Err(Stage::PlacementBlocked);
        }
    }
    Ok(ecpm)
}

fn reference(snap: &Snapshot, q: &Query, input: &SelectionInput) -> (Picked, Vec<Arc<str>>) {
    let seed = input.decision.0 as u64;
    let mut times = LocalTimes::default();
    let mut ranked: Vec<_> = (snap.campaigns())
        .filter_map(|c| {
            let ecpm = verdict(c, q, input.rules, &mut times).ok()?;
            Some((c.priority, ecpm, tie(xxh3_64(c.id.as_bytes()), seed), c))
        })
        .collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let mut winners: Vec<&Arc<CompiledCampaign>> = Vec::new();
    let mut picked = Picked::new();
    for (_, ecpm, tie, c) in &ranked {
        if picked.len() == input.slots as usize {
            break;
        }
        let conflict = winners.iter().any(|w| {
            w.advertiser == c.advertiser
                || matches!((&w.separation, &c.separation), (Some(a), Some(b)) if a == b)
        });
        if !conflict {
            winners.push(c);
            let creative = (tie >> 32) as usize % c.creatives.len();
            picked.push((picked.len() as u8, c.id.clone(), creative, *ecpm));
        }
    }
    let order = ranked.iter().map(|r| r.3.id.clone()).collect();
    (picked, order)
}

fn picked(winners: &[Winner]) -> Picked {
    (winners.iter())
        .map(|w| (w.slot, w.campaign.id.clone(), w.creative, w.ecpm))
        .collect()
}

#[test]
fn select_agrees_with_the_reference_in_every_mode() {
    let snap = crate::synth::snapshot(mixed_campaigns(300, 9));
    let rules = PlacementRules {
        floor_ecpm: Micros(12_000_000),
        // Campaign advertisers are `Adv-N`: blocklists ignore ASCII case.
        blocked_advertisers: vec!["adv-3".into(), "nobody".into()],
        blocked_categories: vec!["cc-2".into(), "unknown".into()],
        publishable_keys: Vec::new(),
    };
    let mut filled = 0;
    for (i, q) in mixed_queries(400, 9).iter().enumerate() {
        let mut input = SelectionInput {
            decision: DecisionId(i as u128 * 7919),
            slots: 1 + (i % 4) as u8,
            rules: (i % 2 == 0).then_some(&rules),
            explain: false,
            full_scan: false,
            creative_ok: None,
            gate: None,
        };
        let (expected, order) = reference(&snap, q, &input);
        filled += expected.len();
        for (explain, full_scan) in [(false, false), (false, true), (true, false), (true, true)] {
            input.explain = explain;
            input.full_scan = full_scan;
            let (winners, report) = select(&snap, q, &input);
            assert_eq!(
                picked(&winners),
                expected,
                "query {i}, explain {explain}, scan {full_scan}"
            );
            let Some(report) = report else { continue };
            let ranking: Vec<_> = report
                .ranking
                .iter()
                .map(|r| r.campaign_id.clone())
                .collect();
            assert_eq!(ranking, order, "query {i}: the explained ranking");
            let mut times = LocalTimes::default();
            for s in report.stages.iter().filter(|s| s.stage != "separation") {
                for id in &s.campaigns {
                    let c = snap.by_id(id).expect("a loaded campaign");
                    let stage = verdict(c, q, input.rules, &mut times).err();
                    assert_eq!(stage.map(Stage::as_str), Some(s.stage), "query {i}, {id}");
                }
            }
        }
    }
    assert!(
        filled > 100,
        "too few winners ({filled}) for the comparison to mean much"
    );
}
