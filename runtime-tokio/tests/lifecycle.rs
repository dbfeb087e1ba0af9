//! Starting, failing to start, bootstrapping against nothing, racing dials, slow subscribers,
//! and leaving.

mod common;

use bytes::Bytes;
use common::*;
use hearsay_proto::{DownReason, TopicId};
use hearsay_tokio::{BootstrapPeer, DialError, Error, NodeEvent, NodeHandle, Received, SpawnError};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn neighbours(a: &NodeHandle, b: &NodeHandle) -> bool {
    a.peers()
        .await
        .map(|p| p.iter().any(|n| n.peer == b.peer_id()))
        .unwrap_or(false)
}

#[tokio::test]
async fn an_occupied_port_is_a_clear_error() {
    let a = builder(1).spawn().unwrap();
    let err = builder(2).bind(a.local_addr()).spawn().unwrap_err();
    assert!(matches!(err, SpawnError::Bind { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("already in use"), "{text}");
    assert!(text.contains(&a.local_addr().to_string()), "{text}");
    a.shutdown().await;
}

#[test]
fn spawning_outside_a_runtime_is_a_clear_error() {
    let err = builder(1).spawn().unwrap_err();
    assert!(matches!(err, SpawnError::NoRuntime), "{err:?}");
}

#[tokio::test]
async fn unreachable_bootstrap_peers_are_reported_and_the_node_keeps_going() {
    // Nothing listens there (a bound, silent UDP socket: no ICMP error either).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let nowhere = silent.local_addr().unwrap();
    let ghost = identity(99).peer_id();
    let a = builder(1)
        .bootstrap([
            BootstrapPeer::open(nowhere),
            BootstrapPeer::pinned(ghost, nowhere),
        ])
        .spawn()
        .unwrap();
    let mut events = a.events();
    let (mut open_failed, mut pinned_failed) = (false, false);
    tokio::time::timeout(WAIT, async {
        while !(open_failed && pinned_failed) {
            match events.recv().await.unwrap() {
                NodeEvent::BootstrapFailed { peer, error } => {
                    assert_eq!(peer.addr(), nowhere);
                    assert_eq!(error, DialError::Timeout { addr: nowhere });
                    open_failed = true;
                }
                NodeEvent::DialFailed { peer, error } => {
                    assert_eq!(peer, ghost);
                    assert_eq!(error, DialError::Timeout { addr: nowhere });
                    pinned_failed = true;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("both bootstrap failures reported within the dial timeout");
    assert_eq!(a.counters().bootstrap_failures, 2);
    // The node keeps going: another node joins it and they become neighbours.
    let b = builder(2).bootstrap([a.bootstrap_peer()]).spawn().unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    eventually(WAIT, "b joined a", move || {
        let (a2, b2) = (a2.clone(), b2.clone());
        async move { neighbours(&a2, &b2).await }
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// One pair of nodes that dial each other at the same moment.
async fn race(round: u64) -> u64 {
    let mut transport = fast_transport();
    transport.duplicate_grace = Duration::from_secs(1);
    let a = builder(10 + 2 * round)
        .transport(transport.clone())
        .spawn()
        .unwrap();
    let b = builder(11 + 2 * round)
        .transport(transport)
        .spawn()
        .unwrap();
    let (mut ea, mut eb) = (a.events(), b.events());
    let (ra, rb) = tokio::join!(a.join([b.bootstrap_peer()]), b.join([a.bootstrap_peer()]));
    ra.unwrap();
    rb.unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    eventually(WAIT, "neighbours", move || {
        let (a2, b2) = (a2.clone(), b2.clone());
        async move { neighbours(&a2, &b2).await && neighbours(&b2, &a2).await }
    })
    .await;
    // Past the grace period in which a losing connection stays open.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut duplicates = 0;
    for (n, e) in [(&a, &mut ea), (&b, &mut eb)] {
        while let Some(ev) = e.try_recv() {
            assert!(
                !matches!(ev, NodeEvent::NeighborDown { .. }),
                "round {round}: the link flapped: {ev:?}"
            );
        }
        let c = n.counters();
        duplicates += c.duplicates_closed;
        assert_eq!(
            c.connections_registered - c.connections_closed,
            1,
            "round {round}: {c:?}"
        );
    }
    assert!(neighbours(&a, &b).await && neighbours(&b, &a).await);
    a.shutdown().await;
    b.shutdown().await;
    duplicates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_dials_leave_one_connection_and_no_flap() {
    let rounds: Vec<_> = (0..6).map(|r| tokio::spawn(race(r))).collect();
    let mut raced = 0;
    for r in rounds {
        raced += u64::from(r.await.unwrap() > 0);
    }
    // Not every round races (one dial may finish before the other starts); most do.
    println!("{raced} of 6 rounds had two connections at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_loses_only_its_own_oldest_deliveries() {
    let mut transport = fast_transport();
    transport.subscription_capacity = 4;
    let a = builder(1).spawn().unwrap();
    let b = builder(2)
        .transport(transport)
        .bootstrap([a.bootstrap_peer()])
        .spawn()
        .unwrap();
    let topic = TopicId::from_name("slow");
    let _a_sub = a.subscribe(topic).await.unwrap();
    let mut slow = b.subscribe(topic).await.unwrap();
    let mut fast = b.subscribe(topic).await.unwrap();
    topic_formed(&[a.clone(), b.clone()], topic, WAIT).await;
    // The fast subscriber reads everything as it comes.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 20 {
            match tokio::time::timeout(WAIT, fast.recv()).await.unwrap() {
                Some(Received::Message(m)) => got.push(m.payload),
                other => panic!("fast subscriber: {other:?}"),
            }
        }
        got
    });
    for k in 0..20 {
        a.publish(topic, Bytes::from(format!("m{k}")))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = reader.await.unwrap();
    // The slow one, reading only now, is told it lost 16 and gets the 4 newest.
    assert_eq!(slow.recv().await, Some(Received::Lagged(16)));
    let mut rest = Vec::new();
    while let Some(Received::Message(m)) = slow.try_recv() {
        rest.push(m.payload);
    }
    assert_eq!(rest, got[16..].to_vec());
    // The node was not held up: it still answers.
    assert!(b.peers().await.is_ok());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_says_goodbye_and_ends_everything() {
    let a = builder(1).spawn().unwrap();
    let b = builder(2).bootstrap([a.bootstrap_peer()]).spawn().unwrap();
    let c = builder(3).bootstrap([a.bootstrap_peer()]).spawn().unwrap();
    let topic = TopicId::from_name("bye");
    let mut b_sub = b.subscribe(topic).await.unwrap();
    let mut b_events = b.events();
    let mut a_events = a.events();
    let (a2, b2, c2) = (a.clone(), b.clone(), c.clone());
    eventually(WAIT, "b and c neighbours of a", move || {
        let (a2, b2, c2) = (a2.clone(), b2.clone(), c2.clone());
        async move { neighbours(&b2, &a2).await && neighbours(&c2, &a2).await }
    })
    .await;

    // An explicit shutdown: b's neighbours hear a goodbye (reason Left), not a failure.
    b.shutdown().await;
    assert!(b.is_closed());
    assert_eq!(b.publish(topic, "late").await, Err(Error::Closed));
    assert_eq!(b_sub.recv().await, None, "subscriptions end");
    // Whatever b reported before it stopped, its event stream then ends.
    while b_events.try_recv().is_some() {}
    assert_eq!(b_events.recv().await, None, "events end");
    assert_eq!(b.events().recv().await, None);
    let b_id = b.peer_id();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NodeEvent::NeighborDown { peer, reason }) = a_events.recv().await
                && peer == b_id
            {
                assert_eq!(reason, DownReason::Left);
                break;
            }
        }
    })
    .await
    .expect("a hears b leave");

    // Dropping the last handle leaves gracefully too.
    let c_id = c.peer_id();
    drop(c);
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NodeEvent::NeighborDown { peer, reason }) = a_events.recv().await
                && peer == c_id
            {
                assert_eq!(reason, DownReason::Left);
                break;
            }
        }
    })
    .await
    .expect("a hears c leave");
    a.shutdown().await;
}

#[tokio::test]
async fn a_restored_node_boots_with_a_higher_count_and_fresh_sequence_numbers() {
    let first = builder(41).spawn().unwrap();
    let state = first.persistent_state().await.unwrap();
    assert_eq!(first.inspect(|v| v.boot_count()).await.unwrap(), 1);
    first.shutdown().await;
    let second = builder(41).restore(state).spawn().unwrap();
    assert_eq!(second.inspect(|v| v.boot_count()).await.unwrap(), 2);
    second.shutdown().await;
    // State of another identity is refused.
    let other = builder(42).spawn().unwrap();
    let foreign = other.persistent_state().await.unwrap();
    other.shutdown().await;
    assert!(matches!(
        builder(41).restore(foreign).spawn(),
        Err(SpawnError::Node(_))
    ));
}
