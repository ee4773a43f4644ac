//! Incremental publishing never changes an answer: a snapshot reached by random upserts
//! and removals (replacing base campaigns, replacing and removing delta ones, re-adding
//! removed ids, advertisers, categories and placements only the delta knows) matches,
//! selects and explains exactly as a full build of the same campaign set, before and
//! after compaction; and compactions racing with publishes lose no change.

use aftercart::campaign::Campaign;
use aftercart::config::PlacementRules;
use aftercart::decision::select::{SelectionInput, select};
use aftercart::ids::DecisionId;
use aftercart::index::{CompiledCampaign, Publisher, Query, SharedSnapshot, Snapshot};
use aftercart::money::Micros;
use aftercart::synth;
use arc_swap::ArcSwap;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

type Live = BTreeMap<Arc<str>, Arc<CompiledCampaign>>;
/// Selected offers: slot, campaign id, creative, eCPM.
type Picked = Vec<(u8, Arc<str>, usize, i64)>;

fn compile(c: Campaign) -> Arc<CompiledCampaign> {
    synth::compiled(vec![c]).pop().expect("one campaign")
}

/// `c` with values no base campaign has, tagged with the generation `g` (so a second
/// generation is new again after a compaction folded the first into the base), and an
/// advertiser that is either new or a base one in other case.
fn novel(mut c: Campaign, k: usize, g: usize) -> Campaign {
    let t = &mut c.targeting;
    match k % 6 {
        0 => t.placements.push(format!("kiosk-{g}")),
        1 => t.countries = vec![format!("D{g}")],
        2 => t.basket.any_categories.push(format!("garden-{g}/tools")),
        3 => t.basket.any_skus.push(format!("SKU-NEW-{g}")),
        4 => {
            t.basket.any_brands.push(format!("newbrand-{g}"));
            t.store_ids.push(format!("store-new-{g}"));
        }
        _ => {
            t.regions = vec![format!("R{g}")];
            t.loyalty_tiers.push(format!("diamond-{g}"));
        }
    }
    c.advertiser = if k % 2 == 0 {
        format!("Novel-{g}-{}", k % 3)
    } else {
        format!("ADV-{}", k % 7)
    };
    c.competitive_category = (k % 4 != 0).then(|| format!("cc-new-{g}-{}", k % 3));
    c
}

/// Mixed queries, half of them naming values of [`novel`] campaigns.
fn queries(n: usize, seed: u64) -> Vec<Query> {
    let mut rng = StdRng::seed_from_u64(seed);
    let r = &mut rng;
    let mut qs = synth::mixed_queries(n, seed);
    for q in &mut qs {
        if r.random_bool(0.5) {
            let g = r.random_range(0..2);
            match r.random_range(0..6) {
                0 => q.placement = format!("kiosk-{g}"),
                1 => q.country = Some(format!("D{g}")),
                2 => q.add_category(&format!("Garden-{g}/Tools")),
                3 => q.add_sku(&format!("SKU-NEW-{g}")),
                4 => {
                    q.add_brand(&format!("newbrand-{g}"));
                    q.store_id = Some(format!("store-new-{g}"));
                }
                _ => {
                    q.region = Some(format!("R{g}"));
                    q.loyalty_tier = Some(format!("diamond-{g}"));
                }
            }
        }
    }
    qs
}

/// Blocklists naming base and delta advertisers (in other case) and categories.
fn rules() -> PlacementRules {
    PlacementRules {
        floor_ecpm: Micros(9_000_000),
        blocked_advertisers: vec!["adv-3".into(), "novel-0-1".into(), "nobody".into()],
        blocked_categories: vec!["cc-2".into(), "cc-new-1-1".into(), "unknown".into()],
        publishable_keys: Vec::new(),
    }
}

