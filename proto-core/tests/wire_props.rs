//! Property tests for the wire format: every wire type round-trips; random bytes, truncations,
//! bit flips and oversize frames give errors, never panics.

use hearsay_proto::crypto::{
    EncapsulationKeyBytes, KEM_ENCAPSULATION_KEY_LEN, SIG_VERIFYING_KEY_LEN, SIGNATURE_LEN,
    SignatureBytes, VerifyingKeyBytes,
};
use hearsay_proto::frame::{Frame, Goodbye, GoodbyeReason, Hello, SessionMessage};
use hearsay_proto::identity::record::{Addresses, MAX_ADDRESS_LEN, MAX_ADDRESSES};
use hearsay_proto::node::PersistentState;
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{
    Address, DecodeError, MAX_FRAME_LEN, MessageId, PeerId, PeerRecord, Timestamp, TopicId,
};
use proptest::prelude::*;

fn bytes_of(len: usize) -> impl Strategy<Value = Vec<u8>> {
    // Random fill is slow for kilobyte keys; a seed byte expanded by BLAKE3 is as good here.
    any::<u64>().prop_map(move |seed| {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof()
            .fill(&mut out);
        out
    })
}

fn peer_id() -> impl Strategy<Value = PeerId> {
    any::<[u8; 32]>().prop_map(PeerId::from_bytes)
}

fn address() -> impl Strategy<Value = Address> {
    prop::collection::vec(any::<u8>(), 0..=MAX_ADDRESS_LEN).prop_map(|v| Address::new(v).unwrap())
}

fn record() -> impl Strategy<Value = PeerRecord> {
    (
        peer_id(),
        bytes_of(SIG_VERIFYING_KEY_LEN),
        bytes_of(KEM_ENCAPSULATION_KEY_LEN),
        prop::collection::vec(address(), 0..=MAX_ADDRESSES),
        any::<u64>(),
        any::<u64>(),
        bytes_of(SIGNATURE_LEN),
    )
        .prop_map(
            |(peer_id, vk, ek, addrs, issued, expires, sig)| PeerRecord {
                peer_id,
                verifying_key: VerifyingKeyBytes::new(vk).unwrap(),
                encapsulation_key: EncapsulationKeyBytes::new(ek).unwrap(),
                addresses: Addresses::new(addrs).unwrap(),
                issued_at: Timestamp::from_micros(issued),
                expires_at: Timestamp::from_micros(expires),
                signature: SignatureBytes::new(sig).unwrap(),
            },
        )
}

fn peer_info() -> impl Strategy<Value = hearsay_proto::membership::hyparview::PeerInfo> {
    (peer_id(), prop::collection::vec(address(), 0..=2)).prop_map(|(peer, a)| {
        hearsay_proto::membership::hyparview::PeerInfo {
            peer,
            addresses: Addresses::new(a).unwrap(),
        }
    })
}

fn membership() -> impl Strategy<Value = hearsay_proto::membership::hyparview::Message> {
    use hearsay_proto::membership::hyparview::{Message as M, Priority};
    let infos = prop::collection::vec(peer_info(), 0..5)
        .prop_map(|v| BoundedVec::new(v).unwrap())
        .boxed();
    prop_oneof![
        Just(M::Join),
        (peer_info(), any::<u8>()).prop_map(|(node, ttl)| M::ForwardJoin { node, ttl }),
        any::<bool>().prop_map(|h| M::Neighbor {
            priority: if h { Priority::High } else { Priority::Low }
        }),
        any::<bool>().prop_map(|accepted| M::NeighborReply { accepted }),
        Just(M::Disconnect),
        (peer_info(), any::<u8>(), infos.clone()).prop_map(|(origin, ttl, nodes)| M::Shuffle {
            origin,
            ttl,
            nodes
        }),
        infos.prop_map(|nodes| M::ShuffleReply { nodes }),
    ]
}

