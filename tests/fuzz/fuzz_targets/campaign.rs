//! A campaign document (JSON or MessagePack, by the first byte) through validation:
//! never a panic; a valid one survives writing and reading back unchanged.
#![no_main]

use aftercart::campaign::{ValidationRules, parse_campaign_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let rules = ValidationRules {
        allow_http_urls: mode & 2 != 0,
    };
    if let Ok(c) = parse_campaign_bytes(body, mode & 1 == 1, rules) {
        let written = serde_json::to_vec(&c).unwrap();
        let again = parse_campaign_bytes(&written, false, rules).unwrap();
        assert_eq!(again, c);
    }
});
