//! One realistic frame of every message kind the core puts on the wire, for the per-kind codec
//! benchmarks (`benches/wire.rs`) and the wire table of `perf-report`.
//!
//! "Realistic" means the contents a running node sends: real signed records and messages, one
//! socket address per peer, a SHUFFLE sample of the size HyParView draws, a full 64-entry IHAVE
//! batch, the default 64-cell reconciliation sketch filled with retained ids, and so on.

use crate::{fixture_record, fixture_topic};
use bytes::Bytes;
use hearsay_proto::antientropy::Message as Reconcile;
use hearsay_proto::antientropy::iblt::{Iblt, StrataEstimator};
use hearsay_proto::broadcast::message::{MessageKind, SignedMessage};
use hearsay_proto::broadcast::plumtree::{Announcement, Message as Plumtree, Payload};
use hearsay_proto::broadcast::topic::{ReconcileMessage, TopicMessage};
use hearsay_proto::broadcast::tree::RootBeacon;
use hearsay_proto::crypto::signing_input;
use hearsay_proto::discovery::foaf::{Answer, DiscoveryMessage, Query, QueryId, Target};
use hearsay_proto::frame::{Goodbye, GoodbyeReason, SessionMessage};
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::membership::hyparview::{Message as Membership, PeerInfo, Priority};
use hearsay_proto::membership::swim::{ALIVE_DOMAIN, Gossip, Message as Swim, Update, alive_body};
use hearsay_proto::node::PrivateMessage;
use hearsay_proto::testing::{T0, identity};
use hearsay_proto::wire::{BoundedBytes, BoundedVec, FixedBytes};
use hearsay_proto::{Address, Frame, Identity, MessageId, PeerId, TopicId};

/// One fixture frame: its group (the frame kind), its name, and the frame.
#[derive(Debug, Clone)]
pub struct FrameFixture {
    /// The frame kind's name, with its number: `"1 membership"`.
    pub kind: &'static str,
    /// The message: `"forward_join"`.
    pub name: &'static str,
    /// The frame.
    pub frame: Frame,
}

impl FrameFixture {
    /// `kind/name`, a benchmark id.
    pub fn id(&self) -> String {
        let kind = self.kind.split_once(' ').map_or(self.kind, |(_, k)| k);
        format!("{kind}/{}", self.name)
    }

    /// The frame encoded.
    pub fn bytes(&self) -> Bytes {
        self.frame.encode().expect("fixture frames fit a frame")
    }
}

/// A peer id derived from `k` (no key behind it: ids in views and samples are only compared).
fn peer(k: u8) -> PeerId {
    PeerId::from_bytes(*blake3::hash(&[b'p', k]).as_bytes())
}

/// A message id derived from `k`.
fn message_id(k: u32) -> MessageId {
    MessageId::from_bytes(*blake3::hash(&k.to_le_bytes()).as_bytes())
}

fn addresses(k: u8) -> Addresses {
    let text = format!("198.51.100.{k}:4433");
    let address = Address::new(Bytes::from(text)).expect("a short address fits");
    Addresses::new(vec![address]).expect("one address fits")
}

fn peer_info(k: u8) -> PeerInfo {
    PeerInfo {
        peer: peer(k),
        addresses: addresses(k),
    }
}

fn bounded<T, const N: usize>(items: Vec<T>) -> BoundedVec<T, N> {
    BoundedVec::new(items).expect("within the fixture's limit")
}

fn signed(author: &Identity, kind: MessageKind, sequence: u64, len: usize) -> SignedMessage {
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    SignedMessage::publish_kind(author, kind, fixture_topic(), sequence, T0, &payload)
        .expect("the fixture message signs")
}

