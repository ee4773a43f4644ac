//! Torn tails are cut back to the last whole record; corruption is reported, never skipped.

use super::*;

/// A log of `n` records in one segment.
fn one_segment_log(dir: &Path, n: usize) -> Vec<(u64, Vec<u8>)> {
    let (mut w, _) = open_writer(dir, 1 << 20);
    let written = write_records(&mut w, 0..n);
    w.sync().expect("sync");
    written
}

/// Damages the tail with `damage`, then checks that a reader sees the whole records and treats
/// the tail as "not written yet", that reopening cuts exactly the damage, and that appends
/// continue at the cut.
fn check_torn_tail(damage: impl FnOnce(&Path, &[(u64, Vec<u8>)]) -> (u64, u64), keep: usize) {
    let (_tmp, dir) = temp_log();
    let written = one_segment_log(&dir, 20);
    let seg = last_segment(&dir);
    let before = file_len(&seg);
    let (cut_at, cut_bytes) = damage(&seg, &written);
    assert_eq!(file_len(&seg) - cut_at, cut_bytes, "test setup");

    // Before any writer recovers, readers already stop cleanly at the damage.
    assert_eq!(
        read_all(&dir).expect("reader before recovery"),
        written[..keep]
    );

    let (mut w, recovery) = open_writer(&dir, 1 << 20);
    assert_eq!(
        recovery,
        Recovery {
            truncated_at: Some(cut_at),
            truncated_bytes: cut_bytes
        }
    );
    assert_eq!(file_len(&seg), cut_at);
    assert!(cut_at <= before);
    assert_eq!(w.end_offset(), cut_at);
    let fresh = vec![0xab; 50];
    assert_eq!(
        w.append(&frames_of(std::slice::from_ref(&fresh)))
            .expect("append"),
        cut_at
    );

    let mut expected = written[..keep].to_vec();
    expected.push((cut_at, fresh));
    assert_eq!(read_all(&dir).expect("read after recovery"), expected);

    // A second open finds nothing more to cut.
    drop(w);
    assert_eq!(open_writer(&dir, 1 << 20).1, Recovery::default());
}

#[test]
fn torn_tail_mid_payload() {
    check_torn_tail(
        |seg, written| {
            let last = written[19].0;
            let full = file_len(seg);
            fs::OpenOptions::new()
                .write(true)
                .open(seg)
                .and_then(|f| f.set_len(last + 8 + 3))
                .expect("truncate");
            assert!(last + 11 < full);
            (last, 11)
        },
        19,
    );
}

#[test]
fn torn_tail_mid_header() {
    check_torn_tail(
        |seg, written| {
            let last = written[19].0;
            fs::OpenOptions::new()
                .write(true)
                .open(seg)
                .and_then(|f| f.set_len(last + 5))
                .expect("truncate");
            (last, 5)
        },
        19,
    );
}

#[test]
fn torn_tail_partial_garbage_header() {
    check_torn_tail(
        |seg, _| {
            let end = file_len(seg);
            append_raw(seg, &[0x17, 0x02, 0x00]);
            (end, 3)
        },
        20,
    );
}

#[test]
fn torn_tail_zero_filled_space() {
    // A file system that extended the file before writing its data leaves zeros.
    for zeros in [3usize, 8, 11, 4096] {
        check_torn_tail(
            |seg, _| {
                let end = file_len(seg);
                append_raw(seg, &vec![0; zeros]);
                (end, zeros as u64)
            },
            20,
        );
    }
}

#[test]
fn torn_tail_header_written_payload_not() {
    // The header reached the disk, the payload did not (zeros), then more zeros.
    check_torn_tail(
        |seg, _| {
            let end = file_len(seg);
            let mut frame = frames_of(&[vec![0x33; 100]]);
            frame[FRAME_HEADER..].fill(0);
            frame.extend_from_slice(&[0; 40]);
            append_raw(seg, &frame);
            (end, frame.len() as u64)
        },
        20,
    );
}

