//! Failed writes and syncs (injected) leave no partial frame and do not break the writer.

use super::*;
use std::sync::atomic::Ordering;

fn writer_with_faults(dir: &Path, max: u64) -> (SegmentWriter, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let (w, recovery) = SegmentWriter::open(dir, max, Arc::clone(&faults)).expect("open");
    assert_eq!(recovery, Recovery::default());
    (w, faults)
}

#[test]
fn failed_write_leaves_no_partial_frame_and_writer_recovers() {
    let (_tmp, dir) = temp_log();
    let (mut w, faults) = writer_with_faults(&dir, 1 << 20);
    let mut expected = write_records(&mut w, 0..5);
    let end = w.end_offset();
    let seg = last_segment(&dir);

    faults.fail_writes.store(true, Ordering::SeqCst);
    let batch = frames_of(&[payload(100), payload(101), payload(102)]);
    assert!(w.append(&batch).is_err());
    assert!(
        w.append(&batch).is_err(),
        "stays failing while the switch is set"
    );
    // The injected failure wrote half the batch first; it was cut back.
    assert_eq!(file_len(&seg), end);
    assert_eq!(w.end_offset(), end);
    assert_eq!(read_all(&dir).expect("read"), expected);

    faults.fail_writes.store(false, Ordering::SeqCst);
    let more = write_records(&mut w, 5..10);
    assert_eq!(more[0].0, end);
    expected.extend(more);
    w.sync().expect("sync");
    drop(w);

    // Nothing torn for the next open to cut, and every good record is there.
    let (_w, recovery) = open_writer(&dir, 1 << 20);
    assert_eq!(recovery, Recovery::default());
    assert_eq!(read_all(&dir).expect("read after reopen"), expected);
}

#[test]
fn failed_write_right_after_rotation() {
    let (_tmp, dir) = temp_log();
    let (mut w, faults) = writer_with_faults(&dir, 1000);
    let mut expected = write_records(&mut w, 0..8);
    let end = w.end_offset();
    let batch = frames_of(&[vec![7; 900]]);

    faults.fail_writes.store(true, Ordering::SeqCst);
    assert!(w.append(&batch).is_err());
    // The rotation happened; the new segment holds nothing.
    let (base, seg) = list_segments(&dir).expect("list").pop().expect("seg");
    assert_eq!((base, file_len(&seg)), (end, 0));
    // Readers cross into the empty segment and stop cleanly.
    assert_eq!(read_all(&dir).expect("read"), expected);

    faults.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(w.append(&batch).expect("append"), end);
    expected.push((end, vec![7; 900]));
    drop(w);
    assert_eq!(open_writer(&dir, 1000).1, Recovery::default());
    assert_eq!(read_all(&dir).expect("read after reopen"), expected);
}

#[test]
fn failed_syncs() {
    let (_tmp, dir) = temp_log();
    let (mut w, faults) = writer_with_faults(&dir, 1000);
    let mut expected = write_records(&mut w, 0..8);
    let end = w.end_offset();
    let segments_before = list_segments(&dir).expect("list").len();

    faults.fail_syncs.store(true, Ordering::SeqCst);
    assert!(w.sync().is_err());
    // A rotation needs to fsync the finished segment, so it fails before creating the next.
    assert!(w.append(&frames_of(&[vec![1; 900]])).is_err());
    assert_eq!(list_segments(&dir).expect("list").len(), segments_before);
    assert_eq!(w.end_offset(), end);

    faults.fail_syncs.store(false, Ordering::SeqCst);
    w.sync().expect("sync works again");
    assert_eq!(w.append(&frames_of(&[vec![1; 900]])).expect("append"), end);
    expected.push((end, vec![1; 900]));
    assert_eq!(read_all(&dir).expect("read"), expected);
}
