//! The identity graph's tests: linking across channels, merges, the size bound, erasure,
//! concurrency against a sequential run and a plain union-find. Checkpoints have their
//! own in `checkpoint/tests.rs`, with these helpers.

use super::store::{Ref, SHARDS};
use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// A well-spread identifier hash, cheaper than the real HMAC for a million of them.
pub(super) fn id(kind: IdKind, n: u64) -> IdHash {
    IdHash {
        kind,
        hash: xxh3_128_with_seed(&n.to_le_bytes(), durability(kind) as u64),
    }
}

fn sorted(mut ids: Vec<IdHash>) -> Vec<IdHash> {
    ids.sort();
    ids
}

/// Everything the graph promises about its own layout, checked under all its locks:
/// each profile's founder refers to its record, its ring has exactly `size` members,
/// each pointing at the founder and findable by its hash, and the rings hold every
/// stored identifier once.
pub(super) fn check(g: &IdentityGraph) {
    let guards: Vec<_> = (0..SHARDS).map(|s| g.shards[s].read().unwrap()).collect();
    let mut in_rings = 0;
    for (s, shard) in guards.iter().enumerate() {
        for (slot, meta) in shard.profiles() {
            let founder = Ref::new(s, meta.founder);
            let record = shard.entry(meta.founder).unwrap().record();
            assert_eq!(record, Some(Ref::new(s, slot)));
            let mut at = founder;
            for _ in 0..meta.size {
                let e = guards[at.shard()].entry(at.slot()).unwrap();
                assert_eq!(e.founder(at), founder);
                assert_eq!(guards[at.shard()].find(e.hash()), Some(at.slot()));
                at = e.next();
            }
            assert_eq!(at, founder, "a ring closes after exactly `size` members");
            in_rings += meta.size as usize;
        }
    }
    let stored: usize = guards.iter().map(|g| g.identifier_count()).sum();
    assert_eq!(in_rings, stored);
}

pub(super) fn graph(max: u16) -> IdentityGraph {
    IdentityGraph::new(GraphConfig {
        max_profile_size: max,
    })
}

#[test]
fn identifiers_from_three_channels_become_one_profile() {
    let g = graph(64);
    let (loyalty, card) = (id(IdKind::LoyaltyId, 1), id(IdKind::PaymentToken, 1));
    let (device, email) = (id(IdKind::DeviceId, 1), id(IdKind::EmailSha256, 1));

    // In store: the loyalty card and the payment card. The loyalty id is the more
    // durable, so it founds the profile and names it.
    let pos = g.link(&[card, loyalty]).unwrap();
    assert!(!pos.known);
    assert_eq!(pos.profile, ProfileId(loyalty.hash));
    // In the app, signed in to the loyalty account; on the web, from the same device.
    let app = g.link(&[device, loyalty]).unwrap();
    let web = g.link(&[email, device]).unwrap();
    for linked in [&app, &web] {
        assert!(linked.known && !linked.refused && linked.merged.is_empty());
        assert_eq!(linked.profile, pos.profile);
    }
    for x in [loyalty, card, device, email] {
        assert_eq!(g.profile_of(x), Some(pos.profile));
    }
    let members = g.members(pos.profile);
    assert_eq!(members[0], loyalty, "founder first");
    assert_eq!(sorted(members), sorted(vec![loyalty, card, device, email]));
    assert_eq!(g.stats().identifiers, 4);
    assert_eq!(g.stats().profiles, 1);
    check(&g);
}

