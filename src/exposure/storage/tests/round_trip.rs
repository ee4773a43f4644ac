//! Records come back exactly, across rotations and restarts, at stable offsets.

use super::*;

#[test]
fn round_trip_across_rotations_and_reopen() {
    let (_tmp, dir) = temp_log();
    let (mut w, recovery) = open_writer(&dir, 2000);
    assert_eq!(recovery, Recovery::default());
    assert_eq!(w.end_offset(), 0);

    let mut expected = write_records(&mut w, 0..400);
    // A batch larger than max_segment_bytes goes whole into a fresh segment.
    let big: Vec<Vec<u8>> = (0..3).map(|i| vec![i as u8 + 1; 1500]).collect();
    let big_offset = w.append(&frames_of(&big)).expect("big batch");
    let mut at = big_offset;
    for p in big {
        let size = (FRAME_HEADER + p.len()) as u64;
        expected.push((at, p));
        at += size;
    }
    expected.extend(write_records(&mut w, 400..450));
    w.sync().expect("sync");

    assert!(
        expected.windows(2).all(|p| p[0].0 < p[1].0),
        "offsets increase"
    );
    let (last_offset, last_payload) = expected.last().expect("records");
    assert_eq!(
        w.end_offset(),
        last_offset + (FRAME_HEADER + last_payload.len()) as u64
    );

    // Segments are named by base offset and tile the offset space without gaps.
    let segments = list_segments(&dir).expect("list");
    assert!(segments.len() > 10, "rotated: {} segments", segments.len());
    assert_eq!(segments[0].0, 0);
    for pair in segments.windows(2) {
        let ((base, path), (next_base, _)) = (&pair[0], &pair[1]);
        assert_eq!(base + file_len(path), *next_base);
    }
    for (base, path) in &segments {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(name, format!("{base:020}.seg"));
        assert!(file_len(path) <= 2000 || *base == big_offset);
    }
    assert!(segments.iter().any(|(base, _)| *base == big_offset));

    assert_eq!(read_all(&dir).expect("read"), expected);

    // Reopening finds a clean tail and continues at the same end; old offsets do not move.
    let end = w.end_offset();
    drop(w);
    let (mut w, recovery) = open_writer(&dir, 2000);
    assert_eq!(recovery, Recovery::default());
    assert_eq!(w.end_offset(), end);
    let more = write_records(&mut w, 450..500);
    assert_eq!(more[0].0, end);
    expected.extend(more);
    assert_eq!(read_all(&dir).expect("read after reopen"), expected);
}

#[test]
fn seek_to_any_returned_offset_and_continue() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1500);
    let expected = write_records(&mut w, 0..300);
    let end = w.end_offset();

    let mut reader = LogReader::open(&dir).expect("reader");
    for (k, (offset, _)) in expected.iter().enumerate() {
        reader.seek(*offset).expect("seek");
        assert_eq!(reader.position(), *offset);
        for want in expected.iter().skip(k).take(3) {
            assert_eq!(reader.next().expect("next").as_ref(), Some(want));
        }
    }
    // Seeking to the end is allowed; nothing is there yet.
    reader.seek(end).expect("seek end");
    assert_eq!(reader.next().expect("next at end"), None);
    // Past the end is not a record boundary.
    assert!(matches!(
        reader.seek(end + 1),
        Err(LogError::BadOffset { offset, oldest: 0 }) if offset == end + 1
    ));
    // A failed seek keeps the previous position; a new record appears there.
    assert_eq!(reader.position(), end);
    let new = write_records(&mut w, 300..301);
    assert_eq!(reader.next().expect("next new"), Some(new[0].clone()));
}

#[test]
fn next_into_reuses_the_buffer_and_position_tracks_reads() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 4096);
    let expected = write_records(&mut w, 0..100);
    let mut reader = LogReader::open(&dir).expect("reader");
    let mut buf = Vec::new();
    for (offset, p) in &expected {
        assert_eq!(reader.position(), *offset);
        assert_eq!(reader.next_into(&mut buf).expect("next"), Some(*offset));
        assert_eq!(&buf, p);
    }
    assert_eq!(reader.position(), w.end_offset());
    assert_eq!(reader.next_into(&mut buf).expect("end"), None);
}

#[test]
fn seek_into_the_middle_of_a_record_is_caught_on_read() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1000);
    let expected = write_records(&mut w, 0..60);
    // Record 2 is in the first, finished segment: whatever its bytes say, the frame found
    // there cannot be whole and valid.
    let target = expected[2].0 + 4;
    let mut reader = LogReader::open(&dir).expect("reader");
    reader.seek(target).expect("seek trusts in-segment offsets");
    match reader.next() {
        Err(LogError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, target);
            assert!(reason.contains("seek()"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn empty_log_reads_nothing_then_sees_first_records() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1 << 20);
    let mut reader = LogReader::open(&dir).expect("reader");
    assert_eq!(reader.oldest_offset().expect("oldest"), 0);
    assert_eq!(reader.next().expect("empty"), None);
    let written = write_records(&mut w, 0..3);
    for want in &written {
        assert_eq!(reader.next().expect("next").as_ref(), Some(want));
    }
    assert!(LogReader::open(&dir.join("missing")).is_err());
}

#[test]
fn append_refuses_anything_but_whole_valid_frames() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1 << 20);
    let good = write_records(&mut w, 0..2);
    let end = w.end_offset();

    let mut bad_crc = frames_of(&[payload(7)]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let mut cut = frames_of(&[payload(8), payload(9)]);
    cut.pop();
    let mut empty_payload = Vec::new();
    encode_frame(&[], &mut empty_payload);
    let mut oversized = Vec::new();
    encode_frame(&vec![1; MAX_PAYLOAD + 1], &mut oversized);

    for batch in [vec![1, 2, 3], bad_crc, cut, empty_payload, oversized] {
        let err = w.append(&batch).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
    assert_eq!(w.append(&[]).expect("empty batch"), end);
    assert_eq!(w.end_offset(), end);
    assert_eq!(read_all(&dir).expect("read"), good);

    // The largest allowed payload round-trips.
    let mut max = Vec::new();
    encode_frame(&vec![9; MAX_PAYLOAD], &mut max);
    assert_eq!(w.append(&max).expect("max payload"), end);
    let all = read_all(&dir).expect("read max");
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].1.len(), MAX_PAYLOAD);
}
