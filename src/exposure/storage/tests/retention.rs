//! Retention deletes whole old segments only; readers see the new oldest offset.

use super::*;

#[test]
fn delete_segments_before_removes_only_whole_old_segments() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1000);
    let written = write_records(&mut w, 0..200);
    let segments = list_segments(&dir).expect("list");
    assert!(segments.len() > 6);
    let mut reader = LogReader::open(&dir).expect("reader");
    assert_eq!(reader.oldest_offset().expect("oldest"), 0);

    // An offset inside segment 3: segments 0..=2 end at or before it, segment 3 does not.
    let cut = segments[3].0 + 1;
    assert_eq!(delete_segments_before(&dir, cut).expect("delete"), 3);
    assert_eq!(list_segments(&dir).expect("list"), segments[3..].to_vec());
    let oldest = segments[3].0;
    assert_eq!(reader.oldest_offset().expect("oldest"), oldest);

    // The reader was still positioned at 0, which no longer exists.
    assert!(matches!(
        reader.next(),
        Err(LogError::BadOffset { offset: 0, oldest: o }) if o == oldest
    ));
    for before in [0, segments[2].0, oldest - 1] {
        assert!(matches!(
            reader.seek(before),
            Err(LogError::BadOffset { offset, oldest: o }) if offset == before && o == oldest
        ));
    }
    reader.seek(oldest).expect("seek oldest");
    let rest: Vec<_> = written
        .iter()
        .filter(|(o, _)| *o >= oldest)
        .cloned()
        .collect();
    assert_eq!(read_all(&dir).expect("read"), rest);
    assert_eq!(reader.next().expect("first kept").as_ref(), rest.first());

    // Deleting everything still keeps the last segment, and appends go on.
    let end = w.end_offset();
    let deleted = delete_segments_before(&dir, u64::MAX).expect("delete all");
    assert_eq!(deleted, segments.len() - 4);
    let left = list_segments(&dir).expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(delete_segments_before(&dir, u64::MAX).expect("again"), 0);
    assert_eq!(write_records(&mut w, 200..201)[0].0, end);
    assert_eq!(
        LogReader::open(&dir)
            .expect("r")
            .oldest_offset()
            .expect("o"),
        left[0].0
    );
}

#[test]
fn foreign_files_are_ignored() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1 << 20);
    let written = write_records(&mut w, 0..3);
    for name in [
        "notes.txt",
        "0.seg",
        "+0000000000000000001.seg",
        "00000000000000000001.tmp",
    ] {
        fs::write(dir.join(name), b"x").expect("write");
    }
    assert_eq!(list_segments(&dir).expect("list").len(), 1);
    assert_eq!(read_all(&dir).expect("read"), written);
}

#[test]
fn a_missing_middle_segment_is_corruption_not_a_silent_skip() {
    let (_tmp, dir) = temp_log();
    let (mut w, _) = open_writer(&dir, 1000);
    let written = write_records(&mut w, 0..60);
    let segments = list_segments(&dir).expect("list");
    fs::remove_file(&segments[2].1).expect("remove");
    let gap = segments[2].0;

    let mut reader = LogReader::open(&dir).expect("reader");
    let before_gap: Vec<_> = written.iter().filter(|(o, _)| *o < gap).cloned().collect();
    for want in &before_gap {
        assert_eq!(reader.next().expect("before gap").as_ref(), Some(want));
    }
    for _ in 0..2 {
        assert!(matches!(
            reader.next(),
            Err(LogError::Corrupt { offset, .. }) if offset == gap
        ));
    }
    // Inside the hole there is no segment to seek into.
    assert!(matches!(
        reader.seek(gap + 1),
        Err(LogError::BadOffset { .. })
    ));
}