#[test]
fn separate_profiles_join_when_a_link_connects_them() {
    let g = graph(64);
    let device = g.link(&[id(IdKind::DeviceId, 1)]).unwrap().profile;
    let web = g.link(&[id(IdKind::EmailSha256, 1)]).unwrap().profile;
    let pos = g.link(&[id(IdKind::LoyaltyId, 1)]).unwrap().profile;

    let l = g
        .link(&[id(IdKind::EmailSha256, 1), id(IdKind::DeviceId, 1)])
        .unwrap();
    assert_eq!(l.profile, device, "the oldest profile survives");
    assert_eq!(
        l.merged,
        vec![Merge {
            absorbed: web,
            into: device
        }]
    );
    let l = g
        .link(&[id(IdKind::LoyaltyId, 1), id(IdKind::DeviceId, 1)])
        .unwrap();
    assert_eq!(
        l.merged,
        vec![Merge {
            absorbed: pos,
            into: device
        }]
    );
    // Old profile ids, say from tokens minted before the merge, resolve to the survivor.
    for old in [device, web, pos] {
        assert_eq!(g.resolve(old), Some(device));
        assert_eq!(g.members(old).len(), 3);
    }
    check(&g);
}

#[test]
fn one_link_can_absorb_several_profiles_and_chains_resolve() {
    let g = graph(64);
    let (w, x, y, z) = (
        id(IdKind::CustomerId, 1),
        id(IdKind::EmailSha256, 2),
        id(IdKind::DeviceId, 3),
        id(IdKind::PhoneSha256, 4),
    );
    let pw = g.link(&[w]).unwrap().profile;
    let px = g.link(&[x]).unwrap().profile;
    let py = g.link(&[y]).unwrap().profile;
    let pz = g.link(&[z]).unwrap().profile;
    let l = g.link(&[z, y, x]).unwrap();
    assert_eq!(l.profile, px);
    assert_eq!(
        l.merged,
        vec![
            Merge {
                absorbed: py,
                into: px
            },
            Merge {
                absorbed: pz,
                into: px
            }
        ]
    );
    let l = g.link(&[x, w]).unwrap();
    assert_eq!(l.profile, pw);
    assert_eq!(
        l.merged,
        vec![Merge {
            absorbed: px,
            into: pw
        }]
    );
    // py was absorbed into px, px into pw: one lookup still finds pw.
    assert_eq!(g.resolve(py), Some(pw));
    assert_eq!(sorted(g.members(pz)), sorted(vec![w, x, y, z]));
    check(&g);
}

#[test]
fn the_founder_does_not_depend_on_the_order_sent() {
    let (customer, device) = (id(IdKind::CustomerId, 9), id(IdKind::DeviceId, 9));
    let a = graph(64).link(&[device, customer]).unwrap().profile;
    let b = graph(64).link(&[customer, device]).unwrap().profile;
    assert_eq!(a, ProfileId(customer.hash));
    assert_eq!(a, b);
}

#[test]
fn lookups_insert_nothing_and_odd_links_are_handled() {
    let g = graph(64);
    let x = id(IdKind::DeviceId, 1);
    assert_eq!(g.profile_of(x), None);
    assert_eq!(g.resolve(ProfileId(x.hash)), None);
    assert!(g.members(ProfileId(x.hash)).is_empty());
    assert_eq!(g.stats(), GraphStats::default());
    assert_eq!(g.link(&[]), None);
    let l = g.link(&[x, x, x]).unwrap();
    assert_eq!(g.members(l.profile), vec![x]);
    let again = g.link(&[x]).unwrap();
    assert!(again.known && again.merged.is_empty());
    assert_eq!(again.profile, l.profile);
    check(&g);
}

