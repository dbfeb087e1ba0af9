//! Identifiers: [`PeerId`], [`TopicId`], [`MessageId`].
//!
//! All three are 32-byte BLAKE3 outputs, each under its own derivation context so that no value
//! of one kind can be mistaken for another. A person sees them as 64 lower-case hex digits.

use core::fmt;

/// BLAKE3 derivation contexts. Changing one changes every id of that kind: they are part of the
/// protocol (SPEC.md §2).
pub(crate) mod context {
    pub const PEER_ID: &str = "hearsay 2026-11 peer id v1";
    pub const TOPIC_ID: &str = "hearsay 2026-11 topic id v1";
    pub const MESSAGE_ID: &str = "hearsay 2026-11 message id v1";
}

/// Why a hex id could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseIdError {
    /// The text is not 64 characters long.
    WrongLength(usize),
    /// A character is not a lower- or upper-case hex digit.
    NotHex,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseIdError::WrongLength(n) => write!(f, "an id has 64 hex digits, not {n}"),
            ParseIdError::NotHex => write!(f, "an id has only hex digits 0-9 and a-f"),
        }
    }
}

impl core::error::Error for ParseIdError {}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn parse_hex32(s: &str) -> Result<[u8; 32], ParseIdError> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return Err(ParseIdError::WrongLength(s.len()));
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_val(*hi), hex_val(*lo)),
            _ => (None, None),
        };
        *byte = (hi.ok_or(ParseIdError::NotHex)? << 4) | lo.ok_or(ParseIdError::NotHex)?;
    }
    Ok(out)
}

/// Defines a 32-byte identifier type: hex `Display` and `FromStr`, short `Debug`, CBOR as a
/// 32-byte string. Used for peer, topic and message ids here, and for group ids and hashes.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $short:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; 32]);

        // The byte-wise (lexicographic) order the derive would give, compared as two
        // big-endian 128-bit halves instead of through `memcmp`: ids key most of the node's
        // ordered maps, and the call dominated their lookups.
        impl Ord for $name {
            #[inline]
            fn cmp(&self, other: &Self) -> core::cmp::Ordering {
                $crate::id::cmp32(&self.0, &other.0)
            }
        }

        impl PartialOrd for $name {
            #[inline]
            fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// Wraps 32 raw bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first eight hex digits, for logs and tables.
            pub fn short(&self) -> impl core::fmt::Display + '_ {
                $crate::id::ShortHex(&self.0)
            }
        }

        impl core::fmt::Display for $name {
            /// 64 lower-case hex digits: the form people see and type.
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!($short, "({})"), self.short())
            }
        }

        impl core::str::FromStr for $name {
            type Err = $crate::id::ParseIdError;
            fn from_str(s: &str) -> Result<Self, $crate::id::ParseIdError> {
                $crate::id::parse_hex32(s).map(Self)
            }
        }

        impl<C> minicbor::Encode<C> for $name {
            fn encode<W: minicbor::encode::Write>(
                &self,
                e: &mut minicbor::Encoder<W>,
                _: &mut C,
            ) -> Result<(), minicbor::encode::Error<W::Error>> {
                e.bytes(&self.0)?;
                Ok(())
            }
        }

        impl<'b, C> minicbor::Decode<'b, C> for $name {
            fn decode(d: &mut minicbor::Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
                let b = $crate::wire::codec::bounded_bytes(d, 32)?;
                <[u8; 32]>::try_from(b).map(Self).map_err(|_| {
                    $crate::wire::codec::limit($crate::wire::codec::DecodeError::WrongLength { expected: 32, got: b.len() })
                })
            }
        }
    };
}
pub(crate) use id_type;