fn failure_detection() -> impl Strategy<Value = hearsay_proto::membership::swim::Message> {
    use hearsay_proto::membership::swim::{Gossip, Message as M, Update};
    let update = prop_oneof![
        (peer_id(), any::<u64>(), bytes_of(SIGNATURE_LEN)).prop_map(|(peer, incarnation, sig)| {
            Update::Alive {
                peer,
                incarnation,
                signature: SignatureBytes::new(sig).unwrap(),
            }
        }),
        (peer_id(), any::<u64>()).prop_map(|(peer, incarnation)| Update::Suspect {
            peer,
            incarnation,
            by: None
        }),
        (peer_id(), any::<u64>())
            .prop_map(|(peer, incarnation)| Update::Dead { peer, incarnation }),
    ];
    let updates = prop::collection::vec((update, any::<u8>()), 0..4)
        .prop_map(|v| {
            BoundedVec::new(
                v.into_iter()
                    .map(|(update, hops)| Gossip { update, hops })
                    .collect(),
            )
            .unwrap()
        })
        .boxed();
    let view = prop::option::of(
        prop::collection::vec(peer_id(), 0..6).prop_map(|v| BoundedVec::new(v).unwrap()),
    );
    prop_oneof![
        (
            any::<u64>(),
            any::<bool>(),
            updates.clone(),
            prop::option::of(any::<u32>())
        )
            .prop_map(|(seq, want_view, updates, rtt_us)| M::Ping {
                seq,
                want_view,
                updates,
                rtt_us,
            }),
        (any::<u64>(), view, updates).prop_map(|(seq, view, updates)| M::Ack {
            seq,
            view,
            updates
        }),
        (any::<u64>(), peer_id()).prop_map(|(seq, target)| M::PingReq { seq, target }),
        (any::<u64>(), peer_id()).prop_map(|(seq, target)| M::IndirectAck { seq, target }),
        (any::<u64>(), peer_id()).prop_map(|(seq, target)| M::Nack { seq, target }),
    ]
}

fn topic_id() -> impl Strategy<Value = TopicId> {
    any::<[u8; 32]>().prop_map(TopicId::from_bytes)
}

fn message_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId::from_bytes)
}

fn plumtree_message() -> impl Strategy<Value = hearsay_proto::broadcast::plumtree::Message> {
    use hearsay_proto::broadcast::message::{MessageKind, Payload as Body, SignedMessage};
    use hearsay_proto::broadcast::plumtree::{Announcement, Message as M, Payload};
    let payload = (
        peer_id(),
        topic_id(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..64),
        bytes_of(SIGNATURE_LEN),
        bytes_of(SIG_VERIFYING_KEY_LEN),
        any::<u8>(),
        0u8..4,
    )
        .prop_map(
            |(author, topic, sequence, t, body, sig, key, hops, kind)| Payload {
                message: SignedMessage {
                    author,
                    topic,
                    sequence,
                    timestamp: Timestamp::from_micros(t),
                    payload: Body::new(body).unwrap(),
                    signature: SignatureBytes::new(sig).unwrap(),
                    kind: MessageKind::from_number(kind).unwrap(),
                },
                author_key: VerifyingKeyBytes::new(key).unwrap(),
                hops,
            },
        )
        .boxed();
    let ids = prop::collection::vec(message_id(), 0..8)
        .prop_map(|v| BoundedVec::new(v).unwrap())
        .boxed();
    prop_oneof![
        payload.clone().prop_map(M::Gossip),
        payload.prop_map(M::Repair),
        prop::collection::vec((message_id(), any::<u8>()), 0..8).prop_map(|v| M::IHave(
            BoundedVec::new(
                v.into_iter()
                    .map(|(id, hops)| Announcement { id, hops })
                    .collect()
            )
            .unwrap()
        )),
        ids.clone().prop_map(M::Graft),
        ids.prop_map(M::IWant),
        Just(M::Prune),
    ]
}

