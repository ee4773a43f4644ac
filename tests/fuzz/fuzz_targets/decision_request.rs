//! A decision request body (JSON or MessagePack, by the first byte) through decoding
//! and validation: never a panic, every problem names its field.
#![no_main]

use aftercart::decision::{ConsentDefaults, DecisionRequest, Limits};
use aftercart::identity::IdentityHasher;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let decoded: Option<DecisionRequest> = if mode & 1 == 0 {
        serde_json::from_slice(body).ok()
    } else {
        rmp_serde::from_slice(body).ok()
    };
    let Some(req) = decoded else { return };
    let limits = Limits {
        max_slots: 10,
        max_items: 100,
    };
    let consent = ConsentDefaults {
        personalization: mode & 2 == 0,
        measurement: mode & 4 == 0,
        gpc: mode & 8 != 0,
    };
    let hasher = IdentityHasher::new(&[0; 32]);
    if let Err(p) = req.validate(limits, "USD", consent, &hasher, 1_795_000_000_000) {
        assert!(
            p.0.iter()
                .all(|d| !d.path.is_empty() && !d.message.is_empty())
        );
    }
});
