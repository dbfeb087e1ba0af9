//! The vocabulary of the [`Node`](super::Node) idiom: its configuration, inputs and outputs.

use crate::broadcast::message::MessageError;
use crate::crypto::{CryptoProvider, default_provider};
use crate::id::{MessageId, PeerId, TopicId};
use crate::identity::record::{Address, RecordError};
pub use crate::membership::DownReason;
use crate::time::{TimeDelta, Timestamp};
use crate::wire::DecodeError;
use alloc::sync::Arc;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

/// Everything a [`Node`](super::Node) can be tuned with. `Config::default()` is the protocol's
/// defaults as SPEC.md states them.
#[derive(Clone)]
pub struct Config {
    /// The crypto provider for signing, verification and KEM.
    pub crypto: Arc<dyn CryptoProvider>,
    /// The addresses this node advertises in its record (opaque to the core).
    pub addresses: Vec<Address>,
    /// How long an issued record stays valid. Default 1 h.
    pub record_lifetime: TimeDelta,
    /// How long a new connection may stay silent before its `Hello` arrives. Default 10 s.
    pub hello_timeout: TimeDelta,
    /// How long a requested dial may stay unanswered before it is forgotten. Default 15 s.
    pub dial_timeout: TimeDelta,
    /// Most simultaneous connections (set up or setting up). Default 128.
    pub max_connections: usize,
    /// Dials per second to one target address, whatever identity they are for (SPEC.md §20.1).
    /// Default 2.
    pub dial_rate_per_address: u32,
    /// Whether loopback and private addresses are dialled: `None` (the default) dials one only
    /// when this node advertises an address of the same scope itself, or none at all.
    pub dial_private_addresses: Option<bool>,
    /// Most verified peer records kept (one copy each). Default 256.
    pub max_known_records: usize,
    /// Most outputs queued for the driver before new ones are dropped and counted. Default 4096.
    pub max_queued_transmits: usize,
    /// Most events queued for the application before the oldest are dropped and counted.
    /// Default 1024.
    pub max_queued_events: usize,
    /// How often expired records are swept from the cache. Default 60 s.
    pub housekeeping_interval: TimeDelta,
    /// How long an established connection that no protocol uses is kept. Default 10 s.
    pub unused_link_timeout: TimeDelta,
    /// HyParView membership parameters.
    pub hyparview: crate::membership::hyparview::Config,
    /// SWIM / Lifeguard failure-detection parameters.
    pub swim: crate::membership::swim::Config,
    /// Topic overlays, broadcast and anti-entropy parameters.
    pub topics: crate::broadcast::topic::Config,
    /// Encrypted-message parameters.
    pub private: super::PrivateConfig,
    /// Friends-of-friends discovery parameters.
    pub foaf: crate::discovery::foaf::Config,
    /// Presence parameters (every group of this node).
    pub presence: crate::discovery::presence::PresenceConfig,
    /// Peer score weights and thresholds (SPEC.md §13.8).
    pub score: crate::score::ScoreConfig,
    /// A store of byte strings shared with other nodes in the same process (a simulator's),
    /// consulted when frames are decoded ([`crate::frame::Frame::decode_interned`]). It changes
    /// memory only, never a decoded value (SPEC.md §6.3). Default none.
    pub interner: Option<Arc<dyn crate::wire::Interner>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            crypto: default_provider(),
            addresses: Vec::new(),
            record_lifetime: TimeDelta::from_secs(3600),
            hello_timeout: TimeDelta::from_secs(10),
            dial_timeout: TimeDelta::from_secs(15),
            max_connections: 128,
            dial_rate_per_address: 2,
            dial_private_addresses: None,
            max_known_records: 256,
            max_queued_transmits: 4096,
            max_queued_events: 1024,
            housekeeping_interval: TimeDelta::from_secs(60),
            unused_link_timeout: TimeDelta::from_secs(10),
            hyparview: crate::membership::hyparview::Config {
                merge: Some(crate::membership::hyparview::MergeConfig::default()),
                ..crate::membership::hyparview::Config::default()
            },
            swim: crate::membership::swim::Config::default(),
            topics: crate::broadcast::topic::Config::default(),
            private: super::PrivateConfig::default(),
            foaf: crate::discovery::foaf::Config::default(),
            presence: crate::discovery::presence::PresenceConfig::default(),
            score: crate::score::ScoreConfig::default(),
            interner: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("crypto", &self.crypto.name())
            .field("addresses", &self.addresses)
            .field("record_lifetime", &self.record_lifetime)
            .field("hello_timeout", &self.hello_timeout)
            .field("dial_timeout", &self.dial_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_known_records", &self.max_known_records)
            .field("max_queued_transmits", &self.max_queued_transmits)
            .field("max_queued_events", &self.max_queued_events)
            .field("housekeeping_interval", &self.housekeeping_interval)
            .field("unused_link_timeout", &self.unused_link_timeout)
            .field("hyparview", &self.hyparview)
            .field("swim", &self.swim)
            .field("topics", &self.topics)
            .field("private", &self.private)
            .field("foaf", &self.foaf)
            .field("presence", &self.presence)
            .field("interner", &self.interner.is_some())
            .finish()
    }
}

