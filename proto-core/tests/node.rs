//! The Node idiom end to end over an in-memory network: handshake, goodbye, disconnects, timers,
//! persistence, and refusal of bad input without any change of state.

use bytes::Bytes;
use hearsay_proto::frame::{Frame, Hello, SessionMessage};
use hearsay_proto::node::{Command, Contact, DownReason, Event, FrameError, Transmit};
use hearsay_proto::testing::{Net, T0, identity, node, node_with};
use hearsay_proto::{
    Config, DecodeError, MAX_FRAME_LEN, Node, PeerRecord, PersistentState, TimeDelta,
};

fn join(net: &mut Net, from: usize, to: usize) {
    net.join(from, to);
}

#[test]
fn hello_exchange_makes_both_sides_neighbours_and_caches_records() {
    let mut net = Net::new(vec![node(1), node(2), node(3)]);
    join(&mut net, 1, 0);
    join(&mut net, 2, 0);
    // Node 2's JOIN at node 0 is forwarded to node 1, whose only active peer is node 0: it
    // takes node 2 as a neighbour too (HyParView's FORWARD_JOIN rule): a triangle.
    for i in 0..3 {
        let mut others: Vec<_> = (0..3).filter(|&j| j != i).map(|j| net.id(j)).collect();
        others.sort();
        assert_eq!(net.neighbors(i), others, "node {i}");
    }
    let ups = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::NeighborUp { .. }))
        .count();
    assert_eq!(ups, 6, "one NeighborUp per side per neighbourship");
    // Node 0 holds verified copies of both records, byte-identical to what they issued.
    let r1 = net.nodes[0]
        .inspect()
        .known_record(&net.id(1))
        .unwrap()
        .clone();
    assert_eq!(&r1, net.nodes[1].inspect().record());
    assert_eq!(net.nodes[0].inspect().counters().records_verified, 2);
}

#[test]
fn goodbye_reports_left_and_plain_disconnect_reports_disconnected() {
    let mut net = Net::new(vec![node(1), node(2), node(3)]);
    join(&mut net, 1, 0);
    join(&mut net, 2, 0);
    net.events.clear();
    net.nodes[1]
        .handle_command(net.now, Command::Leave)
        .unwrap();
    net.run();
    assert!(net.events.contains(&(
        0,
        Event::NeighborDown {
            peer: net.id(1),
            reason: DownReason::Left
        }
    )));
    assert_eq!(net.neighbors(1), vec![]);

    net.events.clear();
    let (a, b) = (net.id(0), net.id(2));
    net.nodes[0].handle_disconnected(net.now, b);
    net.nodes[2].handle_disconnected(net.now, a);
    net.run();
    assert_eq!(
        net.events,
        vec![
            (
                0,
                Event::NeighborDown {
                    peer: b,
                    reason: DownReason::Disconnected
                }
            ),
            (
                2,
                Event::NeighborDown {
                    peer: a,
                    reason: DownReason::Disconnected
                }
            ),
        ]
    );
    assert_eq!(net.neighbors(0), vec![]);
}

#[test]
fn a_silent_connection_is_closed_after_the_hello_timeout() {
    let mut net = Net::new(vec![node(1), node(2)]);
    net.cut_one_way(1, 0); // node 1's frames never reach node 0
    join(&mut net, 0, 1);
    assert_eq!(net.neighbors(0), vec![]);
    assert_eq!(net.nodes[0].inspect().pending_handshakes(), 1);
    // While it waits, node 0 asks for the Hello again once a second (it may have been lost).
    assert_eq!(
        net.nodes[0].poll_timeout().unwrap(),
        T0 + TimeDelta::from_secs(1)
    );
    let sent_before = net.nodes[0].inspect().counters().frames_sent;
    net.advance(TimeDelta::from_secs(9) + TimeDelta::from_millis(500));
    let requests = net.nodes[0].inspect().counters().frames_sent - sent_before;
    assert_eq!(requests, 9, "one HelloRequest per second while waiting");
    net.advance(TimeDelta::from_secs(1));
    assert_eq!(net.nodes[0].inspect().pending_handshakes(), 0);
    assert_eq!(net.nodes[0].inspect().counters().hello_timeouts, 1);
}

