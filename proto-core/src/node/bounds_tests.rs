//! Bounds of the Node's own tables that no public API shows (SPEC.md §8.6, issue G): what a
//! peer puts there goes with its connection, its window, or its place in an overlay.
use super::*;
use crate::broadcast::topic::TopicMessage;
use crate::crypto::InsecureTestProvider;
use crate::frame::Hello;
use crate::frame::PROTOCOL_VERSION;
use crate::identity::IdentitySeeds;
use alloc::sync::Arc;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

fn identity(n: u32) -> Identity {
    let mut seeds = [0x6c; 96];
    seeds[..4].copy_from_slice(&n.to_le_bytes());
    Identity::from_seeds(&InsecureTestProvider, IdentitySeeds::from_bytes(&seeds))
}

fn node() -> Node {
    let config = Config {
        crypto: Arc::new(InsecureTestProvider),
        ..Config::default()
    };
    Node::new(config, identity(0), 1u64, T0).unwrap()
}

fn send(node: &mut Node, now: Timestamp, h: &Identity, frame: Frame) {
    node.handle_frame(now, h.peer_id(), frame.encode().unwrap())
        .unwrap();
}

fn connect(node: &mut Node, now: Timestamp, h: &Identity) {
    node.handle_connected(now, h.peer_id());
    let record =
        PeerRecord::issue(h, Addresses::default(), now, TimeDelta::from_secs(3600)).unwrap();
    let hello = Frame::Session(SessionMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        record,
    }));
    send(node, now, h, hello);
}

fn drain(node: &mut Node) {
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
}

/// What each connected peer subscribes to is kept per connection (at most
/// `MAX_SUBSCRIPTIONS` topics each) and forgotten with the connection.
#[test]
fn neighbour_topics_go_with_the_connection() {
    let mut n = node();
    let topics: Vec<TopicId> = (0..64u8).map(|k| TopicId::from_bytes([k; 32])).collect();
    for i in 1..=300 {
        let h = identity(i);
        connect(&mut n, T0, &h);
        let topics = BoundedVec::new(topics.clone()).unwrap();
        send(
            &mut n,
            T0,
            &h,
            Frame::Topic(TopicMessage::Subscriptions { topics }),
        );
        assert_eq!(n.neighbor_topics.len(), 1);
        n.handle_disconnected(T0, h.peer_id());
        drain(&mut n);
    }
    assert!(n.neighbor_topics.is_empty());
}

/// Overlay references (which peers SWIM probes) are at most the overlays' active views,
/// and go when the peers leave them.
#[test]
fn member_refs_follow_the_active_views() {
    let mut n = node();
    let topic = TopicId::from_bytes([9; 32]);
    n.subscribe(T0, topic).unwrap();
    let peers: Vec<Identity> = (1..=20).map(identity).collect();
    for h in &peers {
        connect(&mut n, T0, h);
        send(&mut n, T0, h, Frame::Membership(hyparview::Message::Join));
        let join = TopicMessage::Membership {
            topic,
            message: hyparview::Message::Join,
        };
        send(&mut n, T0, h, Frame::Topic(join));
        assert!(n.member_refs.len() <= 5 + 7);
    }
    assert!(n.member_refs.len() >= 7);
    for h in &peers {
        n.handle_disconnected(T0, h.peer_id());
    }
    drain(&mut n);
    assert!(n.member_refs.is_empty());
    assert!(
        n.dialing.len() <= 2 * 8,
        "repair dials: one max_pending per overlay"
    );
}

/// A strike entry lives for its 60 s window at most.
#[test]
fn strike_entries_go_when_their_window_ends() {
    let mut n = node();
    let topic = TopicId::from_bytes([9; 32]);
    n.subscribe(T0, topic).unwrap();
    for i in 1..=10 {
        let h = identity(i);
        connect(&mut n, T0, &h);
        let mut m =
            crate::broadcast::message::SignedMessage::publish(&h, topic, 0, T0, b"forged").unwrap();
        m.signature = crate::crypto::SignatureBytes::from_array([1; 3309]);
        let payload = crate::broadcast::plumtree::Payload {
            message: m,
            author_key: h.verifying_key().clone(),
            hops: 1,
        };
        let repair = TopicMessage::Broadcast {
            topic,
            message: crate::broadcast::plumtree::Message::Repair(payload),
        };
        send(&mut n, T0, &h, Frame::Topic(repair));
        n.handle_disconnected(T0, h.peer_id());
    }
    assert_eq!(n.strikes.len(), 10);
    n.handle_timeout(T0 + TimeDelta::from_secs(59));
    assert_eq!(n.strikes.len(), 10);
    n.handle_timeout(T0 + TimeDelta::from_secs(60));
    assert!(n.strikes.is_empty());
}
