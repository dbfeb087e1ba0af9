//! QUIC throughput between two real nodes on 127.0.0.1, through `hearsay_tokio`'s public API
//! (for perf-report).
//!
//! Per [`Case`], a fresh pair: node B bootstraps from node A, both subscribe to one topic and
//! wait until they are topic neighbours. Then A publishes `count` messages of `size` bytes,
//! each `publish` awaited (A signs each one, ML-DSA-65), while a task on B reads its
//! subscription. Without a window A publishes back to back, as fast as the API accepts; with a
//! window of W it waits while W of its messages are not yet delivered at B (an oracle a real
//! application lacks: it shows what the link sustains without overrunning the driver's
//! bounded per-peer send queue). The clock runs from the first publish to the last delivery (or
//! until deliveries stall for [`STALL`], or [`DEADLINE`] after the last publish); losses,
//! subscriber lag and the transport's overflow counters are reported with the rates.

use bytes::Bytes;
use hearsay_proto::{Config, TopicId};
use hearsay_tokio::{NodeBuilder, NodeHandle, Received, TransportCounters, generate_identity};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// A case gives up once no delivery arrived for this long.
pub const STALL: Duration = Duration::from_secs(10);

/// A case gives up this long after its last publish, progress or not (lost messages come back
/// only when the pair reconnects and anti-entropy repairs them, which can take minutes).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Payload bytes per message.
    pub size: usize,
    /// Messages published.
    pub count: usize,
    /// Most messages published but not yet delivered at B; `None`: back to back.
    pub window: Option<usize>,
}

/// One case's figures.
#[derive(Debug, Clone)]
pub struct QuicRun {
    /// The case.
    pub case: Case,
    /// Messages published (fewer than the case's count if a window never opened again).
    pub published: usize,
    /// Messages delivered to B's subscriber.
    pub delivered: u64,
    /// Deliveries B's subscriber lost to its bounded buffer (`Received::Lagged`).
    pub lagged: u64,
    /// From the first publish call to the return of the last.
    pub publish_time: Duration,
    /// From the first publish call to the last delivery.
    pub total_time: Duration,
    /// A's and B's transport counters accumulated during the case (A first).
    pub counters: [TransportCounters; 2],
}

impl QuicRun {
    /// Delivered messages per second.
    pub fn messages_per_s(&self) -> f64 {
        self.delivered as f64 / self.total_time.as_secs_f64().max(1e-9)
    }

    /// Delivered payload MiB per second.
    pub fn mib_per_s(&self) -> f64 {
        self.delivered as f64 * self.case.size as f64
            / (1 << 20) as f64
            / self.total_time.as_secs_f64().max(1e-9)
    }

    /// Messages per second the publish API accepted.
    pub fn publish_per_s(&self) -> f64 {
        self.published as f64 / self.publish_time.as_secs_f64().max(1e-9)
    }
}

/// What B's reader has seen so far.
#[derive(Debug, Default)]
struct Seen {
    delivered: AtomicU64,
    lagged: AtomicU64,
    last: Mutex<Option<Instant>>,
    progress: Notify,
}

fn diff(after: &TransportCounters, before: &TransportCounters) -> TransportCounters {
    let mut d = after.clone();
    d.frames_in -= before.frames_in;
    d.bytes_in -= before.bytes_in;
    d.frames_out -= before.frames_out;
    d.bytes_out -= before.bytes_out;
    d.frames_dropped -= before.frames_dropped;
    d.send_queue_overflows -= before.send_queue_overflows;
    d.write_stalls -= before.write_stalls;
    d.connections_closed -= before.connections_closed;
    d
}

/// Runs every case in order, each on a fresh pair of nodes with `config` (its crypto provider
/// is used for identities and the protocol; TLS is aws-lc-rs whatever it says).
pub fn throughput(config: Config, cases: &[Case]) -> Result<Vec<QuicRun>, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    cases
        .iter()
        .map(|case| runtime.block_on(run(config.clone(), *case)))
        .collect()
}

async fn spawn(config: &Config, bootstrap: Option<&NodeHandle>) -> Result<NodeHandle, String> {
    let identity = generate_identity(&*config.crypto).map_err(|e| e.to_string())?;
    let localhost = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let mut builder = NodeBuilder::new(identity)
        .bind(localhost)
        .config(config.clone());
    if let Some(b) = bootstrap {
        builder = builder.bootstrap([b.bootstrap_peer()]);
    }
    builder.spawn().map_err(|e| e.to_string())
}

async fn run(config: Config, case: Case) -> Result<QuicRun, String> {
    let topic = TopicId::from_name("quic-throughput");
    let a = spawn(&config, None).await?;
    let b = spawn(&config, Some(&a)).await?;
    let _a_inbox = a.subscribe(topic).await.map_err(|e| e.to_string())?;
    let mut b_inbox = b.subscribe(topic).await.map_err(|e| e.to_string())?;
    let formed = Instant::now() + Duration::from_secs(30);
    for node in [&a, &b] {
        while node
            .inspect(move |v| v.topic_neighbors(&topic).is_empty())
            .await
            .map_err(|e| e.to_string())?
        {
            if Instant::now() > formed {
                return Err("the two nodes did not become topic neighbours in 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let seen = Arc::new(Seen::default());
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(item) = b_inbox.recv().await {
                match item {
                    Received::Message(_) => {
                        seen.delivered.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut last) = seen.last.lock() {
                            *last = Some(Instant::now());
                        }
                    }
                    Received::Lagged(n) => {
                        seen.lagged.fetch_add(n, Ordering::Relaxed);
                    }
                }
                seen.progress.notify_one();
            }
        })
    };
    let arrived = || seen.delivered.load(Ordering::Relaxed) + seen.lagged.load(Ordering::Relaxed);

    let before = [a.counters(), b.counters()];
    let payload = Bytes::from((0..case.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let start = Instant::now();
    let mut stalled = false;
    let mut published = 0;
    for k in 0..case.count as u64 {
        if let Some(window) = case.window {
            while k >= arrived() + window as u64 {
                let wait = tokio::time::timeout(STALL, seen.progress.notified());
                if wait.await.is_err() {
                    stalled = true;
                    break;
                }
            }
        }
        if stalled {
            break;
        }
        a.publish(topic, payload.clone())
            .await
            .map_err(|e| format!("publish: {e}"))?;
        published += 1;
    }
    let publish_time = start.elapsed();
    // Wait for the last delivery, or for deliveries to stall.
    let mut progress = (arrived(), Instant::now());
    let deadline = Instant::now() + DEADLINE;
    while !stalled && arrived() < published as u64 && Instant::now() < deadline {
        let got = arrived();
        if got != progress.0 {
            progress = (got, Instant::now());
        } else if progress.1.elapsed() > STALL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let last = seen.last.lock().ok().and_then(|l| *l).unwrap_or(start);
    let counters = [
        diff(&a.counters(), &before[0]),
        diff(&b.counters(), &before[1]),
    ];
    b.shutdown().await;
    a.shutdown().await;
    let _ = reader.await;
    Ok(QuicRun {
        case,
        published,
        delivered: seen.delivered.load(Ordering::Relaxed),
        lagged: seen.lagged.load(Ordering::Relaxed),
        publish_time,
        total_time: last - start,
        counters,
    })
}