/// 32 bytes that seed a node's RNG. Build one from a `u64` in tests and simulations (expanded
/// with BLAKE3), or from 32 bytes of OS randomness in production.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RngSeed(pub [u8; 32]);

impl From<u64> for RngSeed {
    fn from(seed: u64) -> Self {
        RngSeed(blake3::derive_key(
            "hearsay 2026-11 rng seed v1",
            &seed.to_le_bytes(),
        ))
    }
}

impl From<[u8; 32]> for RngSeed {
    fn from(seed: [u8; 32]) -> Self {
        RngSeed(seed)
    }
}

impl fmt::Debug for RngSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RngSeed(..)")
    }
}

/// A peer to dial: its id and where the driver may find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The peer's id (the driver checks it during the handshake).
    pub peer: PeerId,
    /// Addresses to try, in order.
    pub addresses: Vec<Address>,
}

/// What the node asks of its driver. Drain with [`Node::poll_transmit`](super::Node::poll_transmit).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transmit {
    /// Send `frame` to `to` over the connection to it (reliable, ordered per peer).
    Send {
        /// The recipient.
        to: PeerId,
        /// One encoded [`Frame`](crate::Frame), at most [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN).
        frame: Bytes,
    },
    /// Open a connection to `peer`, trying `addresses`; report the outcome with
    /// `handle_connected` or, on failure, `handle_disconnected`.
    Connect {
        /// The peer to dial; the driver must check the handshake proves this identity.
        peer: PeerId,
        /// Where to find it.
        addresses: Vec<Address>,
    },
    /// Close the connection to `peer` after sending what is queued for it.
    Disconnect {
        /// The peer to drop.
        peer: PeerId,
    },
}