/// What one request's answer depends on, by campaign id (indexes differ between a
/// layered snapshot and a full build).
#[derive(Debug, PartialEq)]
struct Answer {
    matching: Vec<Arc<str>>,
    winners: Vec<Picked>,
    candidates: usize,
    ranking: Vec<Arc<str>>,
    stages: Vec<(&'static str, Vec<Arc<str>>)>,
}

fn ids(snap: &Snapshot, idxs: &[u32]) -> Vec<Arc<str>> {
    let mut ids: Vec<_> = idxs.iter().map(|&i| snap.campaign(i).id.clone()).collect();
    ids.sort();
    ids
}

fn answer(snap: &Snapshot, q: &Query, i: usize, rules: &PlacementRules) -> Answer {
    let (mut by_index, mut by_scan) = (Vec::new(), Vec::new());
    snap.matching(q, true, &mut by_index);
    snap.matching(q, false, &mut by_scan);
    let matching = ids(snap, &by_index);
    assert_eq!(matching, ids(snap, &by_scan), "index and scan, query {i}");
    let input = |rules, full_scan, explain| SelectionInput {
        decision: DecisionId(i as u128 * 7919),
        slots: 1 + (i % 3) as u8,
        rules,
        explain,
        full_scan,
        creative_ok: None,
        gate: None,
    };
    let winners = [(None, false), (Some(rules), false), (Some(rules), true)]
        .into_iter()
        .map(|(rules, scan)| {
            let (winners, _) = select(snap, q, &input(rules, scan, false));
            (winners.iter())
                .map(|w| (w.slot, w.campaign.id.clone(), w.creative, w.ecpm))
                .collect()
        })
        .collect();
    let (_, explained) = select(snap, q, &input(Some(rules), false, true));
    let explained = explained.expect("an explanation");
    Answer {
        matching,
        winners,
        candidates: explained.candidates,
        ranking: explained
            .ranking
            .into_iter()
            .map(|r| r.campaign_id)
            .collect(),
        stages: (explained.stages.into_iter())
            .map(|s| {
                let mut c = s.campaigns;
                c.sort();
                (s.stage, c)
            })
            .collect(),
    }
}

/// `snap` holds exactly `live` (the very same compiled campaigns), finds each by id,
/// and answers every query as a full build of `live` does.
fn assert_equivalent(snap: &Snapshot, live: &Live, known_ids: &[Arc<str>], queries: &[Query]) {
    assert_eq!(snap.len(), live.len());
    let listed: Vec<_> = snap.campaigns().collect();
    assert_eq!(listed.len(), live.len());
    for c in listed {
        assert!(
            Arc::ptr_eq(c, &live[&c.id]),
            "{} is not its latest version",
            c.id
        );
    }
    for id in known_ids {
        match (snap.by_id(id), live.get(id)) {
            (Some(a), Some(b)) => assert!(Arc::ptr_eq(a, b), "by_id({id}): an old version"),
            (None, None) => {}
            (found, expected) => panic!(
                "by_id({id}): {:?}, expected {:?}",
                found.is_some(),
                expected.is_some()
            ),
        }
    }
    let full = Snapshot::build(live.values().cloned().collect());
    assert_eq!(snap.active_count(), full.active_count());
    let rules = rules();
    let mut filled = 0;
    for (i, q) in queries.iter().enumerate() {
        let expected = answer(&full, q, i, &rules);
        filled += expected.winners[0].len();
        assert_eq!(answer(snap, q, i, &rules), expected, "query {i}: {q:?}");
    }
    assert!(
        filled > queries.len() / 2,
        "too few winners ({filled}) to compare"
    );
}

/// Random changes over a universe of ids, with the set they should lead to.
struct Scenario {
    rng: StdRng,
    /// Every version a change may publish, by id.
    versions: BTreeMap<Arc<str>, Vec<Campaign>>,
    ids: Vec<Arc<str>>,
    /// Which [`novel`] generations changes may use.
    generations: usize,
    live: Live,
    /// The base's compiled campaigns, to tell a base campaign from a delta one.
    base: Live,
    ever_live: BTreeSet<Arc<str>>,
    /// How often each kind of change happened: every kind must, for the test to mean
    /// something.
    kinds: BTreeMap<&'static str, usize>,
}

impl Scenario {
    /// Changes to the `base` campaigns (each with a second version) and to `extra` new
    /// ids named `{prefix}-k`.
    fn new(base: &[Arc<CompiledCampaign>], seed: u64, extra: usize, prefix: &str) -> Self {
        let n = base.len();
        let variants = synth::mixed_campaigns(n, seed + 1);
        let fresh = synth::mixed_campaigns(extra, seed + 2);
        let mut versions = BTreeMap::new();
        for (c, mut v) in base.iter().zip(variants) {
            v.id = c.id.to_string();
            versions.insert(c.id.clone(), vec![(*c.doc).clone(), v]);
        }
        for (k, mut c) in fresh.into_iter().enumerate() {
            c.id = format!("{prefix}-{k}");
            versions.insert(c.id.as_str().into(), vec![c]);
        }
        let live: Live = base.iter().map(|c| (c.id.clone(), c.clone())).collect();
        Scenario {
            rng: StdRng::seed_from_u64(seed),
            ids: versions.keys().cloned().collect(),
            versions,
            generations: 1,
            ever_live: live.keys().cloned().collect(),
            base: live.clone(),
            live,
            kinds: BTreeMap::new(),
        }
    }

