//! The numbered checks ([`super::hot`]) against the reference,
//! [`CompiledCampaign::matches`]: the same verdict and the same first failing stage for
//! every campaign and request, and the index never missing a match.

use super::*;
use crate::synth::{mixed_campaigns, mixed_queries};
use std::collections::BTreeMap;
use std::sync::Arc;

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
        for (i, c) in snap.campaigns().enumerate() {
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

/// A delta numbers values the base lacks after the base's own numbers: a request value
/// only the delta knows must not look up anything in the base's tables (a new placement
/// gets the number of the base's "any placement" list), and a replaced or removed base
/// campaign must not be gathered.
#[test]
fn a_layered_snapshot_gathers_live_campaigns_once_unless_announced() {
    let base = crate::synth::compiled(mixed_campaigns(200, 8));
    let mut docs = mixed_campaigns(40, 9);
    for (i, c) in docs.iter_mut().enumerate() {
        c.id = format!("new-{i}");
        c.targeting.placements = vec![format!("kiosk-{}", i % 2)];
        c.targeting.countries.push("DE".into());
    }
    let removals: Vec<Arc<str>> = base.iter().step_by(3).map(|c| c.id.clone()).collect();
    let snap = Snapshot::build(base).with_changes(&crate::synth::compiled(docs), &removals);
    let (mut numbered, mut gathered, mut checked) = (NumberedQuery::default(), vec![], 0);
    for (i, mut q) in mixed_queries(400, 8).into_iter().enumerate() {
        if i % 2 == 0 {
            q.placement = format!("kiosk-{}", i % 3);
            q.country = Some("DE".into());
        }
        snap.number(&q, &mut numbered);
        let may_repeat = snap.gather(&numbered, &mut gathered);
        let total = gathered.len();
        gathered.sort_unstable();
        gathered.dedup();
        assert!(
            may_repeat || gathered.len() == total,
            "an unannounced repeat: {q:?}"
        );
        for &idx in &gathered {
            let c = snap.campaign(idx);
            assert!(Arc::ptr_eq(snap.by_id(&c.id).expect("live"), c), "{}", c.id);
        }
        checked += total;
    }
    assert!(checked > 1_000, "only {checked} candidates gathered");
}
