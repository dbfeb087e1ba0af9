//! A burst of large publishes to one peer: the publisher waits for the peer's send queue
//! instead of overflowing it (which would cost the peer its connection and the messages).

mod common;

use bytes::Bytes;
use common::*;
use hearsay_proto::TopicId;
use hearsay_tokio::Received;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_64_kib_messages_arrives_whole_without_disconnects() {
    let a = builder(1).spawn().unwrap();
    let b = builder(2).bootstrap([a.bootstrap_peer()]).spawn().unwrap();
    let topic = TopicId::from_name("bulk");
    let _sa = a.subscribe(topic).await.unwrap();
    let mut sb = b.subscribe(topic).await.unwrap();
    topic_formed(&[a.clone(), b.clone()], topic, Duration::from_secs(15)).await;

    // 200 × 64 KiB = 12.5 MiB, three times a peer's 4 MiB send queue, published back to back.
    let count = 200u32;
    for k in 0..count {
        let mut payload = vec![0u8; 64 * 1024];
        payload[..4].copy_from_slice(&k.to_be_bytes());
        a.publish(topic, Bytes::from(payload)).await.unwrap();
    }
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < count as usize && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), sb.recv()).await {
            Ok(Some(Received::Message(m))) => {
                seen.insert(u32::from_be_bytes(m.payload[..4].try_into().unwrap()));
            }
            Ok(Some(Received::Lagged(n))) => panic!("the subscriber lagged by {n}"),
            Ok(None) => panic!("the subscription ended"),
            Err(_) => {}
        }
    }
    let (ca, cb) = (a.counters(), b.counters());
    assert_eq!(ca.send_queue_overflows + cb.send_queue_overflows, 0);
    assert_eq!(seen.len(), count as usize, "messages lost in the burst");
    assert!(
        a.peers()
            .await
            .unwrap()
            .iter()
            .any(|n| n.peer == b.peer_id()),
        "the peer was disconnected"
    );
    a.shutdown().await;
    b.shutdown().await;
}
