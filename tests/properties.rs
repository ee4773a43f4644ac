//! Property tests: hostile and random input to the three parsers that take bytes from
//! outside (decision requests, campaign documents, log records) never panics, and
//! every validation error names where it is.
//!
//! The same parsers have cargo-fuzz targets in `tests/fuzz/` for longer runs.

use aftercart::campaign::{ValidationRules, parse_campaign, parse_campaign_bytes};
use aftercart::decision::{ConsentDefaults, DecisionRequest, Limits};
use aftercart::exposure::Record;
use aftercart::identity::IdentityHasher;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels, with keys drawn from the real field names so
/// the parsers get past their first checks often.
fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "placement",
        "channel",
        "slots",
        "transaction",
        "id",
        "total",
        "currency",
        "items",
        "sku",
        "category",
        "brand",
        "price",
        "quantity",
        "customer",
        "ids",
        "email",
        "email_sha256",
        "device_id",
        "loyalty_id",
        "context",
        "country",
        "store_id",
        "consent",
        "personalization",
        "measurement",
        "explain",
        "test",
        "advertiser",
        "name",
        "status",
        "start",
        "end",
        "budget",
        "daily",
        "bid",
        "model",
        "amount",
        "targeting",
        "creatives",
        "kind",
        "headline",
        "click_url",
        "product",
        "frequency_caps",
        "max",
        "per_seconds",
        "dayparts",
        "from_hour",
        "to_hour",
        "days",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9 ./:_@-]{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "online",
            "app",
            "in_store",
            "cpm",
            "cpc",
            "offer",
            "product",
            "2026-11-22T10:00:00Z",
            "https://shop.example/x",
            "USD",
            "active"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn valid_request() -> Value {
    json!({
        "placement": "order_confirmation", "channel": "online", "slots": 2,
        "transaction": {"id": "T-1", "total": 10.0, "currency": "USD",
            "items": [{"sku": "S", "category": "a/b", "brand": "B", "price": 10.0, "quantity": 1}]},
        "customer": {"ids": {"email": "a@b.example", "device_id": "d"}},
        "context": {"country": "US", "store_id": "s-1"},
        "consent": {"personalization": true, "measurement": true}
    })
}

fn valid_campaign() -> Value {
    json!({
        "id": "c-1", "advertiser": "a", "name": "n", "status": "active",
        "start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z",
        "budget": {"daily": 10.0}, "bid": {"model": "cpm", "amount": 5.0},
        "frequency_caps": [{"max": 1, "per_seconds": 60}],
        "targeting": {"channels": ["online"], "dayparts": [{"days": ["mon"], "from_hour": 8, "to_hour": 20}]},
        "creatives": [{"id": "cr", "kind": "offer", "headline": "h", "click_url": "https://x.example/"}]
    })
}

/// `base` with the value at a random path replaced by `with`.
fn mutate(mut base: Value, path: &[usize], with: Value) -> Value {
    replace(&mut base, path, with);
    base
}

fn replace(at: &mut Value, path: &[usize], with: Value) {
    let Some((&i, rest)) = path.split_first() else {
        *at = with;
        return;
    };
    let next = match at {
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(i % m.len()).cloned().unwrap_or_default();
            m.get_mut(&key)
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            a.get_mut(i % n)
        }
        _ => None,
    };
    match next {
        Some(n) => replace(n, rest, with),
        None => *at = with,
    }
}

fn check_request(v: Value) {
    let Ok(req) = serde_json::from_value::<DecisionRequest>(v) else {
        return; // a structural error: the HTTP layer answers 400 with the serde path
    };
    let limits = Limits {
        max_slots: 10,
        max_items: 100,
    };
    let consent = ConsentDefaults {
        personalization: true,
        measurement: true,
        gpc: false,
    };
    let hasher = IdentityHasher::new(&[0; 32]);
    if let Err(p) = req.validate(limits, "USD", consent, &hasher, 1_795_000_000_000) {
        assert!(!p.0.is_empty());
        for d in &p.0 {
            assert!(!d.message.is_empty());
            assert!(
                !d.path.is_empty(),
                "every request problem names a field: {d:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn decision_requests_never_panic(v in json_value()) {
        check_request(v);
    }

    #[test]
    fn mutated_decision_requests_name_the_field(path in prop::collection::vec(0usize..8, 0..4), with in json_value()) {
        check_request(mutate(valid_request(), &path, with));
    }

    #[test]
    fn campaigns_never_panic_and_errors_have_paths(path in prop::collection::vec(0usize..8, 0..5), with in json_value()) {
        let doc = mutate(valid_campaign(), &path, with);
        if let Err(p) = parse_campaign(&doc, "", ValidationRules::default()) {
            prop_assert!(!p.0.is_empty());
            for d in &p.0 {
                prop_assert!(!d.message.is_empty());
            }
        }
    }

    #[test]
    fn campaign_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), msgpack in any::<bool>()) {
        let _ = parse_campaign_bytes(&bytes, msgpack, ValidationRules::default());
    }

    #[test]
    fn log_records_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Record::decode(&bytes);
    }

    #[test]
    fn damaged_records_never_panic(flip in 0usize..400, bit in 0u8..8, cut in 0usize..400) {
        let mut r = Record::new(aftercart::exposure::Kind::Conversion, 1_795_000_000_000);
        r.order_id = Some("ORD-1".into());
        r.campaign = Some("c".into());
        r.total = Some(12_340_000);
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        prop_assert_eq!(Record::decode(&bytes).unwrap(), r);
        let i = flip % bytes.len();
        bytes[i] ^= 1 << bit;
        bytes.truncate(cut.max(1).min(bytes.len()));
        let _ = Record::decode(&bytes);
    }
}
