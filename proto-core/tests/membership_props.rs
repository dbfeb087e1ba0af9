//! Random input sequences against one Node: whatever peers send and whenever time passes,
//! the views stay within their bounds, never hold the node itself or one peer twice, the
//! active and passive views stay disjoint, and nothing is left due after handle_timeout.

use bytes::Bytes;
use hearsay_proto::frame::{Frame, Hello, PROTOCOL_VERSION, SessionMessage};
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::membership::hyparview::{self, PeerInfo, Priority};
use hearsay_proto::membership::swim::{self, Gossip, Update};
use hearsay_proto::node::Transmit;
use hearsay_proto::testing::{T0, identity};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{Address, Config, Identity, Node, PeerId, PeerRecord, TimeDelta, Timestamp};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::OnceLock;

const PEERS: usize = 8;

struct Peer {
    id: PeerId,
    hello: Bytes,
}

fn peers() -> &'static Vec<Peer> {
    static PEERS_CELL: OnceLock<Vec<Peer>> = OnceLock::new();
    PEERS_CELL.get_or_init(|| {
        (0..PEERS)
            .map(|k| {
                let ident: Identity = identity(100 + k as u64);
                let addrs = Addresses::new(vec![
                    Address::new(format!("peer:{k}").into_bytes()).unwrap(),
                ])
                .unwrap();
                let record =
                    PeerRecord::issue(&ident, addrs, T0, TimeDelta::from_secs(7 * 24 * 3600))
                        .unwrap();
                let hello = Frame::Session(SessionMessage::Hello(Hello {
                    version: PROTOCOL_VERSION,
                    record,
                }))
                .encode()
                .unwrap();
                Peer {
                    id: ident.peer_id(),
                    hello,
                }
            })
            .collect()
    })
}