#[test]
fn a_link_past_the_bound_is_refused_and_counted() {
    let g = graph(4);
    let card = id(IdKind::PaymentToken, 0);
    // A store's test card, seen with one shopper after another.
    for i in 1..=3 {
        let l = g.link(&[id(IdKind::EmailSha256, i), card]).unwrap();
        assert!(!l.refused);
    }
    let glued = g.profile_of(card).unwrap();
    assert_eq!(g.members(glued).len(), 4);

    let fourth = id(IdKind::EmailSha256, 4);
    let l = g.link(&[fourth, card]).unwrap();
    assert!(l.refused && l.merged.is_empty());
    // The unknown shopper gets a profile of their own and is served as it.
    assert_eq!(l.profile, ProfileId(fourth.hash));
    assert_eq!(g.members(l.profile), vec![fourth]);
    assert_eq!(g.members(glued).len(), 4);
    assert_eq!(g.stats().refused_links, 1);

    // Two profiles that together exceed the bound stay apart.
    let (loyalty, device) = (id(IdKind::LoyaltyId, 5), id(IdKind::DeviceId, 5));
    let other = g.link(&[loyalty, device]).unwrap().profile;
    let l = g.link(&[device, id(IdKind::EmailSha256, 1)]).unwrap();
    assert!(l.refused);
    assert_eq!(
        l.profile, glued,
        "served as its most durable identifier, the e-mail"
    );
    assert_eq!(g.profile_of(device), Some(other));
    assert_eq!(g.members(glued).len(), 4);
    assert_eq!(g.stats().refused_links, 2);

    // More unknown identifiers than the bound: the most durable ones are kept.
    let many: Vec<IdHash> = (10..16).map(|n| id(IdKind::DeviceId, n)).collect();
    let mut with_customer = many.clone();
    with_customer.push(id(IdKind::CustomerId, 10));
    let l = g.link(&with_customer).unwrap();
    assert!(l.refused && !l.known);
    assert_eq!(l.profile, ProfileId(id(IdKind::CustomerId, 10).hash));
    assert_eq!(g.members(l.profile).len(), 4);
    assert_eq!(g.stats().refused_links, 3);
    check(&g);
}

#[test]
fn erasure_removes_every_identifier_and_relinking_starts_fresh() {
    let g = graph(64);
    let (a, b, c) = (
        id(IdKind::LoyaltyId, 1),
        id(IdKind::EmailSha256, 1),
        id(IdKind::DeviceId, 1),
    );
    let p = g.link(&[a, b]).unwrap().profile;
    g.link(&[b, c]).unwrap();
    let bystander = g.link(&[id(IdKind::DeviceId, 2)]).unwrap().profile;

    let erased = g.erase(c);
    assert_eq!(sorted(erased), sorted(vec![a, b, c]));
    for x in [a, b, c] {
        assert_eq!(g.profile_of(x), None);
    }
    assert_eq!(g.resolve(p), None);
    assert!(g.members(p).is_empty());
    assert!(g.erase(a).is_empty());
    assert_eq!(g.stats().identifiers, 1);
    assert_eq!(g.resolve(bystander), Some(bystander));
    check(&g);

    let fresh = g.link(&[b]).unwrap();
    assert!(!fresh.known);
    assert_eq!(g.members(fresh.profile), vec![b]);
    assert_eq!(g.profile_of(a), None);
    assert_eq!(g.erase_profile(fresh.profile), vec![b]);
    assert_eq!(g.stats().profiles, 1);
    check(&g);
}

/// Random links over a pool: mostly within blocks of eight identifiers, sometimes
/// across, so that profiles stay small but merges are common.
pub(super) fn random_links(seed: u64, pool: u64, links: usize) -> Vec<Vec<IdHash>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let pick = |n: u64| id(IdKind::ALL[(n % 6) as usize], n);
    (0..links)
        .map(|_| {
            let base = rng.random_range(0..pool / 8) * 8;
            let k = rng.random_range(1..=4);
            (0..k)
                .map(|_| {
                    if rng.random_bool(0.04) {
                        pick(rng.random_range(0..pool))
                    } else {
                        pick(base + rng.random_range(0..8))
                    }
                })
                .collect()
        })
        .collect()
}

/// Each stored identifier's profile, named by its smallest member: the partition,
/// whatever the profile ids.
fn partition(g: &IdentityGraph, ids: &[IdHash]) -> Vec<Option<u128>> {
    ids.iter()
        .map(|x| {
            let p = g.profile_of(*x)?;
            g.members(p).iter().map(|m| m.hash).min()
        })
        .collect()
}

