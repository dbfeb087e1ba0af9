//! `PeerRecord::from_bytes` on arbitrary bytes must never panic; whatever it accepts must
//! round-trip through `to_bytes`, and `verify` on it must return (Ok or Err), never panic.
#![no_main]

use hearsay_proto::{PeerRecord, Timestamp, default_provider};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = PeerRecord::from_bytes(data) else {
        return;
    };
    let encoded = record.to_bytes().expect("a decoded record must re-encode");
    let again = PeerRecord::from_bytes(&encoded).expect("a re-encoded record must decode");
    assert_eq!(again, record, "from_bytes(to_bytes(record)) != record");

    let provider = default_provider();
    // At its own issue time, and at the extremes of the clock.
    for now in [record.issued_at, Timestamp::EPOCH, Timestamp::MAX] {
        let _ = record.verify(&*provider, now);
    }
});
