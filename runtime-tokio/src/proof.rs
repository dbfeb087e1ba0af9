//! The identity proof (SPEC.md §20.3): after the QUIC handshake each side sends its signed
//! [`PeerRecord`] and an ML-DSA-65 signature over the TLS exporter secret of this very
//! connection (channel binding), as the first message of its stream.

use crate::error::Refusal;
use hearsay_proto::crypto::{SIGNATURE_LEN, SignatureBytes, Signer, signing_input};
use hearsay_proto::{CryptoProvider, PeerId, PeerRecord, Timestamp};
use std::net::SocketAddr;

/// The domain of the channel-binding signature (SPEC.md §3 style).
pub const CHANNEL_BINDING_DOMAIN: &str = "hearsay/v1/quic-channel-binding";
/// The TLS exporter label (RFC 8446 §7.5); the context is empty.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-hearsay/1 channel binding";
/// Length of the exported secret.
pub const BINDING_LEN: usize = 32;
/// Longest proof body accepted (a record with 8 addresses of 128 bytes is about 7.6 KB).
pub const MAX_PROOF_LEN: usize = 16 * 1024;

/// Which end of the QUIC connection signs: part of the signed bytes, so that a proof can never
/// be reflected back to the side that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The QUIC client.
    Dialer = 0,
    /// The QUIC server.
    Listener = 1,
}

impl Role {
    pub(crate) fn other(self) -> Role {
        match self {
            Role::Dialer => Role::Listener,
            Role::Listener => Role::Dialer,
        }
    }
}

/// The connection's channel binding: 32 bytes exported from its TLS 1.3 session.
pub(crate) fn channel_binding(conn: &quinn::Connection) -> Result<[u8; BINDING_LEN], Refusal> {
    let mut out = [0u8; BINDING_LEN];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .map_err(|_| Refusal::Tls("the TLS session cannot export keying material".into()))?;
    Ok(out)
}

/// The bytes a proof signs.
fn signed_bytes(binding: &[u8; BINDING_LEN], role: Role) -> Vec<u8> {
    let mut body = Vec::with_capacity(BINDING_LEN + 1);
    body.extend_from_slice(binding);
    body.push(role as u8);
    signing_input(CHANNEL_BINDING_DOMAIN, &body)
}

/// Encodes this side's proof, length prefix included:
/// `u32 BE length ‖ record (CBOR) ‖ signature (3,309 B)`.
pub(crate) fn encode(
    record: &PeerRecord,
    signer: &dyn Signer,
    binding: &[u8; BINDING_LEN],
    role: Role,
) -> Result<Vec<u8>, &'static str> {
    let record = record
        .to_bytes()
        .map_err(|_| "own record does not encode")?;
    let signature = signer
        .sign(&signed_bytes(binding, role))
        .map_err(|_| "signing failed")?;
    let len = record.len() + SIGNATURE_LEN;
    if len > MAX_PROOF_LEN {
        return Err("own record is too large for a proof");
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&record);
    out.extend_from_slice(signature.as_bytes());
    Ok(out)
}

/// What the verifier knows.
pub(crate) struct Expectations<'a> {
    /// The crypto provider.
    pub crypto: &'a dyn CryptoProvider,
    /// The current time, for the record's validity window.
    pub now: Timestamp,
    /// This node's id (a proof of it is a connection to self).
    pub me: PeerId,
    /// The id a pinned dial expects.
    pub expected: Option<PeerId>,
}