fn union_find_partition(links: &[Vec<IdHash>], ids: &[IdHash]) -> Vec<Option<u128>> {
    let mut parent: HashMap<u128, u128> = HashMap::new();
    fn find(parent: &mut HashMap<u128, u128>, x: u128) -> u128 {
        let p = parent[&x];
        if p == x {
            return x;
        }
        let root = find(parent, p);
        parent.insert(x, root);
        root
    }
    for link in links {
        for x in link {
            parent.entry(x.hash).or_insert(x.hash);
        }
        for w in link.windows(2) {
            let (a, b) = (find(&mut parent, w[0].hash), find(&mut parent, w[1].hash));
            // The smaller hash as root, so the root names the component as above.
            parent.insert(a.max(b), a.min(b));
        }
    }
    ids.iter()
        .map(|x| {
            parent
                .contains_key(&x.hash)
                .then(|| find(&mut parent, x.hash))
        })
        .collect()
}

#[test]
fn eight_threads_link_the_same_partition_as_one() {
    // A large pool with small profiles, then small pools where threads collide often.
    for (seed, pool) in [(1, 16_000), (2, 2_000), (3, 400)] {
        let links = random_links(seed, pool, 12_000);
        let ids: Vec<IdHash> = (0..pool)
            .map(|n| id(IdKind::ALL[(n % 6) as usize], n))
            .collect();
        // No bound in the way: with one, which link is refused depends on the order.
        let one = graph(u16::MAX);
        for l in &links {
            one.link(l).unwrap();
        }
        let eight = graph(u16::MAX);
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (eight, links, start) = (&eight, &links, &start);
                s.spawn(move || {
                    start.wait();
                    for l in links.iter().skip(t).step_by(8) {
                        let linked = eight.link(l).unwrap();
                        assert!(!linked.refused);
                        // Whatever happened since, every identifier of the link is in one profile.
                        let p = eight.profile_of(l[0]).unwrap();
                        assert!(l.iter().all(|x| eight.profile_of(*x).is_some()));
                        assert!(eight.resolve(p).is_some());
                    }
                });
            }
        });
        check(&one);
        check(&eight);
        let expected = union_find_partition(&links, &ids);
        assert_eq!(partition(&one, &ids), expected, "seed {seed}");
        assert_eq!(partition(&eight, &ids), expected, "seed {seed}");
        assert_eq!(one.stats(), eight.stats());
    }
}

#[test]
fn links_erasures_reads_and_checkpoints_from_eight_threads_keep_the_graph_whole() {
    let g = graph(16);
    let links = random_links(7, 400, 40_000);
    let start = std::sync::Barrier::new(8);
    let checkpoints = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (g, links, start, checkpoints) = (&g, &links, &start, &checkpoints);
            s.spawn(move || {
                start.wait();
                for (i, l) in links.iter().enumerate().skip(t).step_by(8) {
                    match i % 1000 {
                        999 => checkpoints.lock().unwrap().push(saved(g)),
                        n if n % 50 == 0 => {
                            g.erase(l[0]);
                        }
                        n if n % 50 == 1 => {
                            g.members(ProfileId(l[0].hash));
                        }
                        _ => {
                            g.link(l);
                        }
                    }
                    for x in l {
                        if let Some(p) = g.profile_of(*x) {
                            // A profile found a moment ago may be erased since, never torn.
                            assert!(g.members(p).len() <= 16);
                        }
                    }
                }
            });
        }
    });
    check(&g);
    let stats = g.stats();
    assert!(stats.identifiers > 0 && stats.profiles > 0);
    // Checkpoints taken while the others changed the graph are each one whole state.
    let checkpoints = checkpoints.into_inner().unwrap();
    assert_eq!(checkpoints.len(), 40);
    for bytes in checkpoints {
        check(&IdentityGraph::load(&bytes[..], GraphConfig::default()).unwrap());
    }
}

pub(super) fn saved(g: &IdentityGraph) -> Vec<u8> {
    let mut buf = Vec::new();
    g.save(&mut buf).unwrap();
    buf
}
