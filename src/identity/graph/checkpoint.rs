//! Checkpoints of the identity graph: every profile with its members, so a restart
//! restores every link without replaying the whole log.
//!
//! A compact binary format rather than MessagePack of a struct: at ten million
//! identifiers a checkpoint is written and read as a stream, 17 bytes per identifier,
//! with no copy of the graph built in memory first. All integers little-endian:
//!
//! ```text
//! magic "aftcidg" + version 1          8 bytes
//! next creation number                 u64
//! profiles, identifiers                u64, u64
//! per profile: creation number         u64
//!              member count            u16
//!              per member: kind code   u8   (founder first)
//!                          hash        u128
//! CRC-32 of everything before          u32
//! ```
//!
//! Loading checks everything it reads (kind codes, counts, duplicates, the checksum),
//! so a truncated or damaged file is an error and never a panic or a half-loaded graph.

use super::store::{Frozen, Meta, Ref, SHARDS, kind_code, kind_from_code, shard_of};
use super::{GraphConfig, IdentityGraph};
use crate::identity::IdHash;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;

#[cfg(test)]
mod tests;

const MAGIC: [u8; 8] = *b"aftcidg\x01";
/// Bytes buffered between writes and reads, and checksummed at once.
const BLOCK: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("identity graph checkpoint: {0}")]
    Io(#[from] io::Error),
    #[error("identity graph checkpoint is truncated")]
    Truncated,
    #[error("not an identity graph checkpoint of a known version")]
    Format,
    #[error("identity graph checkpoint is corrupt: {0}")]
    Corrupt(&'static str),
}

impl IdentityGraph {
    /// Writes every profile to `w`, as one point in time. The graph is read-locked
    /// whole only while its arenas are copied (lookups and links of known identifiers
    /// go on meanwhile, links that change something wait); encoding and writing work
    /// on the copy with no lock held. The `identity` bench prints both times: at 10
    /// million identifiers the copy is a small part of the whole. The price is the
    /// copy's memory (about 30 bytes per identifier) for the length of a save.
    pub fn save(&self, w: impl Write) -> io::Result<()> {
        let (guards, next_born) = {
            let locked: Vec<_> = (0..SHARDS).map(|s| self.read(s)).collect();
            let frozen: Vec<Frozen> = locked.iter().map(|g| g.freeze()).collect();
            (frozen, self.next_born.load(Ordering::Relaxed))
        };
        let profiles: usize = guards.iter().map(|g| g.profile_count()).sum();
        let identifiers: usize = guards.iter().map(|g| g.identifier_count()).sum();
        let mut out = Encoder::new(w);
        out.put(&MAGIC)?;
        out.put(&next_born.to_le_bytes())?;
        out.put(&(profiles as u64).to_le_bytes())?;
        out.put(&(identifiers as u64).to_le_bytes())?;
        for (s, g) in guards.iter().enumerate() {
            for (_, meta) in g.profiles() {
                out.put(&meta.born.to_le_bytes())?;
                out.put(&meta.size.to_le_bytes())?;
                let mut at = Ref::new(s, meta.founder);
                for _ in 0..meta.size {
                    let Some(e) = guards[at.shard()].entry(at.slot()) else {
                        return Err(io::Error::other("identity graph ring is broken"));
                    };
                    let id = e.id();
                    out.put(&[kind_code(id.kind)])?;
                    out.put(&id.hash.to_le_bytes())?;
                    at = e.next();
                }
            }
        }
        out.finish()
    }

    /// Reads a checkpoint written by [`IdentityGraph::save`]. Profiles keep their ids,
    /// members and age. `config` applies from now on: a profile larger than a lowered
    /// bound is kept whole (splitting it would undo links) and cannot grow.
    pub fn load(r: impl Read, config: GraphConfig) -> Result<IdentityGraph, CheckpointError> {
        let mut input = Decoder::new(r);
        if input.take::<8>()? != MAGIC {
            return Err(CheckpointError::Format);
        }
        let next_born = u64::from_le_bytes(input.take()?);
        let profiles = u64::from_le_bytes(input.take()?);
        let identifiers = u64::from_le_bytes(input.take()?);
        let mut graph = IdentityGraph::new(config);
        let (mut seen, mut max_born) = (0u64, 0u64);
        let mut members = Vec::new();
        for _ in 0..profiles {
            let born = u64::from_le_bytes(input.take()?);
            let size = u16::from_le_bytes(input.take()?);
            if born == 0 || size == 0 {
                return Err(CheckpointError::Corrupt("empty profile"));
            }
            members.clear();
            for _ in 0..size {
                let kind = kind_from_code(input.take::<1>()?[0])
                    .ok_or(CheckpointError::Corrupt("unknown identifier kind"))?;
                let hash = u128::from_le_bytes(input.take()?);
                members.push(IdHash { kind, hash });
            }
            graph.restore(born, &members)?;
            seen += u64::from(size);
            max_born = max_born.max(born);
        }
        if seen != identifiers {
            return Err(CheckpointError::Corrupt("identifier count"));
        }
        input.finish()?;
        graph
            .next_born
            .store(next_born.max(max_born + 1), Ordering::Relaxed);
        Ok(graph)
    }

    /// Adds one saved profile, founder first. Single-threaded: no locks, only `&mut`.
    fn restore(&mut self, born: u64, members: &[IdHash]) -> Result<(), CheckpointError> {
        let (founder, rest) = members
            .split_first()
            .ok_or(CheckpointError::Corrupt("empty profile"))?;
        let home = shard_of(founder.hash);
        let mut per_shard = [0usize; SHARDS];
        for id in members {
            per_shard[shard_of(id.hash)] += 1;
            let shard = self.shard_mut(shard_of(id.hash));
            if shard.find(id.hash).is_some() {
                return Err(CheckpointError::Corrupt("identifier in two profiles"));
            }
        }
        for (s, &n) in per_shard.iter().enumerate() {
            let records = usize::from(s == home);
            let shard = self.shard_mut(s);
            if (n > 0 || records > 0) && !shard.has_room(n, records) {
                return Err(CheckpointError::Corrupt(
                    "more identifiers than a graph holds",
                ));
            }
        }
        if members.len() > 1 {
            let mut sorted: Vec<u128> = members.iter().map(|id| id.hash).collect();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(CheckpointError::Corrupt("identifier twice in a profile"));
            }
        }
        let shard = self.shard_mut(home);
        let founder_slot = shard.insert(*founder, Ref::new(home, 0), Ref::new(home, 0));
        let meta_slot = shard.new_profile(Meta {
            born,
            founder: founder_slot,
            size: members.len() as u16,
        });
        let first = Ref::new(home, founder_slot);
        if let Some(e) = shard.entry_mut(founder_slot) {
            e.set_record(Ref::new(home, meta_slot));
            e.set_next(first);
        }
        let mut tail = first;
        for id in rest {
            let s = shard_of(id.hash);
            let at = Ref::new(s, self.shard_mut(s).insert(*id, first, first));
            if let Some(e) = self.shard_mut(tail.shard()).entry_mut(tail.slot()) {
                e.set_next(at);
            }
            tail = at;
        }
        Ok(())
    }
}