/// Checks a proof body (without its length prefix) made by the side playing `peer_role`, in
/// order of cost: framing, self, pinned id, record (§4), channel-binding signature.
pub(crate) fn verify(
    body: &[u8],
    binding: &[u8; BINDING_LEN],
    peer_role: Role,
    exp: &Expectations<'_>,
) -> Result<PeerRecord, Refusal> {
    let Some(record_len) = body.len().checked_sub(SIGNATURE_LEN) else {
        return Err(Refusal::MalformedProof("shorter than a signature"));
    };
    let (record, signature) = body.split_at(record_len);
    let record = PeerRecord::from_bytes(record)
        .map_err(|_| Refusal::MalformedProof("record does not decode"))?;
    let signature = SignatureBytes::copy_from_slice(signature)
        .map_err(|_| Refusal::MalformedProof("signature length"))?;
    if record.peer_id == exp.me {
        return Err(Refusal::SelfConnection);
    }
    if let Some(expected) = exp.expected
        && expected != record.peer_id
    {
        return Err(Refusal::WrongPeer {
            expected,
            found: record.peer_id,
        });
    }
    record
        .verify(exp.crypto, exp.now)
        .map_err(Refusal::BadRecord)?;
    if !exp.crypto.verify(
        &record.verifying_key,
        &signed_bytes(binding, peer_role),
        &signature,
    ) {
        return Err(Refusal::BadSignature);
    }
    Ok(record)
}

/// Longest session-info body (SPEC.md §20.3).
pub const MAX_INFO_LEN: usize = 64;
/// Session-info tag: the address the sender sees the receiver at (a reflector's answer).
const INFO_OBSERVED: u8 = 1;

/// Encodes the session-info chunk each side sends right after its proof, length prefix
/// included: empty, or `1 ‖ len ‖ address as text` when this side reflects (`observed` is the
/// peer's address as seen from here).
pub(crate) fn encode_info(observed: Option<SocketAddr>) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(addr) = observed {
        let text = addr.to_string();
        // A socket address is at most 47 characters of text; 61 fit.
        if let Ok(len) = u8::try_from(text.len())
            && text.len() + 2 <= MAX_INFO_LEN
        {
            body.push(INFO_OBSERVED);
            body.push(len);
            body.extend_from_slice(text.as_bytes());
        }
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decodes a session-info body: the address the peer sees this side at, if it said. Unknown
/// tags are skipped (later versions may add some); bad framing is refused.
pub(crate) fn decode_info(mut body: &[u8]) -> Result<Option<SocketAddr>, Refusal> {
    let mut observed = None;
    while let [tag, len, rest @ ..] = body {
        let len = usize::from(*len);
        let Some((value, tail)) = rest.split_at_checked(len) else {
            return Err(Refusal::MalformedProof("session info is truncated"));
        };
        if *tag == INFO_OBSERVED {
            let addr = std::str::from_utf8(value)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or(Refusal::MalformedProof("observed address does not parse"))?;
            observed = Some(addr);
        }
        body = tail;
    }
    if !body.is_empty() {
        return Err(Refusal::MalformedProof("session info is truncated"));
    }
    Ok(observed)
}

/// Reads the session-info body that follows a proof (at most [`MAX_INFO_LEN`] bytes).
pub(crate) async fn read_info(recv: &mut quinn::RecvStream) -> Result<Option<SocketAddr>, Refusal> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len)
        .await
        .map_err(|e| Refusal::Lost(e.to_string()))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_INFO_LEN {
        return Err(Refusal::MalformedProof(
            "session info is longer than its limit",
        ));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| Refusal::Lost(e.to_string()))?;
    decode_info(&body)
}

