//! The targeting indexes never change an answer: over synthetic campaign sets and varied
//! requests, the campaigns matched through the index equal those found by a full scan,
//! and selection picks the same winners either way.

use aftercart::decision::select::{SelectionInput, select};
use aftercart::ids::DecisionId;
use aftercart::index::{Query, Snapshot};
use aftercart::synth;

const REQUESTS: usize = 2_000;
/// 2026-11-18T00:00:00Z, a Wednesday inside every synthetic flight.
const WEEK_START_MS: i64 = 1_794_960_000_000;
const HOUR_MS: i64 = 3_600_000;

fn snapshot(n: usize, seed: u64) -> Snapshot {
    synth::snapshot(synth::campaigns(n, seed))
}

/// Validated queries, their receive times spread over a week's hours so that daypart
/// targeting both passes and fails.
fn queries(n: usize, seed: u64) -> Vec<(Query, u8)> {
    synth::requests(REQUESTS, n, seed)
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let now_ms = WEEK_START_MS + (i as i64 * 7 % 168) * HOUR_MS;
            let valid = synth::validated(body, now_ms);
            (valid.query, valid.slots)
        })
        .collect()
}

fn check(n: usize, seed: u64) {
    let snap = snapshot(n, seed);
    let queries = queries(n, seed);
    let (mut by_index, mut by_scan) = (Vec::new(), Vec::new());
    let mut matched = 0usize;
    let mut filled = 0usize;
    for (i, (q, slots)) in queries.iter().enumerate() {
        snap.matching(q, true, &mut by_index);
        snap.matching(q, false, &mut by_scan);
        assert_eq!(
            by_index, by_scan,
            "{n} campaigns, request {i}: index and scan match different campaigns"
        );
        matched += by_index.len();

        let decision = DecisionId((seed as u128) << 64 | i as u128);
        let winners = |full_scan| {
            let input = SelectionInput {
                decision,
                slots: *slots,
                rules: None,
                explain: false,
                full_scan,
                creative_ok: None,
                gate: None,
            };
            let (winners, _) = select(&snap, q, &input);
            winners
                .iter()
                .map(|w| (w.slot, w.campaign.id.clone(), w.creative, w.ecpm))
                .collect::<Vec<_>>()
        };
        let (via_index, via_scan) = (winners(false), winners(true));
        assert_eq!(
            via_index, via_scan,
            "{n} campaigns, request {i}: index and scan select different winners"
        );
        filled += via_index.len();
    }
    let mean = matched as f64 / queries.len() as f64;
    assert!(
        (10.0..=200.0).contains(&mean),
        "{n} campaigns: a request matches {mean:.1} campaigns on average, expected 10 to 200"
    );
    assert!(
        filled > 0,
        "{n} campaigns: no request filled a slot, the comparison proves nothing"
    );
}

#[test]
fn index_agrees_with_scan_on_2000_campaigns() {
    check(2_000, 11);
}

#[test]
fn index_agrees_with_scan_on_300_campaigns() {
    check(300, 23);
}

/// Every targeting predicate in combination (`synth::mixed_campaigns`): lists of several
/// values, repeated values, values no request uses and request values no campaign uses.
#[test]
fn index_agrees_with_scan_on_mixed_targeting() {
    let snap = synth::snapshot(synth::mixed_campaigns(1_000, 31));
    let (mut by_index, mut by_scan) = (Vec::new(), Vec::new());
    let mut filled = 0;
    for (i, q) in synth::mixed_queries(1_000, 31).iter().enumerate() {
        snap.matching(q, true, &mut by_index);
        snap.matching(q, false, &mut by_scan);
        assert_eq!(by_index, by_scan, "request {i}: {q:?}");
        let winners = |full_scan| {
            let input = SelectionInput {
                decision: DecisionId(i as u128),
                slots: 3,
                rules: None,
                explain: false,
                full_scan,
                creative_ok: None,
                gate: None,
            };
            let (winners, _) = select(&snap, q, &input);
            winners
                .iter()
                .map(|w| (w.slot, w.campaign.id.clone(), w.creative, w.ecpm))
                .collect::<Vec<_>>()
        };
        let via_index = winners(false);
        assert_eq!(via_index, winners(true), "request {i}: {q:?}");
        filled += via_index.len();
    }
    assert!(filled > 100, "only {filled} slots filled");
}
