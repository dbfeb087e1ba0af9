//! The core's services through the handle, over QUIC on 127.0.0.1: presence in a group (online,
//! then offline when a member leaves), an encrypted message only its reader opens, and a
//! friends-of-friends lookup.

mod common;

use bytes::Bytes;
use common::*;
use hearsay_proto::TopicId;
use hearsay_proto::discovery::foaf::Target;
use hearsay_proto::discovery::presence::OfflineReason;
use hearsay_tokio::{Events, NodeEvent, NodeHandle};
use std::time::{Duration, Instant};

/// Waits for the first event `pick` accepts, within `limit`.
async fn wait_event<T>(
    events: &mut Events,
    limit: Duration,
    what: &str,
    mut pick: impl FnMut(NodeEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(event)) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            Ok(None) => panic!("events ended while waiting for {what}"),
            Err(_) => panic!("timed out after {limit:?}: {what}"),
        }
    }
}

async fn three() -> Vec<NodeHandle> {
    let mut config = fast_config();
    config.presence.beacon_interval = hearsay_proto::TimeDelta::from_secs(2);
    let first = builder(1).config(config.clone()).spawn().unwrap();
    let boot = first.bootstrap_peer();
    let mut nodes = vec![first];
    for i in 2..=3 {
        nodes.push(
            builder(i)
                .config(config.clone())
                .bootstrap([boot])
                .spawn()
                .unwrap(),
        );
    }
    for n in &nodes {
        let n = n.clone();
        eventually(Duration::from_secs(10), "a neighbour", || {
            let n = n.clone();
            async move { n.peers().await.is_ok_and(|p| !p.is_empty()) }
        })
        .await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_private_messages_and_lookups_through_the_handle() {
    let nodes = three().await;
    let ids: Vec<_> = nodes.iter().map(|n| n.peer_id()).collect();
    let mut events: Vec<Events> = nodes.iter().map(|n| n.events()).collect();

    // Presence: nodes 0 and 1 share a group secret; node 2 does not.
    let secret = [7u8; 32];
    let group = nodes[0].presence_start(secret).await.unwrap();
    assert_eq!(nodes[1].presence_start(secret).await.unwrap(), group);
    let other = ids[1];
    let (member, record) = wait_event(
        &mut events[0],
        Duration::from_secs(20),
        "node 0 sees node 1 online",
        |e| match e {
            NodeEvent::PresenceOnline {
                group: g,
                member,
                record,
            } if g == group && member == other => Some((member, record)),
            _ => None,
        },
    )
    .await;
    assert_eq!((member, record.peer_id), (ids[1], ids[1]));
    assert!(
        nodes[0]
            .presence_online(group)
            .await
            .unwrap()
            .contains(&ids[1])
    );
    nodes[1].presence_stop(group).await.unwrap();
    let reason = wait_event(
        &mut events[0],
        Duration::from_secs(20),
        "node 0 sees node 1 leave",
        |e| match e {
            NodeEvent::PresenceOffline {
                group: g,
                member,
                reason,
            } if g == group && member == other => Some(reason),
            _ => None,
        },
    )
    .await;
    assert_eq!(reason, OfflineReason::Left);

    // An encrypted message on a topic all three carry, for node 2 only.
    let topic = TopicId::from_name("letters");
    for n in &nodes {
        n.subscribe(topic).await.unwrap();
    }
    topic_formed(&nodes, topic, Duration::from_secs(15)).await;
    let reader_key = nodes[2]
        .inspect(|v| v.record().encapsulation_key.clone())
        .await
        .unwrap();
    let id = nodes[0]
        .publish_private(
            topic,
            Bytes::from_static(b"for node 2 only"),
            vec![reader_key],
        )
        .await
        .unwrap();
    let (author, plaintext) = wait_event(
        &mut events[2],
        Duration::from_secs(20),
        "node 2 opens the letter",
        |e| match e {
            NodeEvent::PrivateDelivered {
                id: got,
                author,
                plaintext,
                ..
            } if got == id => Some((author, plaintext)),
            _ => None,
        },
    )
    .await;
    assert_eq!((author, &plaintext[..]), (ids[0], &b"for node 2 only"[..]));
    // Node 1 carries the announcement but never gets the plaintext.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Some(e) = events[1].try_recv() {
        assert!(
            !matches!(e, NodeEvent::PrivateDelivered { .. }),
            "a non-reader opened it: {e:?}"
        );
    }

    // A lookup: node 2 asks the overlay for node 1's record.
    let query = nodes[2].find(Target::Peer(ids[1]), None).await.unwrap();
    let records = wait_event(
        &mut events[2],
        Duration::from_secs(20),
        "node 2 finds node 1",
        |e| match e {
            NodeEvent::Found { query: q, records } if q == query => Some(records),
            _ => None,
        },
    )
    .await;
    assert!(records.iter().all(|r| r.peer_id == ids[1]) && !records.is_empty());

    for n in nodes {
        n.shutdown().await;
    }
}