/// Buffers output and checksums it a block at a time.
struct Encoder<W: Write> {
    w: W,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
}

impl<W: Write> Encoder<W> {
    fn new(w: W) -> Encoder<W> {
        Encoder {
            w,
            buf: Vec::with_capacity(BLOCK + 64),
            crc: crc32fast::Hasher::new(),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BLOCK {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.drain()?;
        let crc = self.crc.clone().finalize();
        self.w.write_all(&crc.to_le_bytes())?;
        self.w.flush()
    }
}

/// Reads through a buffer of its own and checksums what has been consumed a block at a
/// time. It may read past the checkpoint's end: a checkpoint is a file of its own.
struct Decoder<R: Read> {
    r: R,
    buf: Vec<u8>,
    /// Consumed up to `pos`, checksummed up to `checked`, filled up to `end`.
    pos: usize,
    checked: usize,
    end: usize,
    crc: crc32fast::Hasher,
}

impl<R: Read> Decoder<R> {
    fn new(r: R) -> Decoder<R> {
        Decoder {
            r,
            buf: vec![0; BLOCK],
            pos: 0,
            checked: 0,
            end: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], CheckpointError> {
        while self.end - self.pos < N {
            self.fill()?;
        }
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    fn fill(&mut self) -> Result<(), CheckpointError> {
        self.crc.update(&self.buf[self.checked..self.pos]);
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        (self.pos, self.checked) = (0, 0);
        loop {
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(CheckpointError::Truncated),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads the trailer and compares it with the checksum of everything before it.
    fn finish(mut self) -> Result<(), CheckpointError> {
        self.crc.update(&self.buf[self.checked..self.pos]);
        self.checked = self.pos;
        let expected = self.crc.clone().finalize();
        if u32::from_le_bytes(self.take()?) != expected {
            return Err(CheckpointError::Corrupt("checksum mismatch"));
        }
        Ok(())
    }
}