#[test]
fn record_is_refreshed_before_it_expires_and_neighbours_get_the_new_one() {
    let mut net = Net::new(vec![node(1), node(2)]);
    join(&mut net, 1, 0);
    let first = net.nodes[1].inspect().record().clone();
    // Run for longer than a record lifetime: the record must have been re-issued in time.
    net.advance(TimeDelta::from_secs(3600 + 60));
    let now = net.now;
    let current = net.nodes[1].inspect().record().clone();
    assert!(current.issued_at > first.issued_at);
    assert!(current.expires_at > now, "node 1's record lapsed");
    let refreshed_at = current.issued_at - first.issued_at;
    assert!(
        refreshed_at <= TimeDelta::from_secs(2700)
            && refreshed_at >= TimeDelta::from_secs(2700 - 225),
        "refresh at 3/4 of the lifetime minus at most 1/16 jitter, got {refreshed_at:?}"
    );
    let held = net.nodes[0].inspect().known_record(&net.id(1)).unwrap();
    assert_eq!(
        held, &current,
        "neighbour did not receive the refreshed record"
    );
    assert_eq!(
        net.neighbors(0),
        vec![net.id(1)],
        "a refresh is not a new neighbour"
    );
}

/// A connected pair (node 1 joined through node 0), its events so far forgotten.
fn connected_pair() -> Net {
    let mut net = Net::pair(node(1), node(2));
    net.events.clear();
    net
}

fn snapshot(
    n: &Node,
) -> (
    Vec<hearsay_proto::PeerId>,
    usize,
    Vec<u8>,
    Option<hearsay_proto::Timestamp>,
) {
    let v = n.inspect();
    (
        v.neighbors().collect(),
        v.known_records(),
        n.persistent_state().to_bytes().unwrap(),
        n.poll_timeout(),
    )
}

#[test]
fn bad_input_is_refused_typed_counted_and_changes_nothing() {
    let mut net = connected_pair();
    let peer = net.id(1);
    let stranger = identity(9).peer_id();
    let before = snapshot(&net.nodes[0]);
    let now = net.now;
    let n = &mut net.nodes[0];

    // Garbage, truncation, oversize, unknown kind.
    assert!(matches!(
        n.handle_frame(now, peer, Bytes::from_static(&[0xff, 0x00, 0x13])),
        Err(FrameError::Decode(_))
    ));
    let good = n.inspect().record().clone();
    let hello = Frame::Session(SessionMessage::Hello(Hello {
        version: 1,
        record: good.clone(),
    }))
    .encode()
    .unwrap();
    assert!(matches!(
        n.handle_frame(now, peer, hello.slice(..hello.len() - 1)),
        Err(FrameError::Decode(DecodeError::Malformed { .. }))
    ));
    assert_eq!(
        n.handle_frame(now, peer, Bytes::from(vec![0u8; MAX_FRAME_LEN + 1])),
        Err(FrameError::Decode(DecodeError::FrameTooLarge {
            len: MAX_FRAME_LEN + 1,
            max: MAX_FRAME_LEN
        }))
    );
    assert_eq!(
        n.handle_frame(now, peer, Bytes::from_static(&[0x82, 0x18, 0x63, 0x80])),
        Err(FrameError::Decode(DecodeError::UnknownKind(0x63)))
    );

    // A hello that carries another peer's record (node 0's own, replayed by peer 1).
    assert_eq!(
        n.handle_frame(now, peer, hello.clone()),
        Err(FrameError::PeerMismatch)
    );
    // From a peer with no connection.
    assert_eq!(
        n.handle_frame(now, stranger, hello.clone()),
        Err(FrameError::NotConnected)
    );

    let c = n.inspect().counters().clone();
    assert_eq!(
        (
            c.rejected_decode,
            c.rejected_record,
            c.rejected_not_connected
        ),
        (4, 1, 1)
    );
    assert!(n.poll_event().is_none());
    // The one output: the connection the frame without a link came over is closed (§8.5).
    assert_eq!(
        n.poll_transmit(),
        Some(Transmit::Disconnect { peer: stranger })
    );
    assert!(n.poll_transmit().is_none());
    assert_eq!(snapshot(n), before);
}

