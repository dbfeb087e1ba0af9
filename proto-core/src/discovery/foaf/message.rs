use crate::id::PeerId;
use crate::identity::record::PeerRecord;
use crate::wire::MAX_FRAME_LEN;
use crate::wire::codec::{self, BoundedBytes, BoundedVec, DecodeError, EncodeError};
use alloc::vec::Vec;
use core::fmt;
use minicbor::{Decode, Decoder, Encode, Encoder};
use rand_core::Rng;

/// The largest hop budget any query may carry; a query arriving with more is refused.
pub const MAX_TTL: u8 = 4;
/// The largest `fanout` a configuration may choose.
pub const MAX_FANOUT: usize = 8;
/// Longest capability tag, in bytes.
pub const MAX_CAPABILITY_LEN: usize = 32;
/// Most records one answer may carry. A record is at most 7,548 B encoded (8 addresses of
/// 128 B), so 32 of them (241,536 B) and the answer's framing fit the 256 KiB frame limit.
pub const MAX_ANSWER_RECORDS: usize = 32;
/// Length of a query id, in bytes.
pub const QUERY_ID_LEN: usize = 16;

/// An opaque capability tag (at most [`MAX_CAPABILITY_LEN`] bytes). Its meaning is the
/// application's; peer records do not carry capabilities, so which peers offer a tag is
/// whatever the answering node's [`Knowledge`] says.
pub type Capability = BoundedBytes<MAX_CAPABILITY_LEN>;

/// A query's identity: 16 random bytes drawn by the origin. Relays use it to recognise
/// duplicates and to route answers back; it says nothing about the origin.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId([u8; QUERY_ID_LEN]);

impl QueryId {
    /// Wraps 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; QUERY_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; QUERY_ID_LEN] {
        &self.0
    }

    /// A fresh id from `rng`.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; QUERY_ID_LEN];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

impl fmt::Display for QueryId {
    /// 32 lower-case hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryId(")?;
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl<C> Encode<C> for QueryId {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C> Decode<'b, C> for QueryId {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let b = codec::bounded_bytes(d, QUERY_ID_LEN)?;
        <[u8; QUERY_ID_LEN]>::try_from(b).map(Self).map_err(|_| {
            codec::limit(DecodeError::WrongLength {
                expected: QUERY_ID_LEN,
                got: b.len(),
            })
        })
    }
}

/// What a query looks for.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum Target {
    /// The record of one peer. An answer may only carry records whose `peer_id` is this peer.
    #[n(0)]
    Peer(#[n(0)] PeerId),
    /// Records of peers offering a capability. Records carry no capabilities, so an answer's
    /// records are the answering node's claim: any record that verifies is accepted.
    #[n(1)]
    Capability(#[n(0)] Capability),
}

impl Target {
    /// Whether `record` may answer this target: for a peer, the record must be that peer's;
    /// for a capability, any record may (the claim is the answering node's, see [`Target`]).
    pub fn admits(&self, record: &PeerRecord) -> bool {
        match self {
            Target::Peer(peer) => record.peer_id == *peer,
            Target::Capability(_) => true,
        }
    }
}

/// "Who knows `target`?", with `ttl` hops left for the receiver to pass on.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Query {
    /// The query's id (random, chosen by the origin).
    #[n(0)]
    pub id: QueryId,
    /// What is looked for.
    #[n(1)]
    pub target: Target,
    /// Hops left, counting the one that delivered this copy: 1 means "answer, do not forward".
    /// Valid values are 1..=[`MAX_TTL`].
    #[n(2)]
    pub ttl: u8,
}

/// Records answering query `id`, sent to the neighbour the query came from.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Answer {
    /// The query answered.
    #[n(0)]
    pub id: QueryId,
    /// Signed records of distinct peers, as their subjects signed them.
    #[n(1)]
    pub records: BoundedVec<PeerRecord, MAX_ANSWER_RECORDS>,
}

/// Discovery messages (frame kind 5).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum DiscoveryMessage {
    /// A query, from the origin or a relay.
    #[n(0)]
    Query(#[n(0)] Query),
    /// An answer, travelling back along the reverse path.
    #[n(1)]
    Answer(#[n(0)] Answer),
}

impl DiscoveryMessage {
    /// Encodes the message alone (without the frame's `[kind, body]` wrapper); fails if it
    /// would exceed [`MAX_FRAME_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let out = codec::to_vec(self)?;
        if out.len() > MAX_FRAME_LEN {
            return Err(EncodeError::FrameTooLarge {
                len: out.len(),
                max: MAX_FRAME_LEN,
            });
        }
        Ok(out)
    }

    /// Decodes one message: the size is checked first, then every list and byte string on its
    /// header; trailing bytes are an error. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(DecodeError::FrameTooLarge {
                len: bytes.len(),
                max: MAX_FRAME_LEN,
            });
        }
        codec::from_slice(bytes)
    }
}

/// What the answering side knows: the owner (the `Node`) looks records up in its own record,
/// its cache of verified records and, for capabilities, whatever table it keeps.
pub trait Knowledge {
    /// At most `max` signed, verified, unexpired records answering `target` (possibly none).
    /// Records that do not match, are expired, or repeat a peer are filtered out by the caller.
    fn lookup(&self, target: &Target, max: usize) -> Vec<PeerRecord>;
}

impl<F: Fn(&Target, usize) -> Vec<PeerRecord>> Knowledge for F {
    fn lookup(&self, target: &Target, max: usize) -> Vec<PeerRecord> {
        self(target, max)
    }
}

/// A plain list of records answers peer targets by id and no capability.
impl Knowledge for [PeerRecord] {
    fn lookup(&self, target: &Target, max: usize) -> Vec<PeerRecord> {
        match target {
            Target::Peer(_) => self
                .iter()
                .filter(|r| target.admits(r))
                .take(max)
                .cloned()
                .collect(),
            Target::Capability(_) => Vec::new(),
        }
    }
}
