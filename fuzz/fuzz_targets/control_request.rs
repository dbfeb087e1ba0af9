//! The node's control API parser (`hearsay::api::parse`, node/src/api.rs, included by path):
//! method, request target, `Authorization` header, body and server token, all chosen by the
//! fuzzer.
//!
//! Checked: nothing panics; a request whose `Authorization` is not exactly `Bearer <token>`
//! (or whose server token is empty) is refused with 401, and one whose header is exact never
//! is; a refusal has a status among 400, 401, 404, 405 (with `allow`) and 413, and a one-line
//! printable ASCII message; `parse_head` agrees with `parse`; an accepted request matches what
//! was sent (method and path of its route, the body as payload, at most `MAX_BODY` bytes, names
//! not empty) and, written out again in canonical form (its parameters encoded here), parses to
//! the same request.
//!
//! Input: `flags`, then five length-prefixed chunks (`[len(2), bytes]`, read as lossy UTF-8):
//! method, target, authorization, body, token. Flags: bit 0, no `Authorization` header; bit 1,
//! the header is built as `Bearer <token>` (the authorization chunk is then an edit script:
//! `[off, byte]*`, empty for an exact header); bit 2, the target is made from the target chunk
//! as `/v1/ROUTE?` + chunk, ROUTE picked by bits 3-7 (modulo the 9 routes); bit 5, the body
//! is padded to `MAX_BODY - 1 + (bits 6-7)` bytes.
#![no_main]

mod common;

// api.rs depends on std and hearsay-proto only: included on its own, so this target does not
// build the whole node (QUIC, TLS, storage) and does not break when the rest of node/ does.
#[path = "../../node/src/api.rs"]
mod api;

use api::{ApiRequest, MAX_BODY, Route};
use common::Input;
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Percent-encodes everything but unreserved characters (written here, independent of api.rs).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The target of `request` written out with the parameters it carries, encoded here.
fn canonical(request: &ApiRequest<'_>) -> String {
    let path = request.route().path();
    let replay = |r: bool| if r { "replay=1" } else { "replay=0" };
    match request {
        ApiRequest::Status | ApiRequest::Peers => path.to_string(),
        ApiRequest::Publish { topic, .. } => format!("{path}?topic={}", encode(topic)),
        ApiRequest::Subscribe { topic, replay: r } => {
            format!("{path}?{}&topic={}", replay(*r), encode(topic))
        }
        ApiRequest::Presence { group, .. } => format!("{path}?group={}", encode(group)),
        ApiRequest::Send { to, .. } => format!("{path}?to={to}"),
        ApiRequest::Inbox { replay: r } => format!("{path}?{}", replay(*r)),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.u8();
    let method = text(input.chunk()).into_owned();
    let target_chunk = text(input.chunk()).into_owned();
    let auth_chunk = input.chunk();
    let mut body = input.chunk().to_vec();
    let token = text(input.chunk()).into_owned();

    let target = if flags & 0x04 != 0 {
        let route = Route::ALL[usize::from(flags >> 3) % Route::ALL.len()];
        format!("{}?{target_chunk}", route.path())
    } else {
        target_chunk
    };
    let authorization: Option<String> = if flags & 0x01 != 0 {
        None
    } else if flags & 0x02 != 0 {
        let mut header = format!("Bearer {token}").into_bytes();
        for edit in auth_chunk.chunks_exact(2) {
            let len = header.len();
            if let (Some(b), Some(&x)) = (header.get_mut(usize::from(edit[0]) % len), edit.get(1)) {
                *b = x;
            }
        }
        Some(String::from_utf8_lossy(&header).into_owned())
    } else {
        Some(text(auth_chunk).into_owned())
    };
    if flags & 0x20 != 0 {
        body.resize(MAX_BODY - 1 + usize::from(flags >> 6), b'x');
    }

    let auth = authorization.as_deref();
    let result = api::parse(&method, &target, auth, &body, &token);
    let head = api::parse_head(&method, &target, auth, &token);

    let exact = !token.is_empty() && auth == Some(format!("Bearer {token}").as_str());
    assert_eq!(api::authorized(auth, &token), exact);
    match &result {
        Err(e) => {
            assert!(
                matches!(e.status, 400 | 401 | 404 | 405 | 413),
                "unexpected status {}",
                e.status
            );
            assert_eq!(
                e.allow.is_some(),
                e.status == 405,
                "Allow goes with 405 only"
            );
            assert!(!e.message.is_empty(), "an empty message");
            assert!(
                e.message.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
                "a message that is not one line of printable ASCII: {:?}",
                e.message
            );
            assert!(e.message.len() <= 512, "an overlong message");
            if !exact {
                assert_eq!(e.status, 401, "a request without the exact token got {e}");
            } else {
                assert_ne!(e.status, 401, "the exact token was refused: {e}");
            }
            // parse_head fails the same way unless the failure is about the query or body.
            match &head {
                Err(h) => assert_eq!(h, e),
                Ok(_) => assert!(matches!(e.status, 400 | 413)),
            }
        }
        Ok(request) => {
            assert!(exact, "a request without the exact token was accepted");
            let route = request.route();
            assert_eq!(head.as_ref().ok(), Some(&route), "parse_head disagrees");
            assert_eq!(method, route.method());
            let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p);
            assert_eq!(path, route.path());
            if !route.takes_body() {
                assert!(body.is_empty(), "a body accepted on {}", route.path());
            }
            match request {
                ApiRequest::Publish { topic, payload } => {
                    assert!(!topic.is_empty());
                    assert_eq!(*payload, &body[..], "the payload is not the body");
                    assert!(payload.len() <= MAX_BODY);
                }
                ApiRequest::Send { payload, .. } => {
                    assert_eq!(*payload, &body[..], "the payload is not the body");
                    assert!(payload.len() <= MAX_BODY);
                }
                ApiRequest::Subscribe { topic, .. } => assert!(!topic.is_empty()),
                ApiRequest::Presence { action, group } => {
                    assert!(!group.is_empty());
                    assert!(route.path().ends_with(action.as_str()));
                }
                ApiRequest::Status | ApiRequest::Peers | ApiRequest::Inbox { .. } => {}
            }
            // The request written out again in canonical form parses to the same request.
            let again = canonical(request);
            let body = if route.takes_body() { &body[..] } else { &[] };
            let reparsed = api::parse(&method, &again, auth, body, &token);
            assert_eq!(
                reparsed.as_ref(),
                Ok(request),
                "{again:?} does not parse as the request it was written from"
            );
        }
    }
    let _ = api::parse_metrics(&method, &target);
});