    /// One publish's worth of changes, applied to the expected set as `with_changes`
    /// applies them: upserts, then removals.
    fn change(&mut self) -> (Vec<Arc<CompiledCampaign>>, Vec<Arc<str>>) {
        let (mut upserts, mut removals) = (Vec::new(), Vec::new());
        for _ in 0..self.rng.random_range(1..=3) {
            let id = self.ids.choose(&mut self.rng).expect("ids").clone();
            if self.rng.random_bool(0.35) {
                removals.push(id);
                continue;
            }
            let k = self.rng.random_range(0..1_000);
            let doc = self.versions[&id].choose(&mut self.rng).expect("versions");
            let doc = if self.rng.random_bool(0.4) {
                novel(doc.clone(), k, self.rng.random_range(0..self.generations))
            } else {
                doc.clone()
            };
            upserts.push(compile(doc));
        }
        for c in &upserts {
            let kind = match self.live.get(&c.id) {
                Some(old) if self.base.get(&c.id).is_some_and(|b| Arc::ptr_eq(b, old)) => {
                    "replace a base campaign"
                }
                Some(_) => "replace a delta campaign",
                None if self.ever_live.contains(&c.id) => "re-add a removed id",
                None => "add a new id",
            };
            *self.kinds.entry(kind).or_default() += 1;
            self.live.insert(c.id.clone(), c.clone());
            self.ever_live.insert(c.id.clone());
        }
        for id in &removals {
            let kind = match self.live.remove(id) {
                Some(old) if self.base.get(id).is_some_and(|b| Arc::ptr_eq(b, &old)) => {
                    "remove a base campaign"
                }
                Some(_) => "remove a delta campaign",
                None => "remove an unknown id",
            };
            *self.kinds.entry(kind).or_default() += 1;
        }
        (upserts, removals)
    }

