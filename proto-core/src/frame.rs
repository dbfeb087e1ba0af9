//! The wire format: one [`Frame`] per message between two connected peers.
//!
//! A frame is a CBOR array `[kind, body]`: `kind` names the protocol that owns the frame (see
//! [`FrameKind`]) and `body` is that protocol's message (see [`crate::wire`] for the codec and
//! its limits). The frame limit is checked before parsing. This module sits above every
//! protocol: it gathers their messages; none of them imports it.

use crate::identity::record::PeerRecord;
use crate::wire::MAX_FRAME_LEN;
use crate::wire::codec::{self, DecodeError, EncodeError};
use bytes::Bytes;
use minicbor::{Decode, Decoder, Encode, Encoder};

/// The protocol version this build speaks; carried in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 1;

/// Protocol tags of the top-level frame. Numbers are part of the protocol and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum FrameKind {
    /// Session set-up and tear-down between two connected peers ([`SessionMessage`]).
    Session = 0,
    /// Membership: HyParView ([`crate::membership::hyparview::Message`]).
    Membership = 1,
    /// Failure detection: SWIM with Lifeguard ([`crate::membership::swim::Message`]).
    FailureDetection = 2,
    /// Topics: subscriptions, discovery, per-topic HyParView and Plumtree
    /// ([`crate::broadcast::topic::TopicMessage`]).
    Topic = 3,
    /// Per-topic reconciliation of retained messages ([`crate::broadcast::topic::ReconcileMessage`]).
    Reconcile = 4,
    /// Discovery: friends-of-friends queries ([`crate::discovery::foaf::DiscoveryMessage`]).
    Discovery = 5,
    /// Fetching encrypted messages' content ([`crate::privacy::fetch::PrivateMessage`]).
    Private = 6,
}

impl FrameKind {
    /// The tag's number on the wire.
    pub const fn number(self) -> u64 {
        self as u64
    }
}

/// One message between two connected peers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// Session set-up and tear-down.
    Session(SessionMessage),
    /// HyParView membership.
    Membership(crate::membership::hyparview::Message),
    /// SWIM failure detection.
    FailureDetection(crate::membership::swim::Message),
    /// Topic overlays and broadcast.
    Topic(crate::broadcast::topic::TopicMessage),
    /// Anti-entropy.
    Reconcile(crate::broadcast::topic::ReconcileMessage),
    /// Friends-of-friends discovery.
    Discovery(crate::discovery::foaf::DiscoveryMessage),
    /// Encrypted messages' fetches.
    Private(crate::privacy::fetch::PrivateMessage),
}

/// Session messages: the first and last words on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub enum SessionMessage {
    /// Sent by both sides as soon as a connection is up.
    #[n(0)]
    Hello(#[n(0)] Hello),
    /// Sent before a graceful close.
    #[n(1)]
    Goodbye(#[n(0)] Goodbye),
    /// "Your Hello never reached me: send it again" (frames can be lost on datagram-like
    /// transports; a side still waiting for the handshake asks when protocol frames arrive).
    #[n(2)]
    HelloRequest,
    /// A Hello without the record, sent instead of [`Hello`] to a peer that already holds the
    /// sender's current record (it confirmed it on an earlier connection). A receiver that
    /// holds no matching record answers `HelloRequest`, and the full Hello follows.
    #[n(3)]
    HelloAgain(#[n(0)] HelloAgain),
}

/// The handshake: the sender's protocol version and its signed record.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(context_bound = "crate::wire::codec::DecodeSource")]
pub struct Hello {
    /// The sender's [`PROTOCOL_VERSION`]; a receiver refuses a version it does not speak.
    #[n(0)]
    pub version: u16,
    /// The sender's current record; its `peer_id` must be the connection's peer.
    #[n(1)]
    pub record: PeerRecord,
}

/// The short form of [`Hello`]: names the sender's current record instead of carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct HelloAgain {
    /// The sender's [`PROTOCOL_VERSION`].
    #[n(0)]
    pub version: u16,
    /// The record's `issued_at`.
    #[n(1)]
    pub issued_at: crate::time::Timestamp,
    /// The first 16 bytes of the record's signature.
    #[n(2)]
    pub signature_prefix: [u8; 16],
}

impl HelloAgain {
    /// The short form naming `record`.
    pub fn naming(record: &PeerRecord) -> Self {
        let mut signature_prefix = [0u8; 16];
        for (d, s) in signature_prefix
            .iter_mut()
            .zip(record.signature.as_bytes().iter())
        {
            *d = *s;
        }
        Self {
            version: PROTOCOL_VERSION,
            issued_at: record.issued_at,
            signature_prefix,
        }
    }

    /// Whether `record` is the one this names.
    pub fn names(&self, record: &PeerRecord) -> bool {
        *self == Self::naming(record)
    }
}

/// A graceful goodbye: the receiver reports the sender as gone with [`GoodbyeReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Goodbye {
    /// Why the sender is closing.
    #[n(0)]
    pub reason: GoodbyeReason,
}

