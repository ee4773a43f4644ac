//! No file content makes open or read panic, hang, or return a record that was never written.

use super::*;
use std::collections::HashMap;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn damage(rng: &mut Rng, path: &Path) {
    let mut data = fs::read(path).expect("read");
    let len = data.len() as u64;
    match rng.below(6) {
        0 if len > 0 => {
            let at = rng.below(len) as usize;
            data[at] ^= 1 << rng.below(8);
        }
        1 => data.truncate(rng.below(len + 1) as usize),
        2 => data.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
        3 => data.extend(std::iter::repeat_n(0, rng.below(40) as usize)),
        4 if len > 8 => {
            // Overwrite a run with a plausible-looking length field.
            let at = rng.below(len - 4) as usize;
            let fake = (rng.below(1 << 25) as u32).to_le_bytes();
            data[at..at + 4].copy_from_slice(&fake);
        }
        _ if len > 0 => {
            let at = rng.below(len) as usize;
            let end = (at + rng.below(64) as usize).min(data.len());
            data[at..end].fill(0);
        }
        _ => {}
    }
    fs::write(path, data).expect("write");
}

#[test]
fn damaged_logs_never_panic_or_invent_records() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let (_tmp, dir) = temp_log();
        let (mut w, _) = open_writer(&dir, 1500);
        let mut written: HashMap<u64, Vec<u8>> = write_records(&mut w, 0..40).into_iter().collect();
        drop(w);
        let segments = list_segments(&dir).expect("list");
        for _ in 0..1 + rng.below(3) {
            let (_, path) = &segments[rng.below(segments.len() as u64) as usize];
            damage(&mut rng, path);
        }

        // Readers before and after a writer's recovery return only records that were written
        // at exactly those offsets, and always stop.
        for pass in 0..2 {
            let mut reader = LogReader::open(&dir).expect("reader");
            for _ in 0..written.len() + 2 {
                match reader.next() {
                    Ok(Some((offset, p))) => assert_eq!(written.get(&offset), Some(&p)),
                    Ok(None) | Err(_) => break,
                }
            }
            if pass == 0 {
                let opened = SegmentWriter::open(&dir, 1500, Arc::default());
                if let Ok((mut w, _)) = opened {
                    let end = w.end_offset();
                    assert_eq!(w.append(&frames_of(&[payload(999)])).expect("append"), end);
                    written.insert(end, payload(999));
                }
            }
        }
    }
}
