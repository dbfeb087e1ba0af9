//! Twelve real nodes over QUIC on 127.0.0.1: they join through one bootstrap node, subscribe to
//! one topic, and 100 messages from several publishers reach every other node exactly once. Then
//! three nodes crash (their runtimes are dropped: no goodbye, no QUIC close) and 100 more
//! messages reach every survivor exactly once.
//!
//! Each node runs on a runtime of its own, as separate processes would; a crash is the drop of
//! that runtime.

mod common;

use bytes::Bytes;
use common::*;
use hearsay_proto::TopicId;
use hearsay_tokio::{NodeHandle, Subscription};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const NODES: usize = 12;
const CRASHED: [usize; 3] = [2, 5, 9];

struct Member {
    runtime: Option<tokio::runtime::Runtime>,
    handle: NodeHandle,
    sub: Subscription,
    seen: HashMap<Bytes, u32>,
}

impl Drop for Member {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside the test's runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Publishes `count` messages round-robin from `publishers`; returns (payload, publisher).
async fn publish(
    members: &[Member],
    publishers: &[usize],
    topic: TopicId,
    round: &str,
    count: usize,
) -> Vec<(Bytes, usize)> {
    let mut sent = Vec::new();
    for k in 0..count {
        let p = publishers[k % publishers.len()];
        let payload = Bytes::from(format!("{round} message {k} from node {p}"));
        members[p]
            .handle
            .publish(topic, payload.clone())
            .await
            .unwrap();
        sent.push((payload, p));
        if k % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sent
}

/// Waits until every node in `alive` has every message it did not publish, then checks that
/// none came twice (after a further pause for stragglers).
async fn all_delivered_once(
    members: &mut [Member],
    alive: &[usize],
    sent: &[(Bytes, usize)],
    limit: Duration,
) {
    let start = Instant::now();
    loop {
        let mut missing = 0;
        let mut by_node = Vec::new();
        for &i in alive {
            let m = &mut members[i];
            drain_into(&mut m.sub, &mut m.seen);
            let lacks = sent
                .iter()
                .filter(|(p, from)| *from != i && !m.seen.contains_key(p))
                .count();
            if lacks > 0 {
                by_node.push((i, lacks));
            }
            missing += lacks;
        }
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < limit,
            "{missing} deliveries still missing after {limit:?} (node, missing): {by_node:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for &i in alive {
        let m = &mut members[i];
        drain_into(&mut m.sub, &mut m.seen);
        for (payload, from) in sent {
            let times = m.seen.get(payload).copied().unwrap_or(0);
            let want = u32::from(*from != i);
            assert_eq!(times, want, "node {i} got {payload:?} {times} times");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_nodes_broadcast_then_survive_three_crashes() {
    let started = Instant::now();
    let topic = TopicId::from_name("loopback test");

    let mut members: Vec<Member> = Vec::new();
    let mut bootstrap = None;
    for i in 0..NODES {
        let runtime = node_runtime();
        let handle = {
            let _guard = runtime.enter();
            let b = builder(i as u64 + 1);
            let b = match bootstrap {
                Some(peer) => b.bootstrap([peer]),
                None => b,
            };
            b.spawn().unwrap()
        };
        if i == 0 {
            bootstrap = Some(handle.bootstrap_peer());
        }
        let sub = handle.subscribe(topic).await.unwrap();
        members.push(Member {
            runtime: Some(runtime),
            handle,
            sub,
            seen: HashMap::new(),
        });
    }
    let handles: Vec<NodeHandle> = members.iter().map(|m| m.handle.clone()).collect();
    topic_formed(&handles, topic, Duration::from_secs(20)).await;
    // Let the topic overlay settle on one root (beacons every second) before publishing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("overlay formed in {:?}", started.elapsed());

    let all: Vec<usize> = (0..NODES).collect();
    let sent = publish(&members, &[0, 3, 7, 11], topic, "first", 100).await;
    all_delivered_once(&mut members, &all, &sent, Duration::from_secs(20)).await;
    println!("first 100 delivered at {:?}", started.elapsed());

    // Crash three nodes: their runtimes go away with every task, socket and connection.
    for &c in &CRASHED {
        if let Some(rt) = members[c].runtime.take() {
            rt.shutdown_background();
        }
    }
    let survivors: Vec<usize> = all
        .iter()
        .copied()
        .filter(|i| !CRASHED.contains(i))
        .collect();
    let sent = publish(&members, &[0, 4, 8, 10], topic, "second", 100).await;
    all_delivered_once(&mut members, &survivors, &sent, Duration::from_secs(30)).await;
    println!("second 100 delivered at {:?}", started.elapsed());

    // The survivors noticed: no survivor keeps a crashed node as a neighbour for long.
    let crashed_ids: Vec<_> = CRASHED
        .iter()
        .map(|&c| members[c].handle.peer_id())
        .collect();
    for &i in &survivors {
        let h = members[i].handle.clone();
        let crashed_ids = crashed_ids.clone();
        eventually(
            Duration::from_secs(20),
            "crashed neighbours dropped",
            move || {
                let h = h.clone();
                let crashed_ids = crashed_ids.clone();
                async move {
                    h.peers()
                        .await
                        .map(|p| p.iter().all(|n| !crashed_ids.contains(&n.peer)))
                        .unwrap_or(false)
                }
            },
        )
        .await;
    }
    println!("crashed neighbours dropped at {:?}", started.elapsed());
    let c = members[0].handle.counters();
    assert!(c.connections_registered > 0 && c.frames_in > 0 && c.frames_out > 0);

    let shutdowns: Vec<_> = survivors
        .iter()
        .map(|&i| {
            let h = members[i].handle.clone();
            tokio::spawn(async move { h.shutdown().await })
        })
        .collect();
    for s in shutdowns {
        s.await.unwrap();
    }
    for m in &mut members {
        if let Some(rt) = m.runtime.take() {
            rt.shutdown_background();
        }
    }
    println!("done in {:?}", started.elapsed());
}
