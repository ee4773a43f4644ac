//! Who is calling: the API key of a request, checked against the roles an endpoint
//! allows. 401 without a known key, 403 with a key of another role.

use super::error::ApiError;
use crate::access::{Principal, Role};
use crate::app::App;
use crate::validation::Detail;
use http::HeaderMap;

/// The caller's principal, if it holds one of `roles` (admin always does).
pub fn require(app: &App, headers: &HeaderMap, roles: &[Role]) -> Result<Principal, ApiError> {
    let who = app
        .authenticate(headers)
        .ok_or_else(ApiError::unauthorized)?;
    if who.has_role(roles) {
        return Ok(who);
    }
    let allowed: Vec<&str> = std::iter::once("admin")
        .chain(roles.iter().map(|r| r.as_str()))
        .collect();
    Err(ApiError::forbidden(Detail::new(
        "",
        format!(
            "a key with the role {:?} may not do this (allowed: {})",
            who.role.as_str(),
            allowed.join(", ")
        ),
    )))
}
