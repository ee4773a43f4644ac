//! Compatibility with other ad servers' clients, so an existing integration can switch
//! to aftercart by changing its base URL.
//!
//! - [`kevel`]: Kevel's (Adzerk's) Decision API and UserDB, as its official SDKs call them.

pub mod kevel;
