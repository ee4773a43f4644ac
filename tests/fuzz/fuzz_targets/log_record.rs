//! A log record's bytes through decoding and the JSON view readers print: never a
//! panic; a decoded record encodes back to bytes that decode to the same record.
#![no_main]

use aftercart::exposure::Record;
use aftercart::exposure::view::RecordView;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Record::decode(data) {
        let _ = serde_json::to_string(&RecordView {
            offset: 0,
            record: &r,
        });
        let mut again = Vec::new();
        r.encode(&mut again);
        assert_eq!(Record::decode(&again).unwrap(), r);
    }
});
