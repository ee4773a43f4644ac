//! Kevel's Decision API and UserDB, for sites already integrated with Kevel (formerly
//! Adzerk) through its official SDKs (npm `@adzerk/decision-sdk`, PyPI
//! `adzerk-decision-sdk`) or plain HTTP: point the client at aftercart and it works.
//!
//! - [`request`]: Kevel's decision request and its translation into one aftercart
//!   decision per placement;
//! - [`response`]: Kevel's response shape, built from aftercart's decisions;
//! - [`ids`]: the stable integers Kevel's decisions carry for aftercart's string ids.
//!
//! The HTTP side (`POST /api/v2`, `/udb/{networkId}/…`, `GET /v1/compat/kevel/ids/{n}`)
//! is in `http::kevel`; `docs/kevel.md` lists every Kevel field and what aftercart
//! does with it.

pub mod ids;
pub mod request;
pub mod response;

pub use ids::KevelIds;
