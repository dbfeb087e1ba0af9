//! # hearsay-benches
//!
//! Deterministic fixtures for the criterion benchmarks in `benches/*.rs` (run them with
//! `cargo bench -p hearsay-benches`) and for `perf-report`. Everything here is derived from
//! fixed seeds, so two runs measure exactly the same inputs: times and identities come from the
//! core's test harness (`hearsay_proto::testing`: `T0`, `identity(n)`).
//!
//! - [`frames`]: one realistic frame of every message kind on the wire;
//! - [`pair`]: a node whose topic neighbour feeds it GOSSIP frames (the node-level receive path);
//! - [`simulate`]: a small simulator scenario through `hearsay_sim`'s library API;
//! - [`receive`]: Plumtree receive-path fixtures (a five-neighbour topic, pre-signed GOSSIP);
//! - [`quic`]: two real nodes over loopback QUIC, publish throughput.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod frames;
pub mod pair;
pub mod quic;
pub mod receive;
pub mod simulate;

use bytes::Bytes;
use hearsay_proto::frame::{Hello, PROTOCOL_VERSION, SessionMessage};
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::testing::{HOUR, T0, identity};
use hearsay_proto::{Address, Frame, Identity, PeerRecord};

/// A record for `identity` with one socket-style address, issued at [`T0`] for an hour (the
/// protocol default).
pub fn fixture_record(identity: &Identity) -> PeerRecord {
    let address = Address::new(Bytes::from_static(b"192.0.2.7:4433")).expect("address fits");
    let addresses = Addresses::new(vec![address]).expect("one address fits");
    PeerRecord::issue(identity, addresses, T0, HOUR).expect("the fixture record signs")
}

/// The `Hello` of [`identity`]`(1)`.
pub fn fixture_hello() -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        record: fixture_record(&identity(1)),
    }
}

/// [`fixture_hello`] as a frame.
pub fn fixture_frame() -> Frame {
    Frame::Session(SessionMessage::Hello(fixture_hello()))
}

/// [`fixture_frame`] encoded: the bytes a node sends first on every connection.
pub fn fixture_hello_frame() -> Bytes {
    fixture_frame()
        .encode()
        .expect("a Hello is far below the frame limit")
}

/// The topic of the broadcast fixtures.
pub fn fixture_topic() -> hearsay_proto::TopicId {
    hearsay_proto::TopicId::from_name("fixture")
}

/// A payload frame (Plumtree GOSSIP) of a `len`-byte message signed by [`identity`]`(1)`: what
/// a relay receives and checks per message.
pub fn fixture_gossip_frame(len: usize) -> Bytes {
    use hearsay_proto::broadcast::message::SignedMessage;
    use hearsay_proto::broadcast::plumtree::{Message, Payload};
    use hearsay_proto::broadcast::topic::TopicMessage;
    let author = identity(1);
    let message = SignedMessage::publish(&author, fixture_topic(), 1, T0, &vec![7; len])
        .expect("the fixture message signs");
    Frame::Topic(TopicMessage::Broadcast {
        topic: fixture_topic(),
        message: Message::Gossip(Payload {
            message,
            author_key: author.verifying_key().clone(),
            hops: 1,
        }),
    })
    .encode()
    .expect("the fixture payload fits a frame")
}

/// One valid frame of every topic and reconciliation message kind other than GOSSIP.
pub fn fixture_topic_frames() -> Vec<(&'static str, Bytes)> {
    use hearsay_proto::MessageId;
    use hearsay_proto::antientropy::Message as R;
    use hearsay_proto::antientropy::iblt::Iblt;
    use hearsay_proto::broadcast::plumtree::{Announcement, Message as P};
    use hearsay_proto::broadcast::topic::{ReconcileMessage, TopicMessage as T};
    use hearsay_proto::membership::hyparview::{Message as H, PeerInfo};
    use hearsay_proto::wire::{BoundedBytes, BoundedVec};
    let topic = fixture_topic();
    let ids: Vec<MessageId> = (0u8..8).map(|i| MessageId::from_bytes([i; 32])).collect();
    let mut table = Iblt::new(64, [3; 32]).expect("64 cells is a valid size");
    for id in &ids {
        table.insert(id.as_bytes());
    }
    let origin = PeerInfo {
        peer: identity(1).peer_id(),
        addresses: BoundedVec::default(),
    };
    let list = |v: Vec<MessageId>| BoundedVec::new(v).expect("8 ids fit");
    let broadcast = |message| Frame::Topic(T::Broadcast { topic, message });
    let frames = [
        (
            "subscriptions",
            Frame::Topic(T::Subscriptions {
                topics: list_of(vec![topic]),
            }),
        ),
        (
            "find",
            Frame::Topic(T::Find {
                topic,
                origin,
                ttl: 8,
                merge: None,
            }),
        ),
        (
            "join",
            Frame::Topic(T::Membership {
                topic,
                message: H::Join,
            }),
        ),
        ("left", Frame::Topic(T::Left { topic })),
        (
            "ihave",
            broadcast(P::IHave(
                BoundedVec::new(
                    ids.iter()
                        .map(|id| Announcement { id: *id, hops: 2 })
                        .collect(),
                )
                .expect("8 entries fit"),
            )),
        ),
        ("graft", broadcast(P::Graft(list(ids.clone())))),
        ("iwant", broadcast(P::IWant(list(ids.clone())))),
        ("prune", broadcast(P::Prune)),
        (
            "sketch",
            Frame::Reconcile(ReconcileMessage {
                topic,
                message: R::Sketch {
                    session: 1,
                    attempt: 0,
                    table: BoundedBytes::new(table.to_bytes()).expect("a small table fits"),
                },
            }),
        ),
    ];
    frames
        .into_iter()
        .map(|(name, f)| (name, f.encode().expect("fixture frames fit")))
        .collect()
}

fn list_of<T>(
    v: Vec<T>,
) -> hearsay_proto::wire::BoundedVec<T, { hearsay_proto::broadcast::topic::MAX_SUBSCRIPTIONS }> {
    hearsay_proto::wire::BoundedVec::new(v).expect("one topic fits")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_proto::{RecordError, TimeDelta, default_provider};

    #[test]
    fn fixture_frame_decodes_to_the_same_hello_whose_record_verifies() {
        let bytes = fixture_hello_frame();
        let decoded = Frame::decode(&bytes).expect("fixture frame decodes");
        let Frame::Session(SessionMessage::Hello(hello)) = decoded else {
            panic!("expected a Hello, got {decoded:?}");
        };
        assert_eq!(hello, fixture_hello());
        assert_eq!(hello.version, PROTOCOL_VERSION);
        assert_eq!(hello.record.peer_id, identity(1).peer_id());
        let provider = default_provider();
        assert_eq!(hello.record.verify(&*provider, T0), Ok(()));

        // The check is real: moving the expiry by one microsecond breaks the signature.
        let mut tampered = hello.record.clone();
        tampered.expires_at = tampered
            .expires_at
            .saturating_sub(TimeDelta::from_micros(1));
        assert_eq!(
            tampered.verify(&*provider, T0),
            Err(RecordError::BadSignature)
        );
    }

    #[test]
    fn fixture_identities_are_deterministic_and_distinct() {
        assert_eq!(identity(1).peer_id(), identity(1).peer_id());
        assert_ne!(identity(1).peer_id(), identity(2).peer_id());
        // Deterministic signing plus fixed seeds: the same bytes every run.
        assert_eq!(fixture_hello_frame(), fixture_hello_frame());
    }
}
