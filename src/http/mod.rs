//! The HTTP API: server, routing, codecs and errors.

mod admin;
mod codec;
mod decisions;
mod error;
mod router;
mod server;

pub use error::ApiError;
pub use server::run;