#[test]
fn unknown_version_tampered_and_stale_records_are_refused() {
    let mut net = connected_pair();
    let now = net.now;
    let peer = net.id(1);
    let their = net.nodes[1].inspect().record().clone();
    let before = snapshot(&net.nodes[0]);
    let n = &mut net.nodes[0];

    let v2 = Frame::Session(SessionMessage::Hello(Hello {
        version: 2,
        record: their.clone(),
    }))
    .encode()
    .unwrap();
    assert_eq!(
        n.handle_frame(now, peer, v2),
        Err(FrameError::UnsupportedVersion { version: 2 })
    );

    let mut tampered = their.clone();
    tampered.issued_at += TimeDelta::from_micros(1);
    let f = Frame::Session(SessionMessage::Hello(Hello {
        version: 1,
        record: tampered,
    }))
    .encode()
    .unwrap();
    assert!(matches!(
        n.handle_frame(now, peer, f),
        Err(FrameError::BadRecord(_))
    ));

    let mut older = their.clone();
    older.issued_at -= TimeDelta::from_secs(1);
    let f = Frame::Session(SessionMessage::Hello(Hello {
        version: 1,
        record: older,
    }))
    .encode()
    .unwrap();
    assert_eq!(n.handle_frame(now, peer, f), Err(FrameError::StaleRecord));

    // The identical record again is accepted without a second verification.
    let verified = n.inspect().counters().records_verified;
    let same = Frame::Session(SessionMessage::Hello(Hello {
        version: 1,
        record: their,
    }))
    .encode()
    .unwrap();
    assert_eq!(n.handle_frame(now, peer, same), Ok(()));
    assert_eq!(n.inspect().counters().records_verified, verified);
    assert_eq!(n.inspect().counters().rejected_version, 1);
    assert_eq!(n.inspect().counters().rejected_record, 2);
    assert_eq!(snapshot(n), before);
}

#[test]
fn connections_to_self_and_beyond_the_limit_are_refused() {
    let config = Config {
        max_connections: 1,
        ..Config::default()
    };
    let mut n = Node::new(config, identity(1), 1, T0).unwrap();
    let me = n.peer_id();
    n.handle_connected(T0, me);
    assert_eq!(n.poll_transmit(), Some(Transmit::Disconnect { peer: me }));
    let (a, b) = (identity(2).peer_id(), identity(3).peer_id());
    n.handle_connected(T0, a);
    assert!(matches!(n.poll_transmit(), Some(Transmit::Send { to, .. }) if to == a));
    n.handle_connected(T0, b);
    assert_eq!(n.poll_transmit(), Some(Transmit::Disconnect { peer: b }));
    assert_eq!(n.inspect().counters().connections_refused, 2);
}

#[test]
fn join_dials_contacts_once_and_forgets_unanswered_dials() {
    let mut n = node(1);
    let other = identity(2).peer_id();
    let contact = Contact {
        peer: other,
        addresses: vec![hearsay_proto::Address::new(&b"127.0.0.1:4000"[..]).unwrap()],
    };
    n.handle_command(
        T0,
        Command::Join {
            contacts: vec![contact.clone(), contact.clone()],
        },
    )
    .unwrap();
    assert_eq!(
        n.poll_transmit(),
        Some(Transmit::Connect {
            peer: other,
            addresses: contact.addresses.clone()
        })
    );
    assert_eq!(
        n.poll_transmit(),
        None,
        "a contact listed twice is dialled once"
    );
    assert_eq!(n.inspect().pending_dials(), 1);
    let due = T0 + Config::default().dial_timeout;
    assert!(n.poll_timeout().unwrap() <= due);
    n.handle_timeout(due);
    assert_eq!(
        n.inspect().counters().dial_timeouts,
        1,
        "the unanswered dial is forgotten"
    );
    // A node left alone keeps trying its contacts, with growing pauses (never a storm).
    let mut dial_times = vec![T0];
    let mut now = due;
    while now < T0 + TimeDelta::from_secs(300) {
        while let Some(t) = n.poll_transmit() {
            if matches!(t, Transmit::Connect { .. }) {
                dial_times.push(now);
            }
        }
        now = n
            .poll_timeout()
            .unwrap()
            .max(now + TimeDelta::from_millis(1));
        n.handle_timeout(now);
    }
    let gaps: Vec<u64> = dial_times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() / 1000)
        .collect();
    assert!(gaps.len() >= 4 && gaps.len() <= 12, "{gaps:?}");
    assert!(gaps.iter().all(|&g| g >= 10), "no dial storm: {gaps:?}");
    assert_eq!(
        gaps.last(),
        Some(&30),
        "the pause grows to the 30 s cap: {gaps:?}"
    );
}

