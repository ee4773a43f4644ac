//! Customer identifiers: hashed at the door, never kept raw.
//!
//! Every identifier becomes a 128-bit keyed hash (HMAC-SHA256 under the deployment's
//! identity key, truncated): stable within a deployment, useless to anyone without the
//! key, and compact enough to keep millions in memory. A raw `email` is trimmed,
//! lower-cased and SHA-256'd first, so it and its `email_sha256` are the same identifier.
//!
//! [`graph`] links the identifiers seen together into profiles.

pub mod graph;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The longest e-mail address accepted (RFC 5321 allows 254).
const MAX_EMAIL: usize = 256;

/// The kinds of identifier the API accepts.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    EmailSha256,
    PhoneSha256,
    DeviceId,
    LoyaltyId,
    PaymentToken,
    CustomerId,
}

impl IdKind {
    pub const ALL: [IdKind; 6] = [
        IdKind::CustomerId,
        IdKind::LoyaltyId,
        IdKind::EmailSha256,
        IdKind::PhoneSha256,
        IdKind::PaymentToken,
        IdKind::DeviceId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::EmailSha256 => "email_sha256",
            IdKind::PhoneSha256 => "phone_sha256",
            IdKind::DeviceId => "device_id",
            IdKind::LoyaltyId => "loyalty_id",
            IdKind::PaymentToken => "payment_token",
            IdKind::CustomerId => "customer_id",
        }
    }
}

/// A hashed identifier: its kind and its keyed hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdHash {
    pub kind: IdKind,
    pub hash: u128,
}

/// Hashes identifiers under the deployment's key.
#[derive(Clone)]
pub struct IdentityHasher {
    mac: Hmac<Sha256>,
}

impl IdentityHasher {
    pub fn new(key: &[u8; 32]) -> IdentityHasher {
        // HMAC accepts keys of any length.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        IdentityHasher { mac }
    }

    /// The keyed hash of an identifier value of `kind`. SHA-256 hex values are
    /// compared case-insensitively.
    pub fn hash(&self, kind: IdKind, value: &str) -> IdHash {
        let mut mac = self.mac.clone();
        mac.update(&[kind as u8]);
        match kind {
            IdKind::EmailSha256 | IdKind::PhoneSha256 => {
                mac.update(value.trim().to_ascii_lowercase().as_bytes())
            }
            _ => mac.update(value.as_bytes()),
        }
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 16];
        first.copy_from_slice(&out[..16]);
        IdHash {
            kind,
            hash: u128::from_be_bytes(first),
        }
    }

    /// Checks the form of an identifier as a client sent it and hashes it. The error
    /// says what is wrong without echoing the value: identifiers are personal data.
    pub fn hash_given(&self, kind: IdKind, value: &str) -> Result<IdHash, &'static str> {
        let is_digest = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
        if matches!(kind, IdKind::EmailSha256 | IdKind::PhoneSha256) && !is_digest {
            return Err("must be a SHA-256 digest: 64 hex characters");
        }
        Ok(self.hash(kind, value))
    }

    /// Checks a raw e-mail address and hashes it as its `email_sha256`; the address
    /// itself is dropped here.
    pub fn hash_given_email(&self, email: &str) -> Result<IdHash, &'static str> {
        let e = email.trim();
        if e.len() > MAX_EMAIL || !e.contains('@') {
            return Err("must be an e-mail address");
        }
        Ok(self.hash_raw_email(e))
    }

    /// A keyed 128-bit hash of several byte strings (length-prefixed, so `["ab", "c"]`
    /// and `["a", "bc"]` differ), for dedup keys that must survive restarts and resist
    /// crafted collisions.
    pub fn keyed(&self, parts: &[&[u8]]) -> u128 {
        let mut mac = self.mac.clone();
        mac.update(&[0xff]);
        for p in parts {
            mac.update(&(p.len() as u64).to_le_bytes());
            mac.update(p);
        }
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 16];
        first.copy_from_slice(&out[..16]);
        u128::from_be_bytes(first)
    }

    /// A raw e-mail address as the `email_sha256` identifier it is.
    pub fn hash_raw_email(&self, email: &str) -> IdHash {
        self.hash(
            IdKind::EmailSha256,
            &sha256_hex(email.trim().to_lowercase().as_bytes()),
        )
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::secrets::hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_email_and_its_sha256_are_one_identifier() {
        let h = IdentityHasher::new(&[1; 32]);
        let hex = sha256_hex(b"ann@example.com");
        assert_eq!(
            h.hash_raw_email("  Ann@Example.com "),
            h.hash(IdKind::EmailSha256, &hex)
        );
        assert_eq!(
            h.hash(IdKind::EmailSha256, &hex.to_uppercase()),
            h.hash(IdKind::EmailSha256, &hex)
        );
    }

    #[test]
    fn kinds_and_keys_separate_identifiers() {
        let h = IdentityHasher::new(&[1; 32]);
        assert_ne!(
            h.hash(IdKind::DeviceId, "x").hash,
            h.hash(IdKind::LoyaltyId, "x").hash
        );
        let other = IdentityHasher::new(&[2; 32]);
        assert_ne!(
            h.hash(IdKind::DeviceId, "x"),
            other.hash(IdKind::DeviceId, "x")
        );
    }
}
