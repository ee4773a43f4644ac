//! The numbered checks ([`super::hot`]) against the reference,
//! [`CompiledCampaign::matches`]: the same verdict and the same first failing stage for
//! every campaign and request, and the index never missing a match.

use super::*;
use crate::synth::{mixed_campaigns, mixed_queries};
use std::collections::BTreeMap;

fn snapshot(n: usize, seed: u64) -> Snapshot {
    crate::synth::snapshot(mixed_campaigns(n, seed))
}

#[test]
fn numbered_checks_report_the_same_stage_as_the_reference() {
    let snap = snapshot(400, 3);
    let mut numbered = NumberedQuery::default();
    let mut stages = BTreeMap::new();
    for q in mixed_queries(300, 3) {
        snap.number(&q, &mut numbered);
        let (mut fast, mut slow) = (LocalTimes::default(), LocalTimes::default());
        for (i, c) in snap.campaigns().iter().enumerate() {
            let expected = c.matches(&q, &mut slow);
            assert_eq!(
                snap.check(i as u32, &numbered, &mut fast),
                expected,
                "campaign {} ({:?}), query {q:?}",
                c.id,
                c.doc.targeting
            );
            *stages.entry(expected.err()).or_insert(0) += 1;
        }
    }
    // Every stage should be exercised, or the comparison proves little.
    for stage in [
        None,
        Some(Stage::Flight),
        Some(Stage::Channel),
        Some(Stage::Placement),
        Some(Stage::Country),
        Some(Stage::Region),
        Some(Stage::Store),
        Some(Stage::Categories),
        Some(Stage::ExcludedCategories),
        Some(Stage::Skus),
        Some(Stage::Brands),
        Some(Stage::OrderValue),
        Some(Stage::LoyaltyTier),
        Some(Stage::Customer),
        Some(Stage::Daypart),
        Some(Stage::RequireIdentity),
    ] {
        assert!(
            stages.contains_key(&stage),
            "no case for {stage:?}: {stages:?}"
        );
    }
}

#[test]
fn the_index_finds_every_match_once_and_sorted() {
    let snap = snapshot(400, 5);
    let (mut by_index, mut by_scan, mut candidates) = (Vec::new(), Vec::new(), Vec::new());
    let mut numbered = NumberedQuery::default();
    let mut repeats = 0;
    for q in mixed_queries(500, 5) {
        snap.matching(&q, true, &mut by_index);
        snap.matching(&q, false, &mut by_scan);
        assert_eq!(by_index, by_scan, "{q:?}");

        snap.number(&q, &mut numbered);
        let may_repeat = snap.gather(&numbered, &mut candidates);
        let total = candidates.len();
        candidates.sort_unstable();
        candidates.dedup();
        assert!(
            may_repeat || candidates.len() == total,
            "an unannounced repeat: {q:?}"
        );
        repeats += usize::from(candidates.len() < total);
    }
    assert!(
        repeats > 0,
        "no request found a campaign twice: the flag is untested"
    );
}

#[test]
fn an_empty_snapshot_matches_nothing() {
    let snap = Snapshot::default();
    let mut out = vec![7];
    for q in mixed_queries(5, 1) {
        snap.matching(&q, true, &mut out);
        assert!(out.is_empty());
        snap.matching(&q, false, &mut out);
        assert!(out.is_empty());
    }
}
