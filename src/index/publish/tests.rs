//! The publisher's own guarantees; that incremental snapshots answer as full builds do
//! is `tests/incremental_publish.rs`.

use super::*;
use crate::synth::{compiled, mixed_campaigns};
use arc_swap::ArcSwap;

fn publisher(n: usize) -> (Publisher, Vec<Arc<CompiledCampaign>>) {
    let campaigns = compiled(mixed_campaigns(n, 1));
    let shared = Arc::new(ArcSwap::from_pointee(Snapshot::build(campaigns.clone())));
    (Publisher::new(shared), campaigns)
}

fn ids(snap: &Snapshot) -> Vec<String> {
    let mut ids: Vec<_> = snap.campaigns().map(|c| c.id.to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn a_publisher_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Publisher>();
}

#[test]
fn a_publish_is_live_when_it_returns() {
    let (p, campaigns) = publisher(10);
    let other = compiled(mixed_campaigns(12, 2));
    p.publish(vec![other[11].clone()], vec![campaigns[3].id.clone()]);
    let snap = p.shared().load();
    assert_eq!(snap.len(), 10);
    assert!(Arc::ptr_eq(
        snap.by_id("synth-11").expect("added"),
        &other[11]
    ));
    assert!(snap.by_id("synth-3").is_none());
    assert_eq!(p.compaction_stats(), CompactionStats::default());
}

#[test]
fn a_snapshot_stored_without_the_publisher_is_built_on() {
    let (p, _) = publisher(10);
    let elsewhere = compiled(mixed_campaigns(3, 2));
    p.shared()
        .store(Arc::new(Snapshot::build(elsewhere.clone())));
    p.publish(Vec::new(), vec![elsewhere[0].id.clone()]);
    assert_eq!(ids(&p.shared().load()), ["synth-1", "synth-2"]);
}

/// A reader holding the old snapshot when it is swapped out must not be the one to free
/// it when it lets go: the publisher keeps it and frees it at its next write.
#[test]
fn readers_never_free_a_snapshot() {
    let (p, campaigns) = publisher(10);
    let held = p.shared().load_full();
    let watch = Arc::downgrade(&held);
    p.publish(vec![campaigns[0].clone()], Vec::new());
    drop(held);
    assert!(watch.upgrade().is_some(), "freed by the last reader");
    p.publish(vec![campaigns[1].clone()], Vec::new());
    assert!(watch.upgrade().is_none(), "kept after every reader let go");
}

#[test]
fn a_compaction_leaves_nothing_pending() {
    let campaigns = compiled(mixed_campaigns(50, 1));
    let shared = Arc::new(ArcSwap::from_pointee(Snapshot::build(campaigns.clone())));
    let p = Publisher::with_compaction_threshold(shared, 3);
    // Each replaces a base campaign: one in the delta, one dead, two pending.
    for c in &campaigns[..2] {
        p.publish(vec![c.clone()], Vec::new());
    }
    p.wait_for_compaction();
    let stats = p.compaction_stats();
    assert_eq!((stats.started, stats.completed), (1, 1), "{stats:?}");
    let snap = p.shared().load();
    assert_eq!(snap.pending(), 0);
    assert_eq!(snap.len(), 50);
    for c in &campaigns {
        assert!(Arc::ptr_eq(snap.by_id(&c.id).expect("live"), c));
    }
}