/// What the node tells the application. Drain with [`Node::poll_event`](super::Node::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection finished its handshake: `peer`'s record verified.
    NeighborUp {
        /// The new neighbour.
        peer: PeerId,
    },
    /// A neighbour is gone.
    NeighborDown {
        /// The former neighbour.
        peer: PeerId,
        /// Why.
        reason: DownReason,
    },
    /// `peer` became a neighbour in `topic`'s overlay: the topic can now carry this node's
    /// messages (an application may wait for the first one before publishing).
    TopicNeighborUp {
        /// The topic.
        topic: TopicId,
        /// The neighbour.
        peer: PeerId,
    },
    /// `peer` is no longer a neighbour in `topic`'s overlay.
    TopicNeighborDown {
        /// The topic.
        topic: TopicId,
        /// The former neighbour.
        peer: PeerId,
    },
    /// A message of a subscribed topic, accepted by its validator, delivered once. Messages
    /// are delivered in no particular order.
    Delivered {
        /// The topic.
        topic: TopicId,
        /// Who published it.
        author: PeerId,
        /// Its id.
        id: MessageId,
        /// The author's sequence number.
        sequence: u64,
        /// When the author published it (the author's clock).
        timestamp: Timestamp,
        /// The application's bytes.
        payload: Bytes,
        /// Hops from the author to this node.
        hops: u8,
    },
    /// A message this node now retains, for an anchor to store durably (only with
    /// `topics.plumtree.archive`; SPEC.md §15.7). Give `record` back after a restart with
    /// [`Node::restore_message`](super::Node::restore_message).
    Archived {
        /// The topic.
        topic: TopicId,
        /// Its author (storage may keep a fair share per author: SPEC.md §15.3).
        author: PeerId,
        /// The message's id.
        id: MessageId,
        /// When it leaves the retention window (drop it from storage then).
        expires: Timestamp,
        /// The message with its author's key, encoded.
        record: Bytes,
    },
    /// An encrypted message this node may read, fetched from its author and opened
    /// (SPEC.md §17.10). Delivered once per message id.
    PrivateDelivered {
        /// The topic it was announced on.
        topic: TopicId,
        /// Its author.
        author: PeerId,
        /// Its id (covers the ciphertext).
        id: MessageId,
        /// The access-record version that named this node.
        version: u64,
        /// The decrypted bytes.
        plaintext: Bytes,
    },
    /// Records answering one of this node's [`Node::find`](super::Node::find) queries (each
    /// peer reported once per query; verified and cached).
    Found {
        /// The query.
        query: crate::discovery::foaf::QueryId,
        /// What it looked for.
        target: crate::discovery::foaf::Target,
        /// The records.
        records: Vec<crate::identity::record::PeerRecord>,
    },
    /// A member of a presence group of this node is online (a fresh beacon; again when it
    /// announces a newer record).
    PresenceOnline {
        /// The group's presence topic.
        group: TopicId,
        /// The member.
        member: PeerId,
        /// Its record, from the beacon (signed by the member inside the encryption).
        record: crate::identity::record::PeerRecord,
    },
    /// A member of a presence group is offline: it said so, or no beacon came within the TTL.
    PresenceOffline {
        /// The group's presence topic.
        group: TopicId,
        /// The member.
        member: PeerId,
        /// Why.
        reason: crate::discovery::presence::OfflineReason,
    },
    /// A query of this node ended; answers after it are dropped.
    FindDone {
        /// The query.
        query: crate::discovery::foaf::QueryId,
        /// Distinct records found (0: the query failed).
        found: usize,
        /// Neighbours the query was sent to.
        sent: usize,
    },
    /// The author withdrew an encrypted message this node had delivered (a delete request):
    /// the application should forget it.
    PrivateDeleted {
        /// The message withdrawn.
        id: MessageId,
    },
}

/// Why a frame from a peer was refused. The node's protocol state is unchanged by a refused
/// frame; the refusal is counted in [`Counters`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes did not decode.
    Decode(DecodeError),
    /// The sender has no connection to this node (the driver reported none).
    NotConnected,
    /// The sender speaks a protocol version this node does not.
    UnsupportedVersion {
        /// The version it announced.
        version: u16,
    },
    /// The handshake's record names a different peer than the connection's.
    PeerMismatch,
    /// The handshake's record failed verification.
    BadRecord(RecordError),
    /// The handshake's record is older than one already accepted from that peer.
    StaleRecord,
    /// A protocol frame arrived before the connection's handshake completed.
    NotEstablished,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Decode(e) => write!(f, "undecodable frame: {e}"),
            FrameError::NotConnected => f.write_str("frame from a peer with no connection"),
            FrameError::UnsupportedVersion { version } => {
                write!(f, "unsupported protocol version {version}")
            }
            FrameError::PeerMismatch => {
                f.write_str("record names another peer than the connection")
            }
            FrameError::BadRecord(e) => write!(f, "bad record: {e}"),
            FrameError::StaleRecord => f.write_str("record older than the one already held"),
            FrameError::NotEstablished => f.write_str("protocol frame before the handshake"),
        }
    }
}