#[test]
fn mid_file_corruption_is_reported_by_writer_and_reader() {
    let (_tmp, dir) = temp_log();
    let written = one_segment_log(&dir, 10);
    let seg = last_segment(&dir);
    let bad = written[3].0;
    flip_byte(&seg, bad + FRAME_HEADER as u64);
    let len_before = file_len(&seg);

    match SegmentWriter::open(&dir, 1 << 20, Arc::default()) {
        Err(LogError::Corrupt { offset, path, .. }) => {
            assert_eq!(offset, bad);
            assert_eq!(path, seg);
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|(_, r)| r)),
    }
    assert_eq!(file_len(&seg), len_before, "nothing was cut");

    let mut reader = LogReader::open(&dir).expect("reader");
    for want in &written[..3] {
        assert_eq!(reader.next().expect("good record").as_ref(), Some(want));
    }
    for _ in 0..2 {
        // The reader stays at the bad record instead of skipping it.
        match reader.next() {
            Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, bad),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(reader.position(), bad);
    }
}

#[test]
fn impossible_length_or_zeroed_block_mid_file_is_corruption() {
    // An absurd length field, and a zeroed region (a lost block) followed by good records.
    for zero_block in [false, true] {
        let (_tmp, dir) = temp_log();
        let written = one_segment_log(&dir, 10);
        let seg = last_segment(&dir);
        let bad = written[4].0;
        let mut data = fs::read(&seg).expect("read");
        if zero_block {
            data[bad as usize..written[6].0 as usize].fill(0);
        } else {
            data[bad as usize..bad as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        fs::write(&seg, data).expect("write");
        assert!(matches!(
            SegmentWriter::open(&dir, 1 << 20, Arc::default()),
            Err(LogError::Corrupt { offset, .. }) if offset == bad
        ));
        let mut reader = LogReader::open(&dir).expect("reader");
        reader.seek(written[2].0).expect("seek");
        assert!(reader.next().expect("2").is_some());
        assert!(reader.next().expect("3").is_some());
        assert!(matches!(
            reader.next(),
            Err(LogError::Corrupt { offset, .. }) if offset == bad
        ));
    }
}

#[test]
fn corruption_in_an_older_segment_is_found_by_readers() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1000);
    let written = write_records(&mut w, 0..60);
    drop(w);
    let (first_base, first) = list_segments(&dir).expect("list")[0].clone();
    assert_eq!(first_base, 0);
    // The last frame of the first segment: at its end, right before the next segment.
    let victim = written
        .iter()
        .rfind(|(offset, _)| *offset < file_len(&first))
        .expect("a record in the first segment")
        .0;
    flip_byte(&first, file_len(&first) - 1);

    // The writer only scans the last segment, so it opens fine.
    assert_eq!(open_writer(&dir, 1000).1, Recovery::default());
    let mut reader = LogReader::open(&dir).expect("reader");
    let err = loop {
        match reader.next() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("corruption went unnoticed"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, LogError::Corrupt { offset, .. } if offset == victim));
}

#[test]
fn cut_short_finished_segment_is_corruption_not_end_of_log() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1000);
    let written = write_records(&mut w, 0..60);
    drop(w);
    let first = list_segments(&dir).expect("list")[0].1.clone();
    let len = file_len(&first);
    fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .and_then(|f| f.set_len(len - 2))
        .expect("truncate");
    let victim = written.iter().rfind(|(o, _)| *o < len).expect("rec").0;
    let mut reader = LogReader::open(&dir).expect("reader");
    reader.seek(victim).expect("seek");
    assert!(matches!(
        reader.next(),
        Err(LogError::Corrupt { offset, .. }) if offset == victim
    ));
}

#[test]
fn reader_waits_for_a_frame_being_written() {
    let (_tmp, dir) = temp_log();
    let written = one_segment_log(&dir, 3);
    let seg = last_segment(&dir);
    let end = file_len(&seg);
    let frame = frames_of(&[vec![0x42; 300]]);
    let mut reader = LogReader::open(&dir).expect("reader");
    for want in &written {
        assert_eq!(reader.next().expect("rec").as_ref(), Some(want));
    }
    // Half of a frame is visible: not written yet, and the position does not move.
    append_raw(&seg, &frame[..5]);
    assert_eq!(reader.next().expect("partial header"), None);
    append_raw(&seg, &frame[5..100]);
    assert_eq!(reader.next().expect("partial payload"), None);
    assert_eq!(reader.position(), end);
    append_raw(&seg, &frame[100..]);
    assert_eq!(reader.next().expect("whole"), Some((end, vec![0x42; 300])));
}