#[test]
fn persistent_state_survives_a_restart() {
    let mut net = Net::new(vec![node(1), node(2), node(3)]);
    join(&mut net, 1, 0);
    join(&mut net, 2, 0);
    let state = net.nodes[0].persistent_state();
    let bytes = state.to_bytes().unwrap();
    let state = PersistentState::from_bytes(&bytes).unwrap();
    assert_eq!(state.known_records.len(), 2);
    let later = net.now + TimeDelta::from_secs(60);
    let restored = Node::restore(Config::default(), identity(1), 7, later, state.clone()).unwrap();
    assert_eq!(restored.peer_id(), net.id(0));
    assert_eq!(restored.inspect().boot_count(), 2);
    assert_eq!(restored.inspect().known_records(), 2);
    assert!(restored.inspect().known_record(&net.id(2)).is_some());

    // State of another peer is refused; expired records are dropped on restore.
    assert!(Node::restore(Config::default(), identity(2), 7, later, state.clone()).is_err());
    let much_later = later + TimeDelta::from_secs(7200);
    let restored = Node::restore(Config::default(), identity(1), 7, much_later, state).unwrap();
    assert_eq!(restored.inspect().known_records(), 0);
}

/// The peer cache keeps peers by long good standing (SPEC.md §13.7): a contact this node chose
/// and kept for a minute is named in the state and restored as tried, asked first for a
/// reserved place; a peer that only connected to it is not.
#[test]
fn peers_of_long_standing_are_restored_as_tried() {
    let mut net = Net::new(vec![node(1), node(2), node(3)]);
    join(&mut net, 0, 1);
    join(&mut net, 2, 0);
    net.advance(TimeDelta::from_secs(60));
    let state = net.nodes[0].persistent_state();
    let standing = state.long_standing.clone().unwrap().into_vec();
    assert_eq!(standing, vec![net.id(1)]);
    assert_eq!(state.known_records.as_slice()[0].peer_id, net.id(1));
    let bytes = state.to_bytes().unwrap();
    let state = PersistentState::from_bytes(&bytes).unwrap();
    let later = net.now + TimeDelta::from_secs(60);
    let restored = Node::restore(Config::default(), identity(1), 7, later, state).unwrap();
    let tried: Vec<_> = restored.inspect().tried().collect();
    assert_eq!(tried, vec![net.id(1)]);
}

#[test]
fn a_record_forged_into_persistent_state_is_not_restored() {
    let mut net = connected_pair();
    let mut state = net.nodes[0].persistent_state();
    let mut records = state.known_records.clone().into_vec();
    let mut bad: PeerRecord = records[0].clone();
    bad.expires_at += TimeDelta::from_secs(1);
    records[0] = bad;
    state.known_records = hearsay_proto::wire::BoundedVec::new(records).unwrap();
    let restored = Node::restore(Config::default(), identity(1), 7, net.now, state).unwrap();
    assert_eq!(restored.inspect().known_records(), 0);
    net.run();
}

#[test]
fn set_addresses_reissues_the_record_and_neighbours_learn_it() {
    let mut net = connected_pair();
    let addr = hearsay_proto::Address::new(&b"198.51.100.7:4433"[..]).unwrap();
    net.now += TimeDelta::from_secs(5);
    net.nodes[1]
        .handle_command(
            net.now,
            Command::SetAddresses {
                addresses: vec![addr.clone()],
            },
        )
        .unwrap();
    net.run();
    let held = net.nodes[0].inspect().known_record(&net.id(1)).unwrap();
    assert_eq!(held.addresses.as_slice(), std::slice::from_ref(&addr));
    assert_eq!(held.issued_at, net.now);

    let too_many = vec![addr; hearsay_proto::identity::record::MAX_ADDRESSES + 1];
    let before = net.nodes[1].inspect().record().clone();
    assert_eq!(
        net.nodes[1].handle_command(
            net.now,
            Command::SetAddresses {
                addresses: too_many
            }
        ),
        Err(hearsay_proto::NodeError::TooManyAddresses {
            max: hearsay_proto::identity::record::MAX_ADDRESSES
        })
    );
    assert_eq!(net.nodes[1].inspect().record(), &before);
}

