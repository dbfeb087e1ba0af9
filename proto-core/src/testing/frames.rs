//! Frames and messages built by hand: what a hostile (or just scripted) peer sends.

use super::identities::fake_peer;
use crate::broadcast::message::{MessageKind, SignedMessage};
use crate::broadcast::plumtree::{self, Announcement, Payload};
use crate::broadcast::topic::TopicMessage;
use crate::crypto::{SIGNATURE_LEN, SignatureBytes, VerifyingKeyBytes};
use crate::frame::{Hello, PROTOCOL_VERSION, SessionMessage};
use crate::membership::hyparview;
use crate::wire::{BoundedBytes, BoundedVec};
use crate::{Frame, Identity, MessageId, PeerRecord, Timestamp, TopicId};
use alloc::string::String;
use alloc::vec;
use bytes::Bytes;
use core::fmt::Write as _;

/// The topic of tests whose topic's name does not matter: `TopicId::from_name("test")`.
pub fn topic() -> TopicId {
    TopicId::from_name("test")
}

/// `frame` encoded (it must fit a frame).
pub fn encode(frame: Frame) -> Bytes {
    frame.encode().expect("the test frame fits")
}

/// The Hello that opens every connection, carrying `record` (protocol version 1).
pub fn hello(record: PeerRecord) -> Frame {
    Frame::Session(SessionMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        record,
    }))
}

/// A Plumtree `message` on `topic`.
pub fn broadcast(topic: TopicId, message: plumtree::Message) -> Frame {
    Frame::Topic(TopicMessage::Broadcast { topic, message })
}

/// A JOIN into `topic`'s overlay: its sender becomes a topic neighbour (an eager Plumtree peer).
pub fn topic_join(topic: TopicId) -> Frame {
    Frame::Topic(TopicMessage::Membership {
        topic,
        message: hyparview::Message::Join,
    })
}

/// An application message by `author` with `len` bytes of payload (all `7`), signed (valid
/// under `author`'s provider).
pub fn signed(
    author: &Identity,
    topic: TopicId,
    sequence: u64,
    at: Timestamp,
    len: usize,
) -> SignedMessage {
    SignedMessage::publish(author, topic, sequence, at, &vec![7; len]).expect("the message signs")
}

/// An application message of [`fake_peer`]`(0)` that nobody signed (`len` bytes of payload, all
/// `1`, a zero signature): for state machines driven with a validator that accepts anything.
pub fn unsigned(topic: TopicId, sequence: u64, at: Timestamp, len: usize) -> SignedMessage {
    SignedMessage {
        author: fake_peer(0),
        topic,
        sequence,
        timestamp: at,
        payload: BoundedBytes::new(vec![1u8; len]).expect("the payload fits"),
        signature: SignatureBytes::from_array([0; SIGNATURE_LEN]),
        kind: MessageKind::Application,
    }
}

/// `message` as a Plumtree payload one hop from its author, whose key is `author_key`.
///
/// ```
/// use hearsay_proto::broadcast::plumtree::Message;
/// use hearsay_proto::testing::{T0, broadcast, encode, identity, payload, signed};
/// use hearsay_proto::TopicId;
///
/// let author = identity(1);
/// let topic = TopicId::from_name("news");
/// let m = signed(&author, topic, 1, T0, 16);
/// let gossip = broadcast(topic, Message::Gossip(payload(m, author.verifying_key().clone())));
/// assert!(!encode(gossip).is_empty());
/// ```
pub fn payload(message: SignedMessage, author_key: VerifyingKeyBytes) -> Payload {
    Payload {
        message,
        author_key,
        hops: 1,
    }
}

/// An IHAVE announcing `ids` (at most 64) one hop away.
pub fn ihave(ids: impl IntoIterator<Item = MessageId>) -> plumtree::Message {
    let entries = ids
        .into_iter()
        .map(|id| Announcement { id, hops: 1 })
        .collect();
    plumtree::Message::IHave(BoundedVec::new(entries).expect("at most 64 ids"))
}

/// `bytes` in lower-case hexadecimal.
///
/// ```
/// assert_eq!(hearsay_proto::testing::hex(&[0x0f, 0xa0]), "0fa0");
/// ```
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
