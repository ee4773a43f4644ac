//! Packs: several records of one kind from one node in one JetStream message.
//!
//! A busy node writes thousands of decision records a second; one message each would
//! cost JetStream (and the node's client) a message, an acknowledgement and a stored
//! entry per record. The forwarder therefore packs runs of consecutive records of the
//! same kind — up to [`MAX_RECORDS`] and [`MAX_BYTES`] — into one message, marked with
//! the [`HEADER_PACK`] header (its record count). `campaign` records are never packed:
//! the campaign follower applies them one message at a time.
//!
//! The payload is, per record: its offset in the node's log (u64, little endian), its
//! length (u32, little endian) and its MessagePack bytes exactly as in the local log.
//! The message's `Aftercart-Offset` header is the *last* record's offset, so "the last
//! record the stream holds from this node" is read from the last message as before, and
//! its id is `<node>-<first>-<last>`: a pack resent unchanged is dropped by JetStream's
//! duplicate window. A pack cut differently after a reconnect (rare: see the forwarder)
//! can repeat records already stored; readers drop a record whose node and offset they
//! saw lately ([`Seen`]).

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::{HashMap, HashSet, VecDeque};

/// The header that marks a pack: how many records it holds.
pub const HEADER_PACK: &str = "Aftercart-Pack";
/// Records per pack at most.
pub const MAX_RECORDS: usize = 512;
/// Payload bytes per pack at most (NATS refuses messages over its `max_payload`, 1 MiB
/// by default).
pub const MAX_BYTES: usize = 512 << 10;
/// Bytes before each record: offset and length.
const FRAME: usize = 8 + 4;

/// Packs `records` (offset, MessagePack payload).
pub fn encode<'a>(records: impl IntoIterator<Item = (u64, &'a [u8])>) -> Bytes {
    let mut out = BytesMut::new();
    for (offset, payload) in records {
        out.reserve(FRAME + payload.len());
        out.put_u64_le(offset);
        out.put_u32_le(payload.len() as u32);
        out.put_slice(payload);
    }
    out.freeze()
}

/// A pack that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a pack cut short at byte {at} of {len}")]
pub struct Truncated {
    pub at: usize,
    pub len: usize,
}

/// The records of a pack: (offset, MessagePack payload).
pub fn decode(pack: &[u8]) -> Result<Vec<(u64, &[u8])>, Truncated> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < pack.len() {
        let cut = Truncated {
            at,
            len: pack.len(),
        };
        let Some(frame) = pack.get(at..at + FRAME) else {
            return Err(cut);
        };
        let offset = u64::from_le_bytes(frame[..8].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(frame[8..].try_into().expect("4 bytes")) as usize;
        let Some(payload) = pack.get(at + FRAME..at + FRAME + len) else {
            return Err(cut);
        };
        records.push((offset, payload));
        at += FRAME + len;
    }
    Ok(records)
}

/// How many recent offsets per node [`Seen`] remembers: far more than a pack, so a
/// record repeated by a pack resent after a reconnect is recognised.
const WINDOW: usize = 1 << 16;

/// The records a reader saw lately, per node, to drop a record the stream holds twice.
/// Bounded: the last [`WINDOW`] offsets of each node.
#[derive(Default)]
pub struct Seen {
    nodes: HashMap<String, (VecDeque<u64>, HashSet<u64>)>,
}

impl Seen {
    /// Notes the record at `offset` of `node`: false when it was seen already.
    pub fn first_time(&mut self, node: &str, offset: u64) -> bool {
        if !self.nodes.contains_key(node) {
            self.nodes.insert(node.to_string(), Default::default());
        }
        let (order, set) = self.nodes.get_mut(node).expect("inserted above");
        if !set.insert(offset) {
            return false;
        }
        order.push_back(offset);
        if order.len() > WINDOW
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_round_trips_offsets_and_payloads() {
        let records: Vec<(u64, Vec<u8>)> = vec![
            (7, b"\x81\xa4kind".to_vec()),
            (19, vec![]),
            (20, vec![0xc0; 300]),
        ];
        let pack = encode(records.iter().map(|(o, p)| (*o, p.as_slice())));
        let back = decode(&pack).unwrap();
        assert_eq!(back.len(), 3);
        for ((o, p), (bo, bp)) in records.iter().zip(back) {
            assert_eq!((*o, p.as_slice()), (bo, bp));
        }
        assert!(
            decode(&[]).unwrap().is_empty(),
            "an empty pack holds nothing"
        );
    }

    #[test]
    fn a_truncated_pack_is_an_error_not_a_shorter_list() {
        let pack = encode([(1, &b"abc"[..]), (2, &b"defg"[..])]);
        for cut in 1..pack.len() {
            if cut == FRAME + 3 {
                continue; // exactly after the first record: a valid pack of one
            }
            assert!(decode(&pack[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&pack[..FRAME + 3]).unwrap().len(), 1);
    }

    #[test]
    fn seen_drops_a_repeat_per_node_within_its_window() {
        let mut seen = Seen::default();
        assert!(seen.first_time("a", 10));
        assert!(seen.first_time("b", 10), "another node's offset 10");
        assert!(!seen.first_time("a", 10), "a repeat");
        assert!(
            seen.first_time("a", 5),
            "an earlier record arriving late is kept"
        );
        for o in 100..100 + WINDOW as u64 {
            seen.first_time("a", o);
        }
        assert!(seen.first_time("a", 10), "forgotten past the window");
    }
}
