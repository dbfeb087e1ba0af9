//! Abuse on a node's port does not crash it or disturb its honest connections: garbage UDP
//! datagrams, malformed frames (refused by the core, the connection stays), an oversize length
//! prefix and a frame that stalls mid-way (each closes only the offending connection, counted),
//! and a peer that stops reading (disconnected, counted).

mod common;

use bytes::Bytes;
use common::*;
use hearsay_proto::frame::{Frame, Hello, PROTOCOL_VERSION, SessionMessage};
use hearsay_proto::{Identity, MAX_FRAME_LEN, TopicId};
use hearsay_tokio::{CloseCode, NodeHandle, TransportConfig};
use rand_core::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

async fn write_frame(send: &mut quinn::SendStream, frame: &[u8]) {
    send.write_all(&(frame.len() as u32).to_be_bytes())
        .await
        .unwrap();
    send.write_all(frame).await.unwrap();
}

fn hello(id: &Identity) -> Bytes {
    Frame::Session(SessionMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        record: record_of(id),
    }))
    .encode()
    .unwrap()
}

/// `from` publishes `n` messages; every one reaches `to` exactly once.
async fn traffic_flows(
    from: &NodeHandle,
    to_sub: &mut hearsay_tokio::Subscription,
    topic: TopicId,
    tag: &str,
) {
    let mut sent = Vec::new();
    for k in 0..20 {
        let p = Bytes::from(format!("{tag} {k}"));
        from.publish(topic, p.clone()).await.unwrap();
        sent.push(p);
    }
    let mut seen = HashMap::new();
    let start = std::time::Instant::now();
    while sent.iter().any(|p| !seen.contains_key(p)) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{tag}: messages missing"
        );
        drain_into(to_sub, &mut seen);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.values().all(|&n| n == 1), "{tag}: duplicates {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_on_the_port_leaves_honest_traffic_alone() {
    let mut transport = fast_transport();
    transport.frame_read_timeout = Duration::from_millis(300);
    transport.write_stall_timeout = Duration::from_millis(500);
    let a = builder(1).transport(transport.clone()).spawn().unwrap();
    let b = builder(2)
        .transport(transport)
        .bootstrap([a.bootstrap_peer()])
        .spawn()
        .unwrap();
    let topic = TopicId::from_name("abuse");
    let mut a_sub = a.subscribe(topic).await.unwrap();
    let mut b_sub = b.subscribe(topic).await.unwrap();
    topic_formed(&[a.clone(), b.clone()], topic, Duration::from_secs(10)).await;
    let addr = a.local_addr();

    // 1. Two thousand garbage datagrams, some shaped like QUIC long-header packets.
    let sock = tokio::net::UdpSocket::bind(localhost()).await.unwrap();
    let mut rng = chacha20::ChaCha8Rng::seed_from_u64(7);
    for i in 0..2000u32 {
        let len = if i % 4 == 0 {
            1200
        } else {
            1 + rng.next_u32() as usize % 1400
        };
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        if i % 4 == 0 {
            d[0] = 0xC0; // long header, Initial
            d[1..5].copy_from_slice(&1u32.to_be_bytes()); // QUIC v1
        }
        sock.send_to(&d, addr).await.unwrap();
    }

    // 2. A peer with a valid proof and a valid Hello, then malformed frames: the core refuses
    //    each one and the connection stays.
    let client = hearsay_client();
    let mallory = identity(66);
    let (conn, mut send) = honest_client(&client, addr, &mallory).await;
    write_frame(&mut send, &hello(&mallory)).await;
    let m = mallory.peer_id();
    let a2 = a.clone();
    eventually(WAIT, "mallory's connection established", move || {
        let a2 = a2.clone();
        async move {
            a2.inspect(move |v| v.connections().any(|p| p == m))
                .await
                .unwrap()
        }
    })
    .await;
    for k in 0..50u32 {
        let mut junk = vec![0u8; 1 + (k as usize * 37) % 500];
        rng.fill_bytes(&mut junk);
        write_frame(&mut send, &junk).await;
    }
    write_frame(&mut send, &[]).await;
    let a2 = a.clone();
    eventually(WAIT, "51 malformed frames refused by the core", move || {
        let a2 = a2.clone();
        async move { a2.inspect(|v| v.counters().rejected_decode).await.unwrap() >= 51 }
    })
    .await;

    // 3. An oversize length prefix: that connection alone is closed, with its code.
    let (conn2, mut send2) = honest_client(&client, addr, &identity(67)).await;
    send2
        .write_all(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    assert_eq!(
        close_code(&conn2, WAIT).await,
        Some(CloseCode::FrameTooLarge as u64)
    );

    // 4. A frame that stops half-way: closed after the read timeout, with its code.
    let (conn3, mut send3) = honest_client(&client, addr, &identity(68)).await;
    send3.write_all(&1000u32.to_be_bytes()).await.unwrap();
    send3.write_all(&[0u8; 10]).await.unwrap();
    assert_eq!(
        close_code(&conn3, WAIT).await,
        Some(CloseCode::ReadTimeout as u64)
    );

    // 5. A peer that stops reading: its flow-control window (12 KB) takes our proof but not our
    //    Hello, so the write stalls and the peer is disconnected.
    let stingy = raw_client(
        vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
        b"hearsay/1",
        Some(12_000),
    );
    let (conn4, _send4) = honest_client(&stingy, addr, &identity(69)).await;
    assert_eq!(
        close_code(&conn4, WAIT).await,
        Some(CloseCode::SlowPeer as u64)
    );

    let c = a.counters();
    assert_eq!(c.oversize_frames, 1, "{c:?}");
    assert_eq!(c.read_timeouts, 1, "{c:?}");
    assert_eq!(c.write_stalls, 1, "{c:?}");
    assert!(c.frames_refused_by_core >= 51, "{c:?}");
    // The malformed-frame connection is still there.
    assert!(conn.close_reason().is_none());
    assert!(
        a.inspect(move |v| v.connections().any(|p| p == m))
            .await
            .unwrap()
    );

    // Honest traffic flows both ways.
    traffic_flows(&b, &mut a_sub, topic, "b to a").await;
    traffic_flows(&a, &mut b_sub, topic, "a to b").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_peer_whose_send_queue_overflows_is_disconnected() {
    let mut transport = fast_transport();
    transport.send_queue_frames = 2;
    transport.write_stall_timeout = Duration::from_secs(60);
    let a = builder(1).transport(transport).spawn().unwrap();
    // The peer takes our proof, then never reads: the Hello stalls in QUIC, and the core's
    // HelloRequests (one a second) pile up behind it.
    let stingy = raw_client(
        vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
        b"hearsay/1",
        Some(12_000),
    );
    let (conn, _send) = honest_client(&stingy, a.local_addr(), &identity(5)).await;
    assert_eq!(
        close_code(&conn, Duration::from_secs(8)).await,
        Some(CloseCode::SlowPeer as u64)
    );
    let c = a.counters();
    assert_eq!(c.send_queue_overflows, 1, "{c:?}");
    assert_eq!(c.write_stalls, 0, "{c:?}");
    // The core was told: no connection is left.
    assert_eq!(a.inspect(|v| v.pending_handshakes()).await.unwrap(), 0);
    a.shutdown().await;
}

#[tokio::test]
async fn transport_defaults_are_sane() {
    let t = TransportConfig::default();
    assert!(t.send_queue_bytes > MAX_FRAME_LEN);
    assert!(t.stream_receive_window as usize > MAX_FRAME_LEN);
}
