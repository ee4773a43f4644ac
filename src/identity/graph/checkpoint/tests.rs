//! Checkpoint tests: round trips at scale, age kept, and every way a file can be bad.

use super::super::tests::{check, graph, id, random_links, saved};
use super::super::*;

fn sample_graph() -> IdentityGraph {
    let g = graph(8);
    for l in random_links(11, 2_000, 1_500) {
        g.link(&l).unwrap();
    }
    g.erase(id(IdKind::ALL[0], 0));
    g
}

#[test]
fn a_checkpoint_restores_every_link_at_scale() {
    let g = graph(DEFAULT_MAX_PROFILE_SIZE);
    let pool = 1_000_000;
    let ids: Vec<IdHash> = (0..pool)
        .map(|n| id(IdKind::ALL[(n % 6) as usize], n))
        .collect();
    // Customers of one to four identifiers, each seen in two requests.
    let (mut n, mut customer) = (0, 0);
    while n < ids.len() {
        let k = 1 + customer % 4;
        let c = &ids[n..(n + k).min(ids.len())];
        g.link(&c[..c.len().min(2)]).unwrap();
        g.link(c).unwrap();
        n += k;
        customer += 1;
    }
    let bytes = saved(&g);
    assert_eq!(g.stats().identifiers, pool);
    let h = IdentityGraph::load(&bytes[..], GraphConfig::default()).unwrap();
    assert_eq!(h.stats(), g.stats());
    for x in &ids {
        assert_eq!(h.profile_of(*x), g.profile_of(*x));
    }
    for x in ids.iter().step_by(997) {
        let p = g.profile_of(*x).unwrap();
        assert_eq!(h.members(p), g.members(p));
    }
    // The same bytes again: nothing was lost or reordered.
    assert_eq!(saved(&h), bytes);
    check(&h);
}

#[test]
fn a_checkpoint_keeps_which_profile_is_older() {
    let g = graph(64);
    let (old, young) = (id(IdKind::DeviceId, 1), id(IdKind::CustomerId, 2));
    g.link(&[old]).unwrap();
    g.link(&[young]).unwrap();
    let h = IdentityGraph::load(&saved(&g)[..], GraphConfig::default()).unwrap();
    let l = h.link(&[young, old]).unwrap();
    assert_eq!(l.profile, ProfileId(old.hash));
    // A profile created after the load is younger than every loaded one.
    let newer = h.link(&[id(IdKind::CustomerId, 3)]).unwrap().profile;
    let l = h.link(&[id(IdKind::CustomerId, 3), young]).unwrap();
    assert_eq!(l.merged[0].absorbed, newer);
}

#[test]
fn an_empty_graph_round_trips() {
    let h = IdentityGraph::load(&saved(&graph(64))[..], GraphConfig::default()).unwrap();
    assert_eq!(h.stats(), GraphStats::default());
}

#[test]
fn truncated_or_damaged_checkpoints_are_errors() {
    let bytes = saved(&sample_graph());
    IdentityGraph::load(&bytes[..], GraphConfig::default()).unwrap();
    for cut in (0..bytes.len()).step_by(13).chain([bytes.len() - 1]) {
        let err = IdentityGraph::load(&bytes[..cut], GraphConfig::default()).err();
        assert!(
            matches!(err, Some(CheckpointError::Truncated)),
            "cut at {cut}"
        );
    }
    for at in (0..bytes.len()).step_by(29) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x10;
        assert!(
            IdentityGraph::load(&damaged[..], GraphConfig::default()).is_err(),
            "bit flipped at {at}"
        );
    }
    let mut other = bytes.clone();
    other[7] = 2;
    assert!(matches!(
        IdentityGraph::load(&other[..], GraphConfig::default()),
        Err(CheckpointError::Format)
    ));
}

/// A checkpoint written by hand, with a correct checksum, from (born, members).
fn handmade(profiles: &[(u64, Vec<(u8, u128)>)]) -> Vec<u8> {
    let mut b = b"aftcidg\x01".to_vec();
    let ids: usize = profiles.iter().map(|(_, m)| m.len()).sum();
    b.extend(100u64.to_le_bytes());
    b.extend((profiles.len() as u64).to_le_bytes());
    b.extend((ids as u64).to_le_bytes());
    for (born, members) in profiles {
        b.extend(born.to_le_bytes());
        b.extend((members.len() as u16).to_le_bytes());
        for (kind, hash) in members {
            b.push(*kind);
            b.extend(hash.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&b);
    b.extend(crc.to_le_bytes());
    b
}

#[test]
fn well_formed_but_inconsistent_checkpoints_are_errors() {
    let load = |b: Vec<u8>| IdentityGraph::load(&b[..], GraphConfig::default());
    let ok = load(handmade(&[(1, vec![(0, 5), (2, 6)]), (2, vec![(3, 7)])])).unwrap();
    assert_eq!(ok.resolve(ProfileId(6)), Some(ProfileId(5)));
    assert_eq!(
        ok.members(ProfileId(7)),
        vec![IdHash {
            kind: IdKind::LoyaltyId,
            hash: 7
        }]
    );
    for bad in [
        handmade(&[(1, vec![(0, 5)]), (2, vec![(3, 5)])]),
        handmade(&[(1, vec![(0, 5), (1, 5)])]),
        handmade(&[(1, vec![(9, 5)])]),
        handmade(&[(0, vec![(0, 5)])]),
        handmade(&[(1, vec![])]),
    ] {
        assert!(matches!(load(bad), Err(CheckpointError::Corrupt(_))));
    }
}

#[test]
fn a_failing_reader_is_an_error() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    assert!(matches!(
        IdentityGraph::load(Broken, GraphConfig::default()),
        Err(CheckpointError::Io(_))
    ));
}
