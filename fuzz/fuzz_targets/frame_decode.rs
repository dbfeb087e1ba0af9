//! `Frame::decode` on arbitrary bytes must never panic; whatever it accepts must re-encode and
//! decode again to an equal frame.
#![no_main]

use hearsay_proto::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    let encoded = frame
        .encode()
        .expect("a decoded frame must re-encode (it fit the limits once)");
    let again = Frame::decode(&encoded).expect("a re-encoded frame must decode");
    assert_eq!(again, frame, "decode(encode(frame)) != frame");
});
