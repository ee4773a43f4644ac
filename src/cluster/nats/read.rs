//! Reading the fleet's log from JetStream: `aftercart log --nats` and `aftercart report
//! --nats`.
//!
//! Records come in stream order (every node's, merged; per node in log order), each with
//! its node, its offset in that node's log and its stream sequence (a pack's records
//! share their message's); a record the stream holds twice (see [`super::pack`]) is
//! read once. Erased people's
//! records are redacted as in the local readers: the stream's `erasure` records are read
//! first, so a record is redacted even when it comes before the erasure.

use super::pack::{HEADER_PACK, Seen, decode};
use super::{HEADER_NODE, HEADER_OFFSET, SUBJECT_PREFIX, connect, context};
use crate::erasure::Erasures;
use crate::exposure::{Kind, Record};
use async_nats::jetstream;
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt;
use std::path::Path;

/// One record of the stream.
pub struct StreamRecord {
    pub seq: u64,
    pub node: String,
    /// The record's offset in its node's log.
    pub offset: u64,
    pub record: Record,
}

/// Why the stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("NATS at {url}: {error}")]
    Nats { url: String, error: String },
    #[error("stream sequence {seq}: not a record: {error}")]
    NotARecord { seq: u64, error: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Calls `each` with every record of `stream` in stream order; with `follow`, keeps
/// waiting for new ones. `each` returns false to stop.
pub async fn each_record(
    url: &str,
    stream: &str,
    follow: bool,
    each: &mut dyn FnMut(StreamRecord) -> bool,
) -> Result<(), ReadError> {
    let nats = |error: String| ReadError::Nats {
        url: url.to_string(),
        error,
    };
    let client = connect(url, "aftercart reader")
        .await
        .map_err(|e| nats(e.to_string()))?;
    let js = context(client);
    let mut erasures = Erasures::default();
    let erasure_subjects = format!("{SUBJECT_PREFIX}.*.{}", Kind::Erasure.as_str());
    read(&js, stream, &erasure_subjects, false, &mut |r| {
        erasures.note(&r.record);
        true
    })
    .await
    .map_err(|e| match e {
        ReadError::Nats { error, .. } => nats(error),
        other => other,
    })?;
    read(
        &js,
        stream,
        &format!("{SUBJECT_PREFIX}.>"),
        follow,
        &mut |mut r| {
            // Erasures that arrive while following apply from then on.
            erasures.note(&r.record);
            erasures.redact(&mut r.record);
            each(r)
        },
    )
    .await
    .map_err(|e| match e {
        ReadError::Nats { error, .. } => nats(error),
        other => other,
    })
}

async fn read(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
    follow: bool,
    each: &mut dyn FnMut(StreamRecord) -> bool,
) -> Result<(), ReadError> {
    let nats = |error: String| ReadError::Nats {
        url: String::new(),
        error,
    };
    let stream = js
        .get_stream(stream)
        .await
        .map_err(|e| nats(e.to_string()))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| nats(e.to_string()))?;
    // Without `follow`, read what matches now and stop.
    let mut pending = consumer.cached_info().num_pending;
    if !follow && pending == 0 {
        return Ok(());
    }
    let mut messages = consumer.messages().await.map_err(|e| nats(e.to_string()))?;
    let mut seen = Seen::default();
    loop {
        let Some(message) = messages.next().await else {
            return Ok(());
        };
        let message = message.map_err(|e| nats(e.to_string()))?;
        let seq = message
            .info()
            .map_err(|e| nats(e.to_string()))?
            .stream_sequence;
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let not_a_record = |error: String| ReadError::NotARecord { seq, error };
        let node = header(HEADER_NODE).unwrap_or_default();
        let packed = header(HEADER_PACK).is_some();
        let offset = header(HEADER_OFFSET).and_then(|o| o.parse::<u64>().ok());
        let records = if packed {
            decode(&message.payload).map_err(|e| not_a_record(e.to_string()))?
        } else {
            vec![(offset.unwrap_or_default(), &message.payload[..])]
        };
        // A message without an offset (not a node's) cannot be told a repeat.
        let keyed = packed || offset.is_some();
        for (offset, payload) in records {
            if keyed && !seen.first_time(&node, offset) {
                continue;
            }
            let record = Record::decode(payload).map_err(|e| not_a_record(e.to_string()))?;
            let r = StreamRecord {
                seq,
                node: node.clone(),
                offset,
                record,
            };
            if !each(r) {
                return Ok(());
            }
        }
        pending = pending.saturating_sub(1);
        if !follow && pending == 0 {
            return Ok(());
        }
    }
}

/// Copies every record of the stream into a local log in `data/log` (which must not
/// exist yet), redacted, in stream order: what `aftercart report --nats` measures, with
/// the same code as a node's own log. Returns how many records were copied.
pub async fn copy_to_log(url: &str, stream: &str, data: &Path) -> Result<u64, ReadError> {
    let dir = data.join("log");
    let (mut writer, _) = crate::exposure::storage::SegmentWriter::open(
        &dir,
        crate::config::DEFAULT_LOG_SEGMENT_BYTES,
        Default::default(),
    )
    .map_err(|e| ReadError::Io(std::io::Error::other(e.to_string())))?;
    let mut buf = Vec::new();
    let mut payload = Vec::new();
    let mut n = 0u64;
    let mut failed = None;
    each_record(url, stream, false, &mut |r| {
        payload.clear();
        r.record.encode(&mut payload);
        crate::exposure::storage::encode_frame(&payload, &mut buf);
        n += 1;
        if buf.len() >= 1 << 20 {
            if let Err(e) = writer.append(&buf) {
                failed = Some(e);
                return false;
            }
            buf.clear();
        }
        true
    })
    .await?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if !buf.is_empty() {
        writer.append(&buf)?;
    }
    writer.sync()?;
    Ok(n)
}