/// Reads one proof body from `recv`: a length prefix, then that many bytes (at most
/// [`MAX_PROOF_LEN`]).
pub(crate) async fn read(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, Refusal> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len)
        .await
        .map_err(|e| Refusal::Lost(e.to_string()))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_PROOF_LEN {
        return Err(Refusal::MalformedProof("longer than the proof limit"));
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| Refusal::Lost(e.to_string()))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_proto::crypto::InsecureTestProvider;
    use hearsay_proto::identity::record::Addresses;
    use hearsay_proto::{Identity, TimeDelta};

    fn identity(i: u8) -> Identity {
        hearsay_proto::testing::insecure_identity(u64::from(i))
    }

    fn record(id: &Identity, now: Timestamp) -> PeerRecord {
        PeerRecord::issue(id, Addresses::default(), now, TimeDelta::from_secs(3600)).unwrap()
    }

    #[test]
    fn proofs_verify_only_for_their_binding_role_and_signer() {
        let now = Timestamp::from_secs(1_800_000_000);
        let (a, b) = (identity(1), identity(2));
        let rec = record(&a, now);
        let binding = [7u8; 32];
        let proof = encode(&rec, a.signer(), &binding, Role::Dialer).unwrap();
        let body = &proof[4..];
        assert_eq!(
            u32::from_be_bytes(proof[..4].try_into().unwrap()) as usize,
            body.len()
        );
        let exp = Expectations {
            crypto: &InsecureTestProvider,
            now,
            me: b.peer_id(),
            expected: None,
        };
        assert_eq!(
            verify(body, &binding, Role::Dialer, &exp).unwrap(),
            rec.clone()
        );
        // Another connection's binding, or the other role: refused.
        assert_eq!(
            verify(body, &[8u8; 32], Role::Dialer, &exp),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(body, &binding, Role::Listener, &exp),
            Err(Refusal::BadSignature)
        );
        // A's record with B's signature over the right binding: refused.
        let forged = encode(&rec, b.signer(), &binding, Role::Dialer).unwrap();
        assert_eq!(
            verify(&forged[4..], &binding, Role::Dialer, &exp),
            Err(Refusal::BadSignature)
        );
        // Pinned to someone else, or proving ourselves.
        let pinned = Expectations {
            expected: Some(b.peer_id()),
            me: identity(3).peer_id(),
            ..exp
        };
        assert!(matches!(
            verify(body, &binding, Role::Dialer, &pinned),
            Err(Refusal::WrongPeer { .. })
        ));
        let to_self = Expectations {
            me: a.peer_id(),
            ..pinned
        };
        assert_eq!(
            verify(body, &binding, Role::Dialer, &to_self),
            Err(Refusal::SelfConnection)
        );
        // An expired record.
        let late = Expectations {
            now: now + TimeDelta::from_secs(7200),
            me: b.peer_id(),
            expected: None,
            crypto: &InsecureTestProvider,
        };
        assert!(matches!(
            verify(body, &binding, Role::Dialer, &late),
            Err(Refusal::BadRecord(_))
        ));
    }

    #[test]
    fn session_info_round_trips_and_refuses_bad_framing() {
        for addr in [
            "192.0.2.7:4433",
            "[2001:db8::1]:65535",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let chunk = encode_info(Some(addr));
            assert_eq!(chunk[..4], ((chunk.len() - 4) as u32).to_be_bytes());
            assert!(chunk.len() - 4 <= MAX_INFO_LEN);
            assert_eq!(decode_info(&chunk[4..]), Ok(Some(addr)));
        }
        assert_eq!(encode_info(None), vec![0, 0, 0, 0]);
        assert_eq!(decode_info(&[]), Ok(None));
        // Unknown tags are skipped; truncation and unparsable addresses are refused.
        assert_eq!(decode_info(&[9, 2, 0, 0]), Ok(None));
        for bad in [
            &[1u8][..],
            &[1, 5, b'1'],
            &[1, 3, b'x', b'y', b'z'],
            &[9, 2, 0],
        ] {
            assert!(matches!(decode_info(bad), Err(Refusal::MalformedProof(_))));
        }
    }

    #[test]
    fn garbage_is_malformed_never_a_panic() {
        let exp = Expectations {
            crypto: &InsecureTestProvider,
            now: Timestamp::from_secs(1_800_000_000),
            me: PeerId::from_bytes([0; 32]),
            expected: None,
        };
        for body in [vec![], vec![0u8; 100], vec![0xff; SIGNATURE_LEN + 10]] {
            assert!(matches!(
                verify(&body, &[0; 32], Role::Listener, &exp),
                Err(Refusal::MalformedProof(_))
            ));
        }
    }
}
