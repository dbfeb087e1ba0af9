//! The connection handshake: TLS offers only X25519MLKEM768 and ALPN `hearsay/1`; identity
//! proofs are checked (channel binding, record, signer, role, pinned ids); every refusal closes
//! the connection with its code and is counted.

mod common;

use common::*;
use hearsay_tokio::{BootstrapPeer, CloseCode, DialError, NodeEvent, Refusal};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn tls_offers_only_x25519mlkem768_and_hearsay_alpn() {
    let node = builder(1).spawn().unwrap();
    let addr = node.local_addr();

    // A client offering only classical X25519 finds no common group: the handshake fails.
    let classic = raw_client(
        vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        b"hearsay/1",
        None,
    );
    let err = classic
        .connect(addr, "hearsay.invalid")
        .unwrap()
        .await
        .expect_err("an X25519-only client must not connect");
    println!("X25519-only client: {err}");
    // The same for P-256 and for the non-hybrid ML-KEM group.
    for group in [
        rustls::crypto::aws_lc_rs::kx_group::SECP256R1,
        rustls::crypto::aws_lc_rs::kx_group::MLKEM768,
    ] {
        let c = raw_client(vec![group], b"hearsay/1", None);
        assert!(c.connect(addr, "hearsay.invalid").unwrap().await.is_err());
    }
    // The right group but another ALPN: refused as well.
    let wrong_alpn = raw_client(
        vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
        b"h3",
        None,
    );
    assert!(
        wrong_alpn
            .connect(addr, "hearsay.invalid")
            .unwrap()
            .await
            .is_err()
    );
    // Control: hybrid group and hearsay's ALPN complete the TLS handshake.
    let good = hearsay_client();
    let conn = good
        .connect(addr, "hearsay.invalid")
        .unwrap()
        .await
        .expect("X25519MLKEM768 with ALPN hearsay/1 connects");
    conn.close(0u32.into(), b"");
    let node2 = node.clone();
    eventually(WAIT, "4 failed TLS handshakes counted", move || {
        let n = node2.clone();
        async move { n.counters().refused_tls == 4 }
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn identity_proofs_are_checked_and_refusals_counted() {
    let node = builder(1).spawn().unwrap();
    let addr = node.local_addr();
    let client = hearsay_client();
    let mallory = identity(66);
    let victim = identity(67);
    let mallory_record = record_of(&mallory);

    // 1. Signs another value than this connection's exporter secret.
    let (conn, _s) = connect_with_proof(&client, addr, |_| {
        proof_bytes(&mallory_record, &mallory, &[0u8; 32], 0)
    })
    .await;
    assert_eq!(
        close_code(&conn, WAIT).await,
        Some(CloseCode::BadProof as u64)
    );

    // 2. Presents the victim's (valid, signed) record but can only sign with its own key.
    let victim_record = record_of(&victim);
    let (conn, _s) = connect_with_proof(&client, addr, |b| {
        proof_bytes(&victim_record, &mallory, b, 0)
    })
    .await;
    assert_eq!(
        close_code(&conn, WAIT).await,
        Some(CloseCode::BadProof as u64)
    );

    // 3. Right key and binding, but the listener's role byte (a reflected proof).
    let (conn, _s) = connect_with_proof(&client, addr, |b| {
        proof_bytes(&mallory_record, &mallory, b, 1)
    })
    .await;
    assert_eq!(
        close_code(&conn, WAIT).await,
        Some(CloseCode::BadProof as u64)
    );

    // 4. A record whose signature is broken.
    let mut broken = mallory_record.clone();
    broken.issued_at += hearsay_proto::TimeDelta::from_secs(1);
    let (conn, _s) =
        connect_with_proof(&client, addr, |b| proof_bytes(&broken, &mallory, b, 0)).await;
    assert_eq!(
        close_code(&conn, WAIT).await,
        Some(CloseCode::BadProof as u64)
    );

    // 5. Garbage, and an announced length over the limit.
    let (conn, _s) = connect_with_proof(&client, addr, |_| {
        let mut v = 4000u32.to_be_bytes().to_vec();
        v.extend(std::iter::repeat_n(0xA5, 4000));
        v
    })
    .await;
    assert_eq!(
        close_code(&conn, WAIT).await,
        Some(CloseCode::BadProof as u64)
    );
    let (conn, _s) = connect_with_proof(&client, addr, |_| u32::MAX.to_be_bytes().to_vec()).await;
    assert_eq!(
        close_code(&conn, WAIT).await,
        Some(CloseCode::BadProof as u64)
    );

    // 6. The node's own identity, proven by someone holding its key (a loop back to itself).
    let me = identity(1);
    let (conn, _s) =
        connect_with_proof(&client, addr, |b| proof_bytes(&record_of(&me), &me, b, 0)).await;
    assert_eq!(
        close_code(&conn, WAIT).await,
        Some(CloseCode::SelfConnection as u64)
    );

    let c = node.counters();
    assert_eq!(c.refused_bad_signature, 3, "{c:?}");
    assert_eq!(c.refused_bad_record, 1, "{c:?}");
    assert_eq!(c.refused_malformed_proof, 2, "{c:?}");
    assert_eq!(c.refused_self, 1, "{c:?}");
    assert_eq!(c.connections_accepted, 0, "{c:?}");

    // Control: an honest proof is accepted and the core gets the connection.
    let (conn, _s) = honest_client(&client, addr, &mallory).await;
    let n = node.clone();
    eventually(WAIT, "honest proof accepted", move || {
        let n = n.clone();
        async move { n.counters().connections_registered == 1 }
    })
    .await;
    // The node sends its own proof back, and it verifies.
    let mut recv = conn.accept_uni().await.unwrap();
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    recv.read_exact(&mut body).await.unwrap();
    let (rec, sig) = body.split_at(body.len() - 3309);
    let rec = hearsay_proto::PeerRecord::from_bytes(rec).unwrap();
    assert_eq!(rec.peer_id, node.peer_id());
    let mut signed = binding(&conn).to_vec();
    signed.push(1);
    let signed =
        hearsay_proto::crypto::signing_input(hearsay_tokio::CHANNEL_BINDING_DOMAIN, &signed);
    let sig = hearsay_proto::crypto::SignatureBytes::copy_from_slice(sig).unwrap();
    use hearsay_proto::CryptoProvider;
    assert!(hearsay_proto::crypto::InsecureTestProvider.verify(&rec.verifying_key, &signed, &sig));
    node.shutdown().await;
}

#[tokio::test]
async fn a_dial_pinned_to_one_peer_that_reaches_another_is_refused() {
    let y = builder(2).spawn().unwrap();
    let x = identity(3).peer_id(); // nobody runs X
    let a = builder(1)
        .bootstrap([BootstrapPeer::pinned(x, y.local_addr())])
        .spawn()
        .unwrap();
    let mut events = a.events();
    let failure = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Some(NodeEvent::DialFailed { peer, error }) => break (peer, error),
                Some(_) => continue,
                None => panic!("node stopped"),
            }
        }
    })
    .await
    .expect("a dial failure is reported");
    assert_eq!(failure.0, x);
    match failure.1 {
        DialError::Refused {
            refusal: Refusal::WrongPeer { expected, found },
            ..
        } => assert_eq!((expected, found), (x, y.peer_id())),
        other => panic!("expected a wrong-peer refusal, got {other:?}"),
    }
    let c = a.counters();
    assert!(
        c.refused_wrong_peer >= 1 && c.bootstrap_failures >= 1,
        "{c:?}"
    );
    assert_eq!(c.connections_registered, 0, "{c:?}");
    assert!(a.peers().await.unwrap().is_empty());

    // The same address unpinned: A learns Y's id from its proof and joins.
    a.join(["127.0.0.1:1".parse::<BootstrapPeer>().unwrap()])
        .await
        .unwrap();
    a.join([BootstrapPeer::open(y.local_addr())]).await.unwrap();
    let (a2, yid) = (a.clone(), y.peer_id());
    eventually(WAIT, "A and Y neighbours", move || {
        let a2 = a2.clone();
        async move {
            a2.peers()
                .await
                .map(|p| p.iter().any(|n| n.peer == yid))
                .unwrap_or(false)
        }
    })
    .await;
    a.shutdown().await;
    y.shutdown().await;
}
