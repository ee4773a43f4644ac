//! The HTTP API: server, routing, codecs and errors.

mod admin;
mod auth;
mod campaigns;
mod codec;
mod conversions;
mod decisions;
mod error;
mod events;
mod inventory;
mod kevel;
pub mod log;
mod manage;
mod profiles;
mod reports;
mod router;
mod server;

pub use error::ApiError;
pub use server::run;
