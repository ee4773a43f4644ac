//! The HTTP API: server, routing, codecs, errors, CORS, and the checkout SDK and demo
//! page it serves.

mod admin;
mod auth;
mod campaigns;
mod codec;
mod conversions;
mod cors;
mod decisions;
mod error;
mod events;
mod inventory;
mod kevel;
pub mod log;
mod manage;
pub(crate) mod profiles;
mod reports;
mod router;
pub mod sdk;
mod server;

pub use error::ApiError;
pub use server::run;