fn topic_frame() -> impl Strategy<Value = Frame> {
    use hearsay_proto::antientropy::Message as R;
    use hearsay_proto::broadcast::topic::{ReconcileMessage, TopicMessage as T};
    let table = prop::collection::vec(any::<u8>(), 0..256)
        .prop_map(|v| hearsay_proto::wire::BoundedBytes::new(v).unwrap())
        .boxed();
    prop_oneof![
        prop::collection::vec(topic_id(), 0..8).prop_map(|v| T::Subscriptions {
            topics: BoundedVec::new(v).unwrap()
        }),
        (
            topic_id(),
            peer_info(),
            any::<u8>(),
            prop::option::of(peer_id())
        )
            .prop_map(|(topic, origin, ttl, merge)| T::Find {
                topic,
                origin,
                ttl,
                merge
            }),
        (topic_id(), membership()).prop_map(|(topic, message)| T::Membership { topic, message }),
        topic_id().prop_map(|topic| T::Left { topic }),
        (
            topic_id(),
            peer_id(),
            any::<u64>(),
            any::<u8>(),
            prop::option::of(peer_id()),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(
                |(topic, root, seq, dist, parent, interval_ms, ask)| T::Beacon {
                    topic,
                    beacon: hearsay_proto::broadcast::tree::RootBeacon {
                        root,
                        seq,
                        dist,
                        parent,
                        interval_ms,
                        ask
                    },
                }
            ),
        (topic_id(), plumtree_message())
            .prop_map(|(topic, message)| T::Broadcast { topic, message }),
    ]
    .prop_map(Frame::Topic)
    .boxed()
    .prop_union(
        (
            topic_id(),
            prop_oneof![
                (any::<u64>(), any::<u8>(), table.clone()).prop_map(|(session, attempt, table)| {
                    R::Sketch {
                        session,
                        attempt,
                        table,
                    }
                }),
                (any::<u64>(), table).prop_map(|(session, strata)| R::Estimate { session, strata }),
                (any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(session, pushed, wanted)| {
                    R::Done {
                        session,
                        pushed,
                        wanted,
                    }
                }),
                (any::<u64>(), any::<u64>(), any::<u32>(), any::<[u8; 16]>()).prop_map(
                    |(session, cutoff, count, hash)| R::Digest {
                        session,
                        cutoff: hearsay_proto::time::Timestamp::from_micros(cutoff),
                        count,
                        hash: hearsay_proto::wire::FixedBytes::from_array(hash),
                    }
                ),
                any::<u64>().prop_map(|session| R::Same { session }),
                (any::<u64>(), any::<u32>())
                    .prop_map(|(session, count)| R::Differs { session, count }),
            ],
        )
            .prop_map(|(topic, message)| Frame::Reconcile(ReconcileMessage { topic, message }))
            .boxed(),
    )
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        topic_frame(),
        membership().prop_map(Frame::Membership),
        failure_detection().prop_map(Frame::FailureDetection),
        Just(Frame::Session(SessionMessage::HelloRequest)),
        (any::<u16>(), record()).prop_map(|(version, record)| Frame::Session(
            SessionMessage::Hello(Hello { version, record })
        )),
        prop_oneof![Just(GoodbyeReason::Leaving), Just(GoodbyeReason::Replaced)]
            .prop_map(|reason| Frame::Session(SessionMessage::Goodbye(Goodbye { reason }))),
    ]
}