#[test]
fn nothing_stays_due_after_handle_timeout_in_a_growing_overlay() {
    // Eight nodes join one hub; views fill, shuffles run, repairs happen. The harness asserts
    // after every handle_timeout(now) that poll_timeout() is later than now.
    let mut net = Net::new((1..=8).map(node).collect());
    for i in 1..8 {
        join(&mut net, i, 0);
    }
    net.advance(TimeDelta::from_secs(90));
    let sizes: Vec<usize> = (0..8).map(|i| net.neighbors(i).len()).collect();
    assert!(sizes.iter().all(|&s| s >= 1), "{sizes:?}");
}

#[test]
fn a_flood_of_forward_joins_is_bounded_and_counted() {
    use hearsay_proto::identity::record::Addresses;
    use hearsay_proto::membership::hyparview::{Message, PeerInfo};
    let mut net = connected_pair();
    let now = net.now;
    let from = net.id(1);
    let n = &mut net.nodes[0];
    let mut connects = 0;
    for k in 0..500u32 {
        let mut id = [7u8; 32];
        id[..4].copy_from_slice(&k.to_be_bytes());
        let node = PeerInfo {
            peer: hearsay_proto::PeerId::from_bytes(id),
            addresses: Addresses::empty(),
        };
        let ttl = if k % 2 == 0 { 0 } else { 3 };
        let frame = Frame::Membership(Message::ForwardJoin { node, ttl })
            .encode()
            .unwrap();
        assert_eq!(n.handle_frame(now, from, frame), Ok(()));
        while let Some(t) = n.poll_transmit() {
            if matches!(t, Transmit::Connect { .. }) {
                connects += 1;
            }
        }
    }
    let c = n.inspect().membership_counters().clone();
    assert!(
        connects <= Config::default().hyparview.max_pending,
        "{connects} dials from one flood"
    );
    // The neighbour's share (`join_rate_per_source`) stops most; the node's own budget and
    // the attempt places the rest.
    assert!(
        c.joins_over_source_budget + c.joins_dropped + c.attempts_dropped >= 400,
        "{c:?}"
    );
    assert!(n.inspect().passive().count() <= Config::default().hyparview.passive_view);
    assert!(n.inspect().neighbors().count() <= Config::default().hyparview.active_view);
}

#[test]
fn protocol_frames_from_a_peer_whose_identity_did_not_verify_change_nothing() {
    use hearsay_proto::membership::hyparview::{Message, Priority};
    let mut n = node(1);
    let liar = identity(2);
    let peer = liar.peer_id();
    n.handle_connected(T0, peer);
    // Its Hello carries a record whose signature was tampered with.
    let mut record =
        PeerRecord::issue(&liar, Default::default(), T0, TimeDelta::from_secs(3600)).unwrap();
    record.issued_at += TimeDelta::from_micros(1);
    let hello = Frame::Session(SessionMessage::Hello(Hello { version: 1, record }))
        .encode()
        .unwrap();
    assert!(matches!(
        n.handle_frame(T0, peer, hello),
        Err(FrameError::BadRecord(_))
    ));
    let frames = [
        Frame::Membership(Message::Neighbor {
            priority: Priority::High,
        }),
        Frame::Membership(Message::Join),
        Frame::Membership(Message::ShuffleReply {
            nodes: Default::default(),
        }),
        Frame::FailureDetection(hearsay_proto::membership::swim::Message::Ping {
            seq: 1,
            want_view: true,
            updates: Default::default(),
            rtt_us: None,
        }),
    ];
    for f in frames {
        assert_eq!(
            n.handle_frame(T0, peer, f.encode().unwrap()),
            Err(FrameError::NotEstablished)
        );
    }
    let v = n.inspect();
    assert_eq!(v.neighbors().count(), 0);
    assert_eq!(v.passive().count(), 0);
    assert_eq!(v.counters().rejected_unestablished, 4);
    assert_eq!(v.counters().rejected_record, 1);
}