    fn assert_every_kind_happened(&self) {
        for kind in [
            "replace a base campaign",
            "replace a delta campaign",
            "re-add a removed id",
            "add a new id",
            "remove a base campaign",
            "remove a delta campaign",
        ] {
            assert!(
                self.kinds.contains_key(kind),
                "never: {kind} ({:?})",
                self.kinds
            );
        }
    }
}

#[test]
fn incremental_snapshots_answer_as_a_full_build_before_and_after_compaction() {
    let queries = queries(200, 41);
    let base = synth::compiled(synth::mixed_campaigns(300, 41));
    let mut scenario = Scenario::new(&base, 41, 60, "new");
    let mut snap = Snapshot::build(base);
    for step in 1..=120 {
        let (upserts, removals) = scenario.change();
        snap = snap.with_changes(&upserts, &removals);
        if step % 30 == 0 {
            assert_equivalent(&snap, &scenario.live, &scenario.ids, &queries);
        }
    }
    scenario.assert_every_kind_happened();
    assert!(snap.pending() > 100, "a delta of {}", snap.pending());

    let mut snap = snap.compacted();
    assert_eq!(snap.pending(), 0);
    assert_equivalent(&snap, &scenario.live, &scenario.ids, &queries);

    // Over the compacted base, whose dictionary now has the first generation's values,
    // with values new again in the delta.
    scenario.base = scenario.live.clone();
    scenario.generations = 2;
    scenario.kinds.clear();
    for step in 1..=80 {
        let (upserts, removals) = scenario.change();
        snap = snap.with_changes(&upserts, &removals);
        if step % 40 == 0 {
            assert_equivalent(&snap, &scenario.live, &scenario.ids, &queries);
        }
    }
    assert_equivalent(&snap.compacted(), &scenario.live, &scenario.ids, &queries);
}

#[test]
fn one_publish_may_name_an_id_twice() {
    let base = synth::compiled(synth::mixed_campaigns(20, 3));
    let snap = Snapshot::build(base.clone());
    let twice = [
        compile((*base[0].doc).clone()),
        compile((*base[0].doc).clone()),
    ];
    let next = snap.with_changes(&twice, &[]);
    assert!(Arc::ptr_eq(
        next.by_id(&base[0].id).expect("live"),
        &twice[1]
    ));
    assert_eq!(next.len(), 20);
    let gone = next.with_changes(&twice, &[base[0].id.clone(), base[1].id.clone()]);
    assert!(gone.by_id(&base[0].id).is_none() && gone.by_id(&base[1].id).is_none());
    assert_eq!(gone.len(), 18);
}

fn shared(snap: Snapshot) -> SharedSnapshot {
    Arc::new(ArcSwap::from_pointee(snap))
}

#[test]
fn compactions_racing_with_publishes_lose_no_change() {
    let queries = queries(150, 77);
    let base = synth::compiled(synth::mixed_campaigns(2_000, 77));
    // Two writers over disjoint ids, so the expected set is the union of theirs.
    let (even, odd): (Vec<_>, Vec<_>) =
        (base.iter().cloned().enumerate()).partition(|(i, _)| i % 2 == 0);
    let halves = [even, odd].map(|h| h.into_iter().map(|(_, c)| c).collect::<Vec<_>>());
    // A threshold this low keeps a compaction of 2,000 campaigns running through many
    // publishes.
    let publisher = Arc::new(Publisher::with_compaction_threshold(
        shared(Snapshot::build(base)),
        8,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (publisher, stop, queries) = (publisher.clone(), stop.clone(), queries.clone());
        thread::spawn(move || {
            let mut decisions = 0;
            while !stop.load(Ordering::Relaxed) {
                let snap = publisher.shared().load();
                let q = &queries[decisions % queries.len()];
                let input = SelectionInput {
                    decision: DecisionId(decisions as u128),
                    slots: 3,
                    rules: None,
                    explain: false,
                    full_scan: false,
                    creative_ok: None,
                    gate: None,
                };
                let (winners, _) = select(&snap, q, &input);
                assert!(winners.iter().all(|w| snap.by_id(&w.campaign.id).is_some()));
                decisions += 1;
            }
            decisions
        })
    };
    let writers: Vec<_> = (halves.into_iter().enumerate())
        .map(|(w, half)| {
            let publisher = publisher.clone();
            thread::spawn(move || {
                let mut scenario = Scenario::new(&half, 100 + w as u64, 100, &format!("new{w}"));
                scenario.generations = 2;
                for _ in 0..400 {
                    let (upserts, removals) = scenario.change();
                    publisher.publish(upserts, removals);
                }
                scenario
            })
        })
        .collect();
    let scenarios: Vec<Scenario> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();
    publisher.wait_for_compaction();
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);

    let stats = publisher.compaction_stats();
    assert!(stats.completed >= 2, "{stats:?}");
    assert!(
        stats.reapplied > 0,
        "no publish raced with a compaction: {stats:?}"
    );
    let mut live = Live::new();
    let mut ids = Vec::new();
    for s in &scenarios {
        live.extend(s.live.iter().map(|(k, v)| (k.clone(), v.clone())));
        ids.extend(s.ids.iter().cloned());
    }
    assert_equivalent(&publisher.shared().load(), &live, &ids, &queries);
}

#[test]
fn replacing_the_whole_set_wins_over_a_compaction_under_way() {
    let base = synth::compiled(synth::mixed_campaigns(2_000, 5));
    let publisher = Publisher::with_compaction_threshold(shared(Snapshot::build(base.clone())), 0);
    let mut scenario = Scenario::new(&base, 5, 10, "new");
    let (upserts, removals) = scenario.change();
    publisher.publish(upserts, removals); // starts a compaction of 2,000 campaigns
    let replacement = synth::compiled(synth::mixed_campaigns(50, 6));
    publisher.replace_all(replacement.clone());
    let change = compile((*replacement[0].doc).clone());
    publisher.publish(vec![change.clone()], vec![replacement[1].id.clone()]);
    publisher.wait_for_compaction();

    let snap = publisher.shared().load();
    let mut live: Live = replacement
        .iter()
        .map(|c| (c.id.clone(), c.clone()))
        .collect();
    live.insert(change.id.clone(), change);
    live.remove(&replacement[1].id);
    let ids: Vec<_> = (scenario.ids.iter().chain(live.keys()).cloned()).collect();
    assert_equivalent(&snap, &live, &ids, &queries(100, 5));
}