impl core::error::Error for FrameError {}

/// Why a command or a constructor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeError {
    /// The node's own record could not be issued (bad lifetime, too many addresses).
    Record(RecordError),
    /// More addresses than a record may carry.
    TooManyAddresses {
        /// The limit ([`MAX_ADDRESSES`](crate::identity::record::MAX_ADDRESSES)).
        max: usize,
    },
    /// A configuration value is out of range (named).
    InvalidConfig(&'static str),
    /// The persistent state belongs to another identity.
    StateOfAnotherPeer,
    /// The persistent state could not be decoded.
    State(DecodeError),
    /// The topic is not subscribed.
    NotSubscribed {
        /// The topic.
        topic: TopicId,
    },
    /// The node already subscribes to the most topics it may.
    TooManySubscriptions {
        /// The limit ([`MAX_SUBSCRIPTIONS`](crate::broadcast::topic::MAX_SUBSCRIPTIONS)).
        max: usize,
    },
    /// A message could not be published (its payload is over the limit, or signing failed).
    Message(MessageError),
    /// Sealing or opening an envelope failed.
    Envelope(crate::privacy::envelope::EnvelopeError),
    /// An access record or delete request could not be issued.
    Access(crate::privacy::access::AccessError),
    /// The node is a member of the most presence groups it may be.
    TooManyGroups {
        /// The limit.
        max: usize,
    },
    /// A discovery query could not start (bad TTL, no neighbour, too many in flight).
    Find(crate::discovery::foaf::FoafError),
    /// This node did not author the message (or has forgotten it).
    NotAuthored {
        /// The message.
        id: MessageId,
    },
    /// A stored message was not taken back ([`Node::restore_message`](super::Node::restore_message)).
    Restore(crate::broadcast::plumtree::RestoreError),
    /// An encrypted message needs between 1 and [`MAX_READERS`](super::MAX_READERS) readers.
    TooManyReaders {
        /// How many were given.
        readers: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Record(e) => write!(f, "cannot issue this node's record: {e}"),
            NodeError::TooManyAddresses { max } => {
                write!(f, "a record carries at most {max} addresses")
            }
            NodeError::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            NodeError::StateOfAnotherPeer => {
                f.write_str("persistent state belongs to another peer")
            }
            NodeError::State(e) => write!(f, "persistent state is corrupt: {e}"),
            NodeError::NotSubscribed { topic } => write!(f, "not subscribed to topic {topic}"),
            NodeError::TooManySubscriptions { max } => {
                write!(f, "a node subscribes to at most {max} topics")
            }
            NodeError::Message(e) => write!(f, "cannot publish: {e}"),
            NodeError::Envelope(e) => write!(f, "envelope: {e}"),
            NodeError::Find(e) => write!(f, "find: {e}"),
            NodeError::TooManyGroups { max } => {
                write!(f, "a node is a member of at most {max} presence groups")
            }
            NodeError::Access(e) => write!(f, "access record: {e}"),
            NodeError::NotAuthored { id } => {
                write!(
                    f,
                    "message {id} was not published by this node (or is forgotten)"
                )
            }
            NodeError::Restore(e) => write!(f, "stored message not restored: {e}"),
            NodeError::TooManyReaders { readers, max } => {
                write!(
                    f,
                    "{readers} readers given; an encrypted message takes 1 to {max}"
                )
            }
        }
    }
}

impl core::error::Error for NodeError {}