/// `a.cmp(b)` for 32-byte strings (lexicographic, as `[u8; 32]`'s own `Ord`), as two
/// big-endian 128-bit integers.
#[inline]
pub(crate) fn cmp32(a: &[u8; 32], b: &[u8; 32]) -> core::cmp::Ordering {
    let halves = |x: &[u8; 32]| match (x.first_chunk::<16>(), x.last_chunk::<16>()) {
        (Some(hi), Some(lo)) => Some((u128::from_be_bytes(*hi), u128::from_be_bytes(*lo))),
        _ => None,
    };
    match (halves(a), halves(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

pub(crate) struct ShortHex<'a>(pub(crate) &'a [u8; 32]);

impl fmt::Display for ShortHex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

id_type!(
    /// A peer's identity: BLAKE3, under the peer-id context, of its ML-DSA-65 verifying key.
    PeerId,
    "PeerId"
);
id_type!(
    /// A topic: 32 bytes, usually derived from a human-readable name.
    TopicId,
    "TopicId"
);
id_type!(
    /// A published message's content address (see [`MessageId::new`]).
    MessageId,
    "MessageId"
);

impl PeerId {
    /// The id of the peer whose encoded ML-DSA-65 verifying key is `verifying_key`.
    pub fn from_verifying_key(verifying_key: &[u8]) -> Self {
        Self(blake3::derive_key(context::PEER_ID, verifying_key))
    }
}

impl TopicId {
    /// The topic called `name`: BLAKE3 under the topic-id context of the name's UTF-8 bytes.
    pub fn from_name(name: &str) -> Self {
        Self(blake3::derive_key(context::TOPIC_ID, name.as_bytes()))
    }
}

impl MessageId {
    /// The id of the `sequence`-th message that `author` published on `topic` with `payload`:
    /// BLAKE3 under the message-id context of `author ‖ topic ‖ sequence (u64, big-endian) ‖
    /// BLAKE3(payload)`. Two publishes of the same bytes are two messages; what may change in
    /// transit (access records, relay metadata) is not covered.
    pub fn new(author: &PeerId, topic: &TopicId, sequence: u64, payload: &[u8]) -> Self {
        Self::of_kind(0, author, topic, sequence, payload)
    }

    /// The id of a message of kind number `kind` (SPEC.md §15.1): as [`MessageId::new`] for
    /// kind 0 (application messages); other kinds append the kind's byte to the hashed input,
    /// so a message of one kind never has the id of another.
    pub fn of_kind(
        kind: u8,
        author: &PeerId,
        topic: &TopicId,
        sequence: u64,
        payload: &[u8],
    ) -> Self {
        let mut h = blake3::Hasher::new_derive_key(context::MESSAGE_ID);
        h.update(author.as_bytes());
        h.update(topic.as_bytes());
        h.update(&sequence.to_be_bytes());
        h.update(blake3::hash(payload).as_bytes());
        if kind != 0 {
            h.update(&[kind]);
        }
        Self(*h.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    /// Ids order exactly as their bytes do (the order every map keyed by id iterates in).
    #[test]
    fn id_order_is_the_byte_order() {
        let mut ids: alloc::vec::Vec<[u8; 32]> = (0u8..=255)
            .map(|i| *PeerId::from_verifying_key(&[i]).as_bytes())
            .collect();
        // Ties in the first half, differences in either half, at either end of a half.
        for (at, v) in [(0, 1), (15, 1), (16, 1), (31, 1), (15, 0xff), (16, 0xff)] {
            let mut b = [0u8; 32];
            if let Some(x) = b.get_mut(at) {
                *x = v;
            }
            ids.push(b);
        }
        ids.push([0xff; 32]);
        for a in &ids {
            for b in &ids {
                let (x, y) = (PeerId::from_bytes(*a), PeerId::from_bytes(*b));
                assert_eq!(x.cmp(&y), a.cmp(b));
                assert_eq!(x.partial_cmp(&y), Some(a.cmp(b)));
                assert_eq!(
                    MessageId::from_bytes(*a).cmp(&MessageId::from_bytes(*b)),
                    a.cmp(b)
                );
            }
        }
    }

    #[test]
    fn hex_text_form_round_trips_and_is_lower_case() {
        let t = TopicId::from_name("news");
        let s = t.to_string();
        assert_eq!(s.len(), 64);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_eq!(s.parse::<TopicId>(), Ok(t));
        assert_eq!(s.to_uppercase().parse::<TopicId>(), Ok(t));
        assert_eq!("abc".parse::<TopicId>(), Err(ParseIdError::WrongLength(3)));
        assert_eq!(
            s.replace(['a', '0'], "g").parse::<TopicId>(),
            Err(ParseIdError::NotHex)
        );
        assert_eq!(format!("{t:?}"), format!("TopicId({})", &s[..8]));
    }

    #[test]
    fn ids_are_domain_separated() {
        // The same input bytes give different ids under different contexts.
        let bytes = b"same bytes";
        let as_topic = TopicId::from_name("same bytes");
        let as_peer = PeerId::from_verifying_key(bytes);
        assert_ne!(as_topic.as_bytes(), as_peer.as_bytes());
        assert_ne!(as_peer.as_bytes(), blake3::hash(bytes).as_bytes());
    }

    #[test]
    fn message_id_covers_every_field() {
        let a = PeerId::from_verifying_key(b"a");
        let b = PeerId::from_verifying_key(b"b");
        let t = TopicId::from_name("t");
        let base = MessageId::new(&a, &t, 1, b"x");
        assert_ne!(base, MessageId::new(&b, &t, 1, b"x"));
        assert_ne!(base, MessageId::new(&a, &TopicId::from_name("u"), 1, b"x"));
        assert_ne!(base, MessageId::new(&a, &t, 2, b"x"));
        assert_ne!(base, MessageId::new(&a, &t, 1, b"y"));
        assert_eq!(base, MessageId::new(&a, &t, 1, b"x"));
    }
}
