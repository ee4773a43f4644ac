//! The exposure log: every decision, impression, click, conversion and purchase,
//! append-only and durable, for measurement.
//!
//! - [`storage`]: framed records in segment files, recovery of a torn tail, the reader.
//! - [`record`]: the schema of one record.
//! - [`writer`]: the single writer thread with group commit, and the producers' handle.
//! - [`view`]: records as JSON for `aftercart log` and `GET /v1/log`.

pub mod read;
pub mod record;
pub mod storage;
pub mod view;
pub mod writer;

pub use record::{Kind, Record};
pub use writer::{ExposureLog, LogMetrics, LogUnavailable, Replica, WriterConfig};
