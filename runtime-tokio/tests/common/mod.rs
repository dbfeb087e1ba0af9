//! Helpers shared by the integration tests: fast configurations, node factories, a raw QUIC
//! client that speaks (or mis-speaks) the identity proof by hand.
#![allow(dead_code)]

use bytes::Bytes;
use hearsay_proto::crypto::{InsecureTestProvider, signing_input};
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::{Config, Identity, PeerRecord, TimeDelta, Timestamp, TopicId};
use hearsay_tokio::{
    CHANNEL_BINDING_DOMAIN, EXPORTER_LABEL, NodeBuilder, NodeHandle, Received, Subscription,
    TransportConfig,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The insecure (fast, real-size) test crypto: signatures are not the point of these tests.
pub fn fast_config() -> Config {
    let mut c = Config {
        crypto: Arc::new(InsecureTestProvider),
        ..Config::default()
    };
    // Repair and merge faster than the defaults, so that tests finish in seconds.
    c.topics.antientropy.interval = TimeDelta::from_secs(1);
    c.topics.antientropy.settle = TimeDelta::from_millis(1500);
    c.topics.merge_walk_max = TimeDelta::from_secs(4);
    c.topics.beacon.interval = TimeDelta::from_secs(1);
    c.topics.beacon.timeout = TimeDelta::from_secs(4);
    c
}

pub fn fast_transport() -> TransportConfig {
    let mut t = TransportConfig::default();
    t.dial_timeout = Duration::from_secs(2);
    t.handshake_timeout = Duration::from_secs(2);
    t.idle_timeout = Duration::from_secs(5);
    t.keep_alive_interval = Some(Duration::from_secs(1));
    t.shutdown_timeout = Duration::from_secs(1);
    t
}

/// The core harness's insecure identity `i` (fast; the transport tests prove identities, not
/// the strength of the keys).
pub fn identity(i: u64) -> Identity {
    hearsay_proto::testing::insecure_identity(i)
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A node on 127.0.0.1 with the fast test configuration, joining through `bootstrap`.
pub fn builder(i: u64) -> NodeBuilder {
    NodeBuilder::new(identity(i))
        .bind(localhost())
        .config(fast_config())
        .transport(fast_transport())
        .rng_seed([i as u8; 32])
}

/// A runtime of its own for one node (one worker), so that a node can be crashed by dropping
/// its runtime while the others go on.
pub fn node_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits until `cond` holds (polled every 20 ms) or panics after `limit` with `what`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every node has a neighbour in `topic`'s overlay.
pub async fn topic_formed(nodes: &[NodeHandle], topic: TopicId, limit: Duration) {
    for (i, n) in nodes.iter().enumerate() {
        let n = n.clone();
        eventually(limit, &format!("node {i} has a topic neighbour"), || {
            let n = n.clone();
            async move {
                n.inspect(move |v| !v.topic_neighbors(&topic).is_empty())
                    .await
                    .unwrap_or(false)
            }
        })
        .await;
    }
}

/// Reads every delivery buffered now, counting them per payload.
pub fn drain_into(sub: &mut Subscription, seen: &mut HashMap<Bytes, u32>) {
    while let Some(item) = sub.try_recv() {
        match item {
            Received::Message(m) => *seen.entry(m.payload).or_default() += 1,
            Received::Lagged(n) => panic!("subscriber lagged by {n} in a test that reads fast"),
        }
    }
}

// ---------------------------------------------------------------- a hand-made QUIC client

/// Accepts any server certificate (tests only; the node's own verifier still checks the
/// handshake signature).
#[derive(Debug)]
pub struct AnyCert(pub rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no TLS 1.2".into()))
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A QUIC client endpoint whose TLS offers `groups` and `alpn`.
pub fn raw_client(
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
    alpn: &[u8],
    stream_window: Option<u32>,
) -> quinn::Endpoint {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.kx_groups = groups;
    let algorithms = provider.signature_verification_algorithms;
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(algorithms)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(10).try_into().unwrap()));
    if let Some(w) = stream_window {
        transport.stream_receive_window(w.into());
        transport.receive_window(w.into());
    }
    config.transport_config(Arc::new(transport));
    let mut endpoint = quinn::Endpoint::client(localhost()).unwrap();
    endpoint.set_default_client_config(config);
    endpoint
}

/// A client offering hearsay's only group and ALPN.
pub fn hearsay_client() -> quinn::Endpoint {
    raw_client(
        vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768],
        b"hearsay/1",
        None,
    )
}

/// The exporter secret of a connection (what proofs sign).
pub fn binding(conn: &quinn::Connection) -> [u8; 32] {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, EXPORTER_LABEL, b"")
        .unwrap();
    out
}

/// A record for `id`, valid for an hour from now.
pub fn record_of(id: &Identity) -> PeerRecord {
    let now = hearsay_tokio::MonotonicClock::system().now();
    PeerRecord::issue(id, Addresses::default(), now, TimeDelta::from_secs(3600)).unwrap()
}

/// A proof as SPEC.md §20.3 lays it out: `u32 BE length ‖ record ‖ signature`, where the
/// signature is by `signer` over `signing_input(domain, binding ‖ role)`.
pub fn proof_bytes(
    record: &PeerRecord,
    signer: &Identity,
    binding: &[u8; 32],
    role: u8,
) -> Vec<u8> {
    let mut body = binding.to_vec();
    body.push(role);
    let sig = signer
        .signer()
        .sign(&signing_input(CHANNEL_BINDING_DOMAIN, &body))
        .unwrap();
    let rec = record.to_bytes().unwrap();
    let mut out = ((rec.len() + sig.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&rec);
    out.extend_from_slice(sig.as_bytes());
    out
}

/// Connects to `addr`, sends `proof` and an empty session info on a fresh unidirectional
/// stream, and returns the connection and that stream (to send frames on after the proof).
pub async fn connect_with_proof(
    client: &quinn::Endpoint,
    addr: SocketAddr,
    make_proof: impl FnOnce(&[u8; 32]) -> Vec<u8>,
) -> (quinn::Connection, quinn::SendStream) {
    let conn = client
        .connect(addr, "hearsay.invalid")
        .unwrap()
        .await
        .unwrap();
    let mut proof = make_proof(&binding(&conn));
    // The session info that follows every proof (SPEC.md §20.3): empty, as a non-reflector.
    proof.extend_from_slice(&0u32.to_be_bytes());
    let mut send = conn.open_uni().await.unwrap();
    send.write_all(&proof).await.unwrap();
    (conn, send)
}

/// An honest client: proves `id` as the dialer (role 0).
pub async fn honest_client(
    client: &quinn::Endpoint,
    addr: SocketAddr,
    id: &Identity,
) -> (quinn::Connection, quinn::SendStream) {
    let record = record_of(id);
    connect_with_proof(client, addr, |b| proof_bytes(&record, id, b, 0)).await
}

/// The application close code a connection ended with, if any (waits up to `limit`).
pub async fn close_code(conn: &quinn::Connection, limit: Duration) -> Option<u64> {
    match tokio::time::timeout(limit, conn.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(c)) => Some(c.error_code.into_inner()),
        other => {
            println!("connection ended without an application close: {other:?}");
            None
        }
    }
}

pub fn now() -> Timestamp {
    hearsay_tokio::MonotonicClock::system().now()
}
