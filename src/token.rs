//! Tracking tokens: what an impression, click or purchase URL carries, sealed.
//!
//! A token is a MessagePack tuple sealed with XChaCha20-Poly1305 under the deployment's
//! token key and written as unpadded base64url: opaque to anyone who sees the URL (a
//! Referer header, a proxy log), and any change to it fails authentication. The 24-byte
//! nonce is random, so sealing needs no coordination between nodes that share the key.
//! One token serves every event of one offer (the URL path says which event).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::campaign::{BidModel, Channel};
use crate::ids::DecisionId;

/// The token format; bumped when the payload changes shape.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Tokens longer than this are refused before any decoding work.
pub const MAX_TOKEN_CHARS: usize = 1024;

/// Everything an event needs to be counted and charged without a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPayload {
    pub decision: DecisionId,
    pub slot: u8,
    pub campaign: String,
    pub creative: String,
    /// The profile the offer was served to; `None` when anonymous or without
    /// measurement consent.
    pub profile: Option<u128>,
    pub channel: Channel,
    pub placement: String,
    /// `online`, or the store id for in-store decisions.
    pub location: String,
    pub model: BidModel,
    /// What one billable event costs the campaign, in micros.
    pub price: i64,
    /// The product SKU and unit price for product creatives.
    pub product: Option<(String, i64)>,
    /// When the decision was made, in milliseconds since the epoch.
    pub issued_ms: i64,
    /// The expected cost the offer reserved from its budget, in micros (settled by
    /// its impression or click).
    pub reserved: i64,
}

/// The wire form: a positional tuple keeps tokens short.
#[derive(Serialize, Deserialize)]
struct Wire(
    u8,
    u64,
    u64,
    u8,
    String,
    String,
    Option<(u64, u64)>,
    u8,
    String,
    String,
    u8,
    i64,
    Option<(String, i64)>,
    i64,
    // Added after the first release: tokens minted before it decode with 0.
    #[serde(default)] i64,
);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("tracking token is malformed")]
    Malformed,
    #[error("tracking token failed authentication")]
    Forged,
}

/// Seals and opens tokens with one key.
pub struct TokenSealer {
    cipher: XChaCha20Poly1305,
}

impl TokenSealer {
    pub fn new(key: &[u8; 32]) -> TokenSealer {
        TokenSealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    pub fn seal(&self, p: &TokenPayload) -> String {
        let (hi, lo) = p.decision.halves();
        let wire = Wire(
            FORMAT,
            hi,
            lo,
            p.slot,
            p.campaign.clone(),
            p.creative.clone(),
            p.profile.map(|v| ((v >> 64) as u64, v as u64)),
            p.channel as u8,
            p.placement.clone(),
            p.location.clone(),
            p.model as u8,
            p.price,
            p.product.clone(),
            p.issued_ms,
            p.reserved,
        );
        // Encoding a tuple of plain values into a Vec cannot fail.
        let plain = rmp_serde::to_vec(&wire).unwrap_or_default();
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        // Encryption fails only for plaintexts beyond 256 GiB.
        let sealed = self
            .cipher
            .encrypt(nonce, plain.as_slice())
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, token: &str) -> Result<TokenPayload, TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| TokenError::Forged)?;
        let w: Wire = rmp_serde::from_slice(&plain).map_err(|_| TokenError::Malformed)?;
        if w.0 != FORMAT {
            return Err(TokenError::Malformed);
        }
        let channel = Channel::ALL
            .get(w.7 as usize)
            .copied()
            .ok_or(TokenError::Malformed)?;
        let model = match w.10 {
            0 => BidModel::Cpm,
            1 => BidModel::Cpc,
            _ => return Err(TokenError::Malformed),
        };
        Ok(TokenPayload {
            decision: DecisionId::from_halves(w.1, w.2),
            slot: w.3,
            campaign: w.4,
            creative: w.5,
            profile: w.6.map(|(hi, lo)| ((hi as u128) << 64) | lo as u128),
            channel,
            placement: w.8,
            location: w.9,
            model,
            price: w.11,
            product: w.12,
            issued_ms: w.13,
            reserved: w.14,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> TokenPayload {
        TokenPayload {
            decision: DecisionId(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            slot: 1,
            campaign: "cmp-streamly".into(),
            creative: "cr-1".into(),
            profile: Some(u128::MAX - 7),
            channel: Channel::InStore,
            placement: "pos_receipt".into(),
            location: "store-042".into(),
            model: BidModel::Cpc,
            price: 1_500_000,
            product: Some(("SKU-77".into(), 3_490_000)),
            issued_ms: 1_763_700_000_123,
            reserved: 12_500,
        }
    }

    #[test]
    fn a_sealed_token_opens_to_the_same_payload_and_hides_it() {
        let sealer = TokenSealer::new(&[7; 32]);
        let t = sealer.seal(&payload());
        assert_eq!(sealer.open(&t), Ok(payload()));
        assert!(
            !t.contains("streamly") && !t.contains("store-042"),
            "opaque: {t}"
        );
        assert_ne!(t, sealer.seal(&payload()), "fresh nonce per seal");
    }

    #[test]
    fn tampered_foreign_and_garbage_tokens_are_refused() {
        let sealer = TokenSealer::new(&[7; 32]);
        let t = sealer.seal(&payload());
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let last = bytes.len() - 20;
        bytes[last] ^= 1;
        assert_eq!(
            sealer.open(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(TokenError::Forged)
        );
        assert_eq!(TokenSealer::new(&[8; 32]).open(&t), Err(TokenError::Forged));
        assert_eq!(sealer.open("%%%"), Err(TokenError::Malformed));
        assert_eq!(sealer.open("abc"), Err(TokenError::Malformed));
        assert_eq!(sealer.open(&"A".repeat(5000)), Err(TokenError::Malformed));
    }
}
