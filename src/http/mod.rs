//! The HTTP API: server, routing, codecs and errors.

mod admin;
mod codec;
mod conversions;
mod decisions;
mod error;
mod events;
pub mod log;
mod router;
mod server;

pub use error::ApiError;
pub use server::run;