/// Every frame kind and message the core sends, with realistic contents (see the module
/// documentation). Signing makes this take a few milliseconds: build it once.
pub fn all_frames() -> Vec<FrameFixture> {
    let author = identity(1);
    let topic = fixture_topic();
    let mut out = Vec::new();
    let mut push = |kind, name, frame| out.push(FrameFixture { kind, name, frame });

    // 0: session.
    const SESSION: &str = "0 session";
    push(SESSION, "hello", crate::fixture_frame());
    push(
        SESSION,
        "goodbye",
        Frame::Session(SessionMessage::Goodbye(Goodbye {
            reason: GoodbyeReason::Leaving,
        })),
    );
    push(
        SESSION,
        "hello_request",
        Frame::Session(SessionMessage::HelloRequest),
    );

    // 1: node-level HyParView. A SHUFFLE carries the origin plus ka = 3 active and kp = 4
    // passive peers (SPEC.md §9 defaults), the reply as many passive peers.
    const MEMBERSHIP: &str = "1 membership";
    let sample = |from: u8| bounded((from..from + 8).map(peer_info).collect());
    push(MEMBERSHIP, "join", Frame::Membership(Membership::Join));
    push(
        MEMBERSHIP,
        "forward_join",
        Frame::Membership(Membership::ForwardJoin {
            node: peer_info(1),
            ttl: 6,
        }),
    );
    push(
        MEMBERSHIP,
        "neighbor",
        Frame::Membership(Membership::Neighbor {
            priority: Priority::High,
        }),
    );
    push(
        MEMBERSHIP,
        "neighbor_reply",
        Frame::Membership(Membership::NeighborReply { accepted: true }),
    );
    push(
        MEMBERSHIP,
        "disconnect",
        Frame::Membership(Membership::Disconnect),
    );
    push(
        MEMBERSHIP,
        "shuffle_8",
        Frame::Membership(Membership::Shuffle {
            origin: peer_info(1),
            ttl: 5,
            nodes: sample(10),
        }),
    );
    push(
        MEMBERSHIP,
        "shuffle_reply_8",
        Frame::Membership(Membership::ShuffleReply { nodes: sample(20) }),
    );

    // 2: SWIM. Most pings carry no news; one that does carries a signed ALIVE refutation.
    const SWIM: &str = "2 swim";
    let alive = {
        let body = alive_body(&author.peer_id(), 3);
        let signature = author
            .signer()
            .sign(&signing_input(ALIVE_DOMAIN, &body))
            .expect("signs");
        Gossip {
            update: Update::Alive {
                peer: author.peer_id(),
                incarnation: 3,
                signature,
            },
            hops: 3,
        }
    };
    let suspect = Gossip {
        update: Update::Suspect {
            peer: peer(40),
            incarnation: 1,
            by: None,
        },
        hops: 3,
    };
    push(
        SWIM,
        "ping",
        Frame::FailureDetection(Swim::Ping {
            seq: 1_234,
            want_view: false,
            updates: BoundedVec::default(),
            rtt_us: Some(48_000),
        }),
    );
    push(
        SWIM,
        "ping_alive_suspect",
        Frame::FailureDetection(Swim::Ping {
            seq: 1_235,
            want_view: false,
            updates: bounded(vec![alive, suspect]),
            rtt_us: None,
        }),
    );
    push(
        SWIM,
        "ack",
        Frame::FailureDetection(Swim::Ack {
            seq: 1_234,
            view: None,
            updates: BoundedVec::default(),
        }),
    );
    push(
        SWIM,
        "ack_view_5",
        Frame::FailureDetection(Swim::Ack {
            seq: 1_236,
            view: Some(bounded((50..55).map(peer).collect())),
            updates: BoundedVec::default(),
        }),
    );
    push(
        SWIM,
        "ping_req",
        Frame::FailureDetection(Swim::PingReq {
            seq: 1_237,
            target: peer(41),
        }),
    );
    push(
        SWIM,
        "indirect_ack",
        Frame::FailureDetection(Swim::IndirectAck {
            seq: 1_237,
            target: peer(41),
        }),
    );
    push(
        SWIM,
        "nack",
        Frame::FailureDetection(Swim::Nack {
            seq: 1_237,
            target: peer(41),
        }),
    );

    // 3: topics.
    const TOPIC: &str = "3 topic";
    let payload = Payload {
        message: signed(&author, MessageKind::Application, 1, 1024),
        author_key: author.verifying_key().clone(),
        hops: 2,
    };
    let broadcast = |message| Frame::Topic(TopicMessage::Broadcast { topic, message });
    let ids = |n: u32| bounded((0..n).map(message_id).collect());
    push(
        TOPIC,
        "subscriptions_4",
        Frame::Topic(TopicMessage::Subscriptions {
            topics: bounded(
                ["chat", "presence", "news", "fixture"]
                    .into_iter()
                    .map(TopicId::from_name)
                    .collect(),
            ),
        }),
    );
    push(
        TOPIC,
        "find",
        Frame::Topic(TopicMessage::Find {
            topic,
            origin: peer_info(1),
            ttl: 6,
            merge: None,
        }),
    );
    push(
        TOPIC,
        "topic_forward_join",
        Frame::Topic(TopicMessage::Membership {
            topic,
            message: Membership::ForwardJoin {
                node: peer_info(2),
                ttl: 4,
            },
        }),
    );
    push(TOPIC, "left", Frame::Topic(TopicMessage::Left { topic }));
    push(
        TOPIC,
        "beacon",
        Frame::Topic(TopicMessage::Beacon {
            topic,
            beacon: RootBeacon {
                root: peer(60),
                seq: 77,
                dist: 3,
                parent: Some(peer(61)),
                interval_ms: 5_000,
                ask: false,
            },
        }),
    );
    push(
        TOPIC,
        "gossip_1KiB",
        broadcast(Plumtree::Gossip(payload.clone())),
    );
    push(TOPIC, "repair_1KiB", broadcast(Plumtree::Repair(payload)));
    push(
        TOPIC,
        "ihave_64",
        broadcast(Plumtree::IHave(bounded(
            (0..64)
                .map(|k| Announcement {
                    id: message_id(k),
                    hops: 2 + (k % 4) as u8,
                })
                .collect(),
        ))),
    );
    push(TOPIC, "iwant_16", broadcast(Plumtree::IWant(ids(16))));
    push(TOPIC, "graft_4", broadcast(Plumtree::Graft(ids(4))));
    push(TOPIC, "prune", broadcast(Plumtree::Prune));

    // 4: reconciliation. The first sketch of a session has the default 64 cells; the node
    // inserts every retained id (here 500).
    const RECONCILE: &str = "4 reconcile";
    let mut table = Iblt::new(64, [3; 32]).expect("64 cells is a valid size");
    let mut strata = StrataEstimator::new([4; 32]);
    for k in 0..500 {
        table.insert(message_id(k).as_bytes());
        strata.insert(message_id(k).as_bytes());
    }
    let reconcile = |message| Frame::Reconcile(ReconcileMessage { topic, message });
    push(
        RECONCILE,
        "sketch_64_cells",
        reconcile(Reconcile::Sketch {
            session: 9,
            attempt: 0,
            table: BoundedBytes::new(table.to_bytes()).expect("a small table fits"),
        }),
    );
    push(
        RECONCILE,
        "estimate",
        reconcile(Reconcile::Estimate {
            session: 9,
            strata: BoundedBytes::new(strata.to_bytes()).expect("an estimator fits"),
        }),
    );
    push(
        RECONCILE,
        "done",
        reconcile(Reconcile::Done {
            session: 9,
            pushed: 3,
            wanted: 2,
        }),
    );

    // 5: discovery (friends of friends). An answer carries signed records (three here).
    const DISCOVERY: &str = "5 discovery";
    let query_id = QueryId::from_bytes([0x42; 16]);
    push(
        DISCOVERY,
        "query_peer",
        Frame::Discovery(DiscoveryMessage::Query(Query {
            id: query_id,
            target: Target::Peer(peer(70)),
            ttl: 3,
        })),
    );
    push(
        DISCOVERY,
        "query_capability",
        Frame::Discovery(DiscoveryMessage::Query(Query {
            id: query_id,
            target: Target::Capability(
                BoundedBytes::new(Bytes::from_static(b"relay/v1")).expect("fits"),
            ),
            ttl: 3,
        })),
    );
    let records = (1..=3).map(|k| fixture_record(&identity(k))).collect();
    push(
        DISCOVERY,
        "answer_3_records",
        Frame::Discovery(DiscoveryMessage::Answer(Answer {
            id: query_id,
            records: bounded(records),
        })),
    );

    // 6: private fetch of an encrypted message's content.
    const PRIVATE: &str = "6 private";
    let sealed_id = message_id(9_999);
    let nonce = FixedBytes::from_array([0x17; 32]);
    push(
        PRIVATE,
        "fetch",
        Frame::Private(PrivateMessage::Fetch { message: sealed_id }),
    );
    push(
        PRIVATE,
        "challenge",
        Frame::Private(PrivateMessage::Challenge {
            message: sealed_id,
            nonce: nonce.clone(),
        }),
    );
    push(
        PRIVATE,
        "prove",
        Frame::Private(PrivateMessage::Prove {
            message: sealed_id,
            nonce,
            proof: FixedBytes::from_array([0x29; 32]),
        }),
    );
    push(
        PRIVATE,
        "content_1KiB",
        Frame::Private(PrivateMessage::Content {
            // 1 KiB of plaintext sealed: the AEAD adds its nonce and tag.
            message: signed(&author, MessageKind::Sealed, 2, 1024 + 40),
        }),
    );
    push(
        PRIVATE,
        "refused",
        Frame::Private(PrivateMessage::Refused { message: sealed_id }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_round_trips_and_every_kind_is_covered() {
        let frames = all_frames();
        let mut kinds = std::collections::BTreeSet::new();
        for f in &frames {
            let bytes = f.bytes();
            let decoded = Frame::decode_shared(&bytes).expect("decodes");
            assert_eq!(decoded, f.frame, "{}", f.id());
            assert_eq!(
                f.kind.split(' ').next(),
                Some(&*f.frame.kind().number().to_string())
            );
            kinds.insert(f.frame.kind().number());
        }
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            (0..=6).collect::<Vec<_>>()
        );
    }
}