fn state() -> impl Strategy<Value = PersistentState> {
    (
        peer_id(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(record(), 0..4),
        prop::option::of(prop::collection::vec(peer_id(), 0..4)),
    )
        .prop_map(
            |(owner, boot_count, saved, recs, standing)| PersistentState {
                owner,
                boot_count,
                saved_at: Timestamp::from_micros(saved),
                known_records: BoundedVec::new(recs).unwrap(),
                long_standing: standing.map(|s| BoundedVec::new(s).unwrap()),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn frames_round_trip(f in frame()) {
        let bytes = f.encode().unwrap();
        prop_assert!(bytes.len() <= MAX_FRAME_LEN);
        prop_assert_eq!(Frame::decode(&bytes).unwrap(), f);
    }

    #[test]
    fn records_round_trip(r in record()) {
        prop_assert_eq!(PeerRecord::from_bytes(&r.to_bytes().unwrap()).unwrap(), r);
    }

    #[test]
    fn persistent_state_round_trips(s in state()) {
        prop_assert_eq!(PersistentState::from_bytes(&s.to_bytes().unwrap()).unwrap(), s);
    }

    #[test]
    fn ids_round_trip_as_cbor_and_text(id in any::<[u8; 32]>(), name in ".{0,40}") {
        let p = PeerId::from_bytes(id);
        prop_assert_eq!(p.to_string().parse::<PeerId>().unwrap(), p);
        let t = TopicId::from_name(&name);
        prop_assert_eq!(t.to_string().parse::<TopicId>().unwrap(), t);
        let m = MessageId::new(&p, &t, 3, name.as_bytes());
        prop_assert_eq!(m.to_string().parse::<MessageId>().unwrap(), m);
    }

    #[test]
    fn every_strict_prefix_of_a_frame_is_an_error(f in frame(), cut in any::<prop::sample::Index>()) {
        let bytes = f.encode().unwrap();
        let at = cut.index(bytes.len());
        prop_assert!(Frame::decode(&bytes[..at]).is_err());
    }

    #[test]
    fn bit_flips_never_panic(f in frame(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = f.encode().unwrap().to_vec();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        // Either an error, or a frame whose canonical encoding decodes to the same frame
        // (decoding accepts a few non-canonical forms, such as an empty map for an empty array).
        if let Ok(g) = Frame::decode(&bytes) {
            let again = g.encode().unwrap();
            prop_assert_eq!(Frame::decode(&again).unwrap(), g);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Frame::decode(&bytes);
        let _ = PeerRecord::from_bytes(&bytes);
        let _ = PersistentState::from_bytes(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_header_never_panic(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        // [0, [0, [ ... : a session hello whose body is random.
        let mut bytes = vec![0x82, 0x00, 0x82, 0x00];
        bytes.extend_from_slice(&tail);
        let _ = Frame::decode(&bytes);
    }
}

#[test]
fn oversize_frames_are_refused_before_parsing() {
    let big = vec![0u8; MAX_FRAME_LEN + 1];
    assert_eq!(
        Frame::decode(&big),
        Err(DecodeError::FrameTooLarge {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        })
    );
}

#[test]
fn over_limit_lists_and_lengths_are_typed_errors() {
    // A record claiming nine addresses.
    let r = PeerRecord {
        peer_id: PeerId::from_bytes([1; 32]),
        verifying_key: VerifyingKeyBytes::from_array([2; SIG_VERIFYING_KEY_LEN]),
        encapsulation_key: EncapsulationKeyBytes::from_array([3; KEM_ENCAPSULATION_KEY_LEN]),
        addresses: Addresses::empty(),
        issued_at: Timestamp::from_micros(1),
        expires_at: Timestamp::from_micros(2),
        signature: SignatureBytes::from_array([4; SIGNATURE_LEN]),
    };
    let mut enc = r.to_bytes().unwrap();
    // The addresses field is the empty array 0x80 right after the two keys; make it claim 9.
    let at = enc.iter().position(|&b| b == 0x80).unwrap();
    enc[at] = 0x89;
    assert_eq!(
        PeerRecord::from_bytes(&enc),
        Err(DecodeError::ListTooLong { max: MAX_ADDRESSES })
    );
    // A key one byte short.
    let mut short = r.clone().to_bytes().unwrap();
    let vk_header = short
        .windows(3)
        .position(|w| w == [0x59, 0x07, 0xa0])
        .unwrap();
    short[vk_header + 2] = 0x9f; // 1951 bytes declared
    short.remove(vk_header + 3);
    assert_eq!(
        PeerRecord::from_bytes(&short),
        Err(DecodeError::WrongLength {
            expected: SIG_VERIFYING_KEY_LEN,
            got: SIG_VERIFYING_KEY_LEN - 1
        })
    );
    assert!(Addresses::new(vec![Address::default(); MAX_ADDRESSES + 1]).is_err());
    assert!(Address::new(vec![0u8; MAX_ADDRESS_LEN + 1]).is_err());
}

#[test]
fn unknown_trailing_fields_are_skipped_for_forward_compatibility() {
    // Goodbye = [0, [1, [[reason]]]]; a future version appends a field to the Goodbye struct.
    let today = Frame::Session(SessionMessage::Goodbye(Goodbye {
        reason: GoodbyeReason::Leaving,
    }));
    assert_eq!(
        today.encode().unwrap().to_vec(),
        vec![0x82, 0x00, 0x82, 0x01, 0x81, 0x81, 0x00]
    );
    let future = [
        0x82, 0x00, 0x82, 0x01, 0x81, 0x82, 0x00, 0x63, b'n', b'e', b'w',
    ];
    assert_eq!(Frame::decode(&future), Ok(today));
}