/// Running totals, for the simulator's metrics and the CLI's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Frames that decoded, by frame kind (index = kind number, §6.1: session, membership,
    /// failure detection, topic, reconciliation, discovery, private).
    pub frames_in_by_kind: [u64; 7],
    /// `Transmit::Send` outputs produced, by frame kind.
    pub frames_out_by_kind: [u64; 7],
    /// Frames handed to `handle_frame`.
    pub frames_received: u64,
    /// Bytes handed to `handle_frame`.
    pub bytes_received: u64,
    /// `Transmit::Send` outputs produced.
    pub frames_sent: u64,
    /// Bytes in `Transmit::Send` outputs produced.
    pub bytes_sent: u64,
    /// Frames refused because they did not decode (including oversize ones).
    pub rejected_decode: u64,
    /// Frames from peers without a connection.
    pub rejected_not_connected: u64,
    /// Connections closed because a frame came over one the node had no link for (SPEC.md
    /// §8.5).
    pub unlinked_closed: u64,
    /// Handshakes refused for their protocol version.
    pub rejected_version: u64,
    /// Handshakes refused because their record was bad, stale, or for another peer.
    pub rejected_record: u64,
    /// Protocol frames that arrived before the handshake completed.
    pub rejected_unestablished: u64,
    /// ALIVE claims dropped because their signature did not verify (or the signer is unknown).
    pub rejected_alive: u64,
    /// Signatures verified on records (each distinct record is verified once).
    pub records_verified: u64,
    /// Connections closed because no `Hello` arrived in time.
    pub hello_timeouts: u64,
    /// Short Hellos (`HelloAgain`) that named the record already held: no record sent, none
    /// verified.
    pub short_hellos_accepted: u64,
    /// Dials forgotten because the driver never reported them.
    pub dial_timeouts: u64,
    /// Dials not made: none of the addresses offered was kept (§20.1).
    pub dials_refused: u64,
    /// Addresses not dialled: beyond `MAX_DIAL_ADDRESSES`, or loopback/private from a node
    /// that does not dial those (§20.1).
    pub dial_addresses_refused: u64,
    /// Addresses not dialled because their target address had spent its budget,
    /// `dial_rate_per_address`.
    pub dial_addresses_over_budget: u64,
    /// Connections refused (limit reached, a connection to self, or after leaving).
    pub connections_refused: u64,
    /// Outputs dropped because the driver let the transmit queue fill.
    pub transmits_dropped: u64,
    /// Events dropped because the application let the event queue fill.
    pub events_dropped: u64,
    /// Times the driver passed a `now` earlier than a previous one (clamped).
    pub clock_regressions: u64,
    /// Established connections closed because no protocol used them.
    pub unused_links_closed: u64,
    /// Messages this node published.
    pub published: u64,
    /// Topic frames about topics this node does not subscribe to (answered with LEFT).
    pub topic_frames_unsubscribed: u64,
    /// Payloads refused by a topic's validator.
    pub invalid_payloads: u64,
    /// Connections closed because the peer sent too many invalid payloads.
    pub peers_penalised: u64,
    /// Peers cut off because their score fell below the graylist threshold (§13.8).
    pub peers_graylisted: u64,
    /// Topic joins through a subscribed neighbour.
    pub topic_joins: u64,
    /// Merge links made at the end of another member's merge walk (the two followed different
    /// roots: parts of a topic's overlay joined).
    pub merge_links: u64,
    /// FIND walks started.
    pub finds_sent: u64,
    /// FIND walks that ended here with an introduction.
    pub finds_answered: u64,
    /// FIND walks dropped (the node's rate limit, or our own walk come back).
    pub finds_dropped: u64,
    /// FIND walks dropped because their source (the link's address group, else the peer) had
    /// spent its share, `find_rate_per_source`.
    pub finds_over_source_budget: u64,
}

impl Counters {
    /// Every frame refused, whatever the cause (the sum of the `rejected_*` counters).
    pub fn frames_rejected(&self) -> u64 {
        self.rejected_decode
            + self.rejected_not_connected
            + self.rejected_version
            + self.rejected_record
            + self.rejected_unestablished
            + self.rejected_alive
    }
}