/// A peer that already holds this node's current record gets the short Hello on the next
/// connection: no record on the wire, none verified again. A peer that lost it (it restarted)
/// asks, and gets the full Hello.
#[test]
fn a_second_connection_starts_with_the_short_hello() {
    let mut net = Net::pair(node(1), node(2));
    net.advance(TimeDelta::from_secs(3));
    let verified = |net: &Net, i: usize| net.nodes[i].inspect().counters().records_verified;
    assert_eq!((verified(&net, 0), verified(&net, 1)), (1, 1));
    // The connection drops (both sides see it) and node 1 joins again.
    let (a, b) = (net.id(0), net.id(1));
    let now = net.now;
    net.nodes[0].handle_disconnected(now, b);
    net.nodes[1].handle_disconnected(now, a);
    net.keep_frames(1000);
    net.join(1, 0);
    assert!(net.neighbors(1).contains(&a));
    let full_hellos = net
        .kept()
        .iter()
        .filter(|(_, _, f)| {
            matches!(
                Frame::decode(f),
                Ok(Frame::Session(SessionMessage::Hello(_)))
            )
        })
        .count();
    assert_eq!(full_hellos, 0, "both sides sent the short Hello");
    assert_eq!((verified(&net, 0), verified(&net, 1)), (1, 1));
    for i in 0..2 {
        assert_eq!(net.nodes[i].inspect().counters().short_hellos_accepted, 1);
    }
    // Node 0 restarts with nothing: node 1's short Hello names a record it lacks; it asks, the
    // full Hello follows, and the link comes up.
    net.advance(TimeDelta::from_secs(3));
    let now = net.now;
    net.nodes[1].handle_disconnected(now, a);
    net.nodes[0] = node(1);
    net.join(1, 0);
    // The JOIN that followed the short Hello was refused (no handshake yet); it goes again.
    net.advance(TimeDelta::from_secs(2));
    assert!(net.neighbors(1).contains(&a), "{:?}", net.neighbors(1));
    assert!(net.neighbors(0).contains(&b));
    assert_eq!(
        verified(&net, 0),
        1,
        "the restarted node verified the full Hello"
    );
}

/// A node's driver reports its connection to a neighbour gone while the neighbour's end stays
/// up: in the simulator, a dial made while the neighbour was down failed late, after the
/// neighbour had restarted and connected again. The node does not redial soon (the neighbour is
/// a lost peer it retries with backoff), and the neighbour has no helper for indirect probes.
/// The neighbour's pings reach a node with no link to it; they must not fall into silence (the
/// neighbour would declare a live node dead): the node closes the connection at the first such
/// frame, so the neighbour hears a disconnect, and no one is declared dead.
#[test]
fn a_connection_only_one_end_still_holds_is_closed_not_declared_dead() {
    let mut config = Config::default();
    config.hyparview.retry_backoff_min = TimeDelta::from_secs(60);
    let mut net = Net::pair(node_with(1, config), node(2));
    net.advance(TimeDelta::from_secs(3));
    let (a, b) = (net.id(0), net.id(1));
    assert!(net.neighbors(1).contains(&a) && net.neighbors(0).contains(&b));
    net.events.clear();
    let now = net.now;
    net.nodes[0].handle_disconnected(now, b); // node 1 is not told
    net.advance(TimeDelta::from_secs(20));
    let failed: Vec<_> = net
        .events
        .iter()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::NeighborDown {
                    reason: DownReason::Failed,
                    ..
                }
            )
        })
        .collect();
    assert!(failed.is_empty(), "a live node declared dead: {failed:?}");
    let down = Event::NeighborDown {
        peer: a,
        reason: DownReason::Disconnected,
    };
    assert!(
        net.events.iter().any(|(i, e)| *i == 1 && *e == down),
        "node 1 heard that the connection is gone: {:?}",
        net.events
    );
    let c = net.nodes[0].inspect().counters();
    assert_eq!((c.rejected_not_connected, c.unlinked_closed), (1, 1));
}