/// Why a peer says goodbye.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
#[non_exhaustive]
pub enum GoodbyeReason {
    /// The sender is leaving the overlay.
    #[n(0)]
    Leaving,
    /// The sender keeps running but drops this connection (for example, a view replacement).
    #[n(1)]
    Replaced,
}

impl Frame {
    /// The protocol this frame belongs to.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Session(_) => FrameKind::Session,
            Frame::Membership(_) => FrameKind::Membership,
            Frame::FailureDetection(_) => FrameKind::FailureDetection,
            Frame::Topic(_) => FrameKind::Topic,
            Frame::Reconcile(_) => FrameKind::Reconcile,
            Frame::Discovery(_) => FrameKind::Discovery,
            Frame::Private(_) => FrameKind::Private,
        }
    }

    /// Encodes the frame; fails if it would exceed [`MAX_FRAME_LEN`].
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let out = codec::to_vec(self)?;
        if out.len() > MAX_FRAME_LEN {
            return Err(EncodeError::FrameTooLarge {
                len: out.len(),
                max: MAX_FRAME_LEN,
            });
        }
        Ok(Bytes::from(out))
    }

    /// Decodes one frame. Checks the size first, then parses; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        Self::check_len(bytes)?;
        codec::from_slice(bytes)
    }

    /// As [`Frame::decode`], but keys, signatures and payloads share `bytes` instead of being
    /// copied out of it.
    pub fn decode_shared(bytes: &Bytes) -> Result<Frame, DecodeError> {
        Self::check_len(bytes)?;
        codec::from_slice_with(bytes, &mut codec::Shared(bytes.clone()))
    }

    /// As [`Frame::decode_shared`], but every byte string `interner` holds a copy of is that
    /// copy instead of a view or a new copy (the value is the same; see [`codec::Interner`]).
    pub fn decode_interned(
        bytes: &Bytes,
        interner: &dyn codec::Interner,
    ) -> Result<Frame, DecodeError> {
        Self::check_len(bytes)?;
        codec::from_slice_with(
            bytes,
            &mut codec::SharedInterned {
                source: bytes,
                interner,
            },
        )
    }

    fn check_len(bytes: &[u8]) -> Result<(), DecodeError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(DecodeError::FrameTooLarge {
                len: bytes.len(),
                max: MAX_FRAME_LEN,
            });
        }
        Ok(())
    }
}

impl<C: codec::DecodeSource> Encode<C> for Frame {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.array(2)?.u64(self.kind().number())?;
        match self {
            Frame::Session(m) => m.encode(e, ctx),
            Frame::Membership(m) => m.encode(e, ctx),
            Frame::FailureDetection(m) => m.encode(e, ctx),
            Frame::Topic(m) => m.encode(e, ctx),
            Frame::Reconcile(m) => m.encode(e, ctx),
            Frame::Discovery(m) => Encode::encode(m, e, ctx),
            Frame::Private(m) => m.encode(e, ctx),
        }
    }
}

impl<'b, C: codec::DecodeSource> Decode<'b, C> for Frame {
    fn decode(d: &mut Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        if d.array()? != Some(2) {
            return Err(codec::limit(DecodeError::Malformed {
                position: Some(d.position()),
            }));
        }
        match d.u64()? {
            0 => Ok(Frame::Session(SessionMessage::decode(d, ctx)?)),
            1 => Ok(Frame::Membership(
                crate::membership::hyparview::Message::decode(d, ctx)?,
            )),
            2 => Ok(Frame::FailureDetection(
                crate::membership::swim::Message::decode(d, ctx)?,
            )),
            3 => Ok(Frame::Topic(crate::broadcast::topic::TopicMessage::decode(
                d, ctx,
            )?)),
            4 => Ok(Frame::Reconcile(
                crate::broadcast::topic::ReconcileMessage::decode(d, ctx)?,
            )),
            5 => Ok(Frame::Discovery(
                <crate::discovery::foaf::DiscoveryMessage as Decode<'b, C>>::decode(d, ctx)?,
            )),
            6 => Ok(Frame::Private(
                crate::privacy::fetch::PrivateMessage::decode(d, ctx)?,
            )),
            other => Err(codec::limit(DecodeError::UnknownKind(other))),
        }
    }
}
