//! Frames: `[len: u32 LE][crc32: u32 LE][payload: len bytes]`, CRC = `crc32fast::hash(payload)`.
//!
//! A valid frame has 1..=`MAX_PAYLOAD` payload bytes and a matching CRC. Zero length is invalid
//! on purpose: 8 zero bytes would otherwise be a valid empty frame (the CRC of nothing is 0),
//! and zero-filled space left at the end of a file by a crash would read as records.
//!
//! Decoding reports *what* it found (whole frame, clean end, incomplete frame, bad frame) and
//! leaves the decision "torn tail or corruption" to the caller, because the writer and the
//! readers decide it with different knowledge (see the parent module). After a bad frame the
//! reader is positioned right after the part of the frame that could be trusted to exist (the
//! payload if the length was sane, else the header), which is where the "rest of the file is
//! only zeros" check must start.

use super::{FRAME_HEADER, MAX_PAYLOAD};
use std::io::{self, BufRead, Read};

/// Appends one frame for `payload` to `out`.
///
/// The payload must be 1..=[`MAX_PAYLOAD`] bytes (a MessagePack record is never empty). Any
/// other payload still produces bytes, but a frame that `SegmentWriter::append` rejects, so an
/// oversized record can never reach the log.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    // A payload over 4 GiB declares u32::MAX instead of a silently wrapped length.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.reserve(FRAME_HEADER + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What [`read_frame`] found at the reader's position.
#[derive(Debug)]
pub(crate) enum FrameRead {
    /// A whole, valid frame of this many bytes (header included); its payload is in the buffer.
    Whole(u64),
    /// End of file exactly at a frame boundary.
    End,
    /// End of file inside the frame: a partial header, or a sane length reaching past the end.
    Incomplete,
    /// The frame is complete enough to judge and does not check out.
    Bad(String),
}

/// Splits a header into (declared length, stored CRC).
fn parse_header(header: &[u8; FRAME_HEADER]) -> (u32, u32) {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    (len, crc)
}

/// Checks a declared payload length; the error is the reason it is impossible.
fn check_len(len: u32) -> Result<usize, String> {
    let len = len as usize;
    if len == 0 {
        Err("declared length is 0 (unwritten, zero-filled space or damage)".into())
    } else if len > MAX_PAYLOAD {
        Err(format!(
            "declared length {len} exceeds the {MAX_PAYLOAD}-byte maximum"
        ))
    } else {
        Ok(len)
    }
}

fn check_crc(payload: &[u8], stored: u32) -> Result<(), String> {
    let computed = crc32fast::hash(payload);
    if computed == stored {
        Ok(())
    } else {
        Err(format!(
            "crc mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ))
    }
}

/// Reads the frame at the reader's position, leaving its payload in `payload`.
///
/// On [`FrameRead::Incomplete`] the reader has consumed an unspecified part of the frame; the
/// caller seeks back if it wants to retry.
pub(crate) fn read_frame<R: BufRead>(r: &mut R, payload: &mut Vec<u8>) -> io::Result<FrameRead> {
    let mut header = [0u8; FRAME_HEADER];
    let available = r.fill_buf()?;
    if available.is_empty() {
        return Ok(FrameRead::End);
    }
    // Fast path: the whole header is in the buffer, which is nearly always the case.
    if let Some(bytes) = available.get(..FRAME_HEADER) {
        header.copy_from_slice(bytes);
        r.consume(FRAME_HEADER);
    } else if !read_full(r, &mut header)? {
        return Ok(FrameRead::Incomplete);
    }
    let (len, stored_crc) = parse_header(&header);
    let len = match check_len(len) {
        Ok(len) => len,
        Err(reason) => return Ok(FrameRead::Bad(reason)),
    };
    payload.clear();
    payload.resize(len, 0);
    if !read_full(r, payload)? {
        return Ok(FrameRead::Incomplete);
    }
    match check_crc(payload, stored_crc) {
        Ok(()) => Ok(FrameRead::Whole((FRAME_HEADER + len) as u64)),
        Err(reason) => Ok(FrameRead::Bad(reason)),
    }
}

/// `read_exact`, but end of file is `Ok(false)` instead of an error.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether everything from the reader's position to end of file is zero bytes (consumes it).
pub(crate) fn rest_is_zero<R: BufRead>(r: &mut R) -> io::Result<bool> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(true);
        }
        if buf.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        let n = buf.len();
        r.consume(n);
    }
}

/// Checks that `frames` is a sequence of whole, valid frames (lengths tile the buffer exactly
/// and every CRC matches). The writer refuses anything else, because one bad frame written into
/// the middle of the log would later be indistinguishable from disk corruption and stop every
/// reader at it. Re-hashing costs far less than the write itself.
pub(crate) fn validate_batch(frames: &[u8]) -> Result<(), String> {
    let mut rest = frames;
    let mut at = 0usize;
    while !rest.is_empty() {
        let Some((header, after)) = rest.split_first_chunk::<FRAME_HEADER>() else {
            return Err(format!("partial frame header at batch position {at}"));
        };
        let (len, stored_crc) = parse_header(header);
        let len = check_len(len).map_err(|r| format!("frame at batch position {at}: {r}"))?;
        let Some((payload, after)) = after.split_at_checked(len) else {
            return Err(format!(
                "frame at batch position {at} declares {len} bytes but the batch ends first"
            ));
        };
        check_crc(payload, stored_crc).map_err(|r| format!("frame at batch position {at}: {r}"))?;
        at += FRAME_HEADER + len;
        rest = after;
    }
    Ok(())
}