fn info(k: usize) -> PeerInfo {
    PeerInfo {
        peer: peers()[k].id,
        addresses: Addresses::new(vec![
            Address::new(format!("peer:{k}").into_bytes()).unwrap(),
        ])
        .unwrap(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Connect(usize),
    Disconnect(usize),
    Membership(usize, hyparview::Message),
    Swim(usize, swim::Message),
    Garbage(usize, Vec<u8>),
    Advance(u64),
    Join(usize),
}

fn peer_idx() -> impl Strategy<Value = usize> {
    0..PEERS
}

fn infos() -> impl Strategy<Value = BoundedVec<PeerInfo, { hyparview::MAX_SHUFFLE_NODES }>> {
    prop::collection::vec(peer_idx(), 0..6)
        .prop_map(|ks| BoundedVec::new(ks.into_iter().map(info).collect()).unwrap())
}

fn hpv_message() -> impl Strategy<Value = hyparview::Message> {
    prop_oneof![
        Just(hyparview::Message::Join),
        (peer_idx(), 0u8..8)
            .prop_map(|(k, ttl)| hyparview::Message::ForwardJoin { node: info(k), ttl }),
        any::<bool>().prop_map(|h| hyparview::Message::Neighbor {
            priority: if h { Priority::High } else { Priority::Low }
        }),
        any::<bool>().prop_map(|accepted| hyparview::Message::NeighborReply { accepted }),
        Just(hyparview::Message::Disconnect),
        (peer_idx(), 0u8..8, infos()).prop_map(|(k, ttl, nodes)| hyparview::Message::Shuffle {
            origin: info(k),
            ttl,
            nodes
        }),
        infos().prop_map(|nodes| hyparview::Message::ShuffleReply { nodes }),
    ]
}

fn update(me_or_peer: Option<usize>) -> Update {
    let peer = me_or_peer.map_or(PeerId::from_bytes([0; 32]), |k| peers()[k].id);
    Update::Suspect {
        peer,
        incarnation: 7,
        by: None,
    }
}

fn updates() -> impl Strategy<Value = swim::Updates> {
    prop::collection::vec((prop::option::of(peer_idx()), 0u8..3), 0..4).prop_map(|us| {
        BoundedVec::new(
            us.into_iter()
                .map(|(k, hops)| Gossip {
                    update: update(k),
                    hops,
                })
                .collect(),
        )
        .unwrap()
    })
}

fn swim_message() -> impl Strategy<Value = swim::Message> {
    prop_oneof![
        (0u64..40, any::<bool>(), updates()).prop_map(|(seq, want_view, updates)| {
            swim::Message::Ping {
                seq,
                want_view,
                updates,
                rtt_us: None,
            }
        }),
        (0u64..40, updates()).prop_map(|(seq, updates)| swim::Message::Ack {
            seq,
            view: None,
            updates
        }),
        (0u64..40, peer_idx()).prop_map(|(seq, k)| swim::Message::PingReq {
            seq,
            target: peers()[k].id
        }),
        (0u64..40, peer_idx()).prop_map(|(seq, k)| swim::Message::IndirectAck {
            seq,
            target: peers()[k].id
        }),
        (0u64..40, peer_idx()).prop_map(|(seq, k)| swim::Message::Nack {
            seq,
            target: peers()[k].id
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => peer_idx().prop_map(Op::Connect),
        1 => peer_idx().prop_map(Op::Disconnect),
        5 => (peer_idx(), hpv_message()).prop_map(|(k, m)| Op::Membership(k, m)),
        3 => (peer_idx(), swim_message()).prop_map(|(k, m)| Op::Swim(k, m)),
        1 => (peer_idx(), prop::collection::vec(any::<u8>(), 0..40)).prop_map(|(k, b)| Op::Garbage(k, b)),
        3 => (0u64..4000).prop_map(Op::Advance),
        1 => peer_idx().prop_map(Op::Join),
    ]
}

fn config() -> Config {
    let mut c = Config::default();
    c.hyparview.active_view = 3;
    c.hyparview.passive_view = 5;
    c
}

fn check(node: &Node, cfg: &Config) -> Result<(), TestCaseError> {
    let v = node.inspect();
    let active: Vec<PeerId> = v.neighbors().collect();
    let passive: Vec<PeerId> = v.passive().collect();
    let me = node.peer_id();
    prop_assert!(
        active.len() <= cfg.hyparview.active_view,
        "active {}",
        active.len()
    );
    prop_assert!(
        passive.len() <= cfg.hyparview.passive_view,
        "passive {}",
        passive.len()
    );
    prop_assert!(
        !active.contains(&me) && !passive.contains(&me),
        "self in a view"
    );
    let a: BTreeSet<_> = active.iter().collect();
    let p: BTreeSet<_> = passive.iter().collect();
    prop_assert_eq!(a.len(), active.len(), "duplicate in active");
    prop_assert_eq!(p.len(), passive.len(), "duplicate in passive");
    prop_assert!(a.is_disjoint(&p), "a peer in both views");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn views_stay_bounded_and_clean_under_any_input(ops in prop::collection::vec(op(), 1..120)) {
        let cfg = config();
        let mut node = Node::new(cfg.clone(), identity(1), 1, T0).unwrap();
        let mut now: Timestamp = T0;
        for op in ops {
            match op {
                Op::Connect(k) => {
                    node.handle_connected(now, peers()[k].id);
                    let _ = node.handle_frame(now, peers()[k].id, peers()[k].hello.clone());
                }
                Op::Disconnect(k) => node.handle_disconnected(now, peers()[k].id),
                Op::Membership(k, m) => {
                    let _ = node.handle_frame(now, peers()[k].id, Frame::Membership(m).encode().unwrap());
                }
                Op::Swim(k, m) => {
                    let _ = node.handle_frame(now, peers()[k].id, Frame::FailureDetection(m).encode().unwrap());
                }
                Op::Garbage(k, b) => {
                    let _ = node.handle_frame(now, peers()[k].id, Bytes::from(b));
                }
                Op::Join(k) => {
                    let c = hearsay_proto::node::Contact { peer: peers()[k].id, addresses: info(k).addresses.into_vec() };
                    node.handle_command(now, hearsay_proto::node::Command::Join { contacts: vec![c] }).unwrap();
                }
                Op::Advance(ms) => {
                    let until = now + TimeDelta::from_millis(ms);
                    while let Some(t) = node.poll_timeout().filter(|t| *t <= until) {
                        now = now.max(t);
                        node.handle_timeout(now);
                        let next = node.poll_timeout();
                        prop_assert!(next.is_none_or(|t| t > now), "still due at {next:?} after handle_timeout({now:?})");
                    }
                    now = until;
                }
            }
            while let Some(t) = node.poll_transmit() {
                if let Transmit::Send { frame, .. } = t {
                    prop_assert!(frame.len() <= hearsay_proto::MAX_FRAME_LEN);
                }
            }
            while node.poll_event().is_some() {}
            check(&node, &cfg)?;
        }
    }
}
