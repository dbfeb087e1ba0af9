//! N real hearsay nodes over QUIC on 127.0.0.1 in one process: they join through node 0,
//! subscribe to one topic, and M messages are published from random nodes. Prints the broadcast
//! latency (publish to delivery, per delivery and per message to its last receiver) and the
//! resident memory per node.
//!
//! ```text
//! cargo run --release -p hearsay-tokio --example loopback_bench -- [NODES] [MESSAGES] [--insecure]
//! ```
//!
//! Defaults: 10 nodes, 100 messages of 1 KiB, one every 20 ms, real post-quantum crypto
//! (`AwsLcProvider`). `--insecure` swaps in the fast insecure test provider, to separate the
//! transport's cost from the signatures'. Memory is read from /proc/self/status (VmRSS):
//! the process's growth from before the first node to after the last message, divided by N.

use bytes::Bytes;
use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::{Config, Identity, IdentitySeeds, TopicId};
use hearsay_tokio::{NodeBuilder, NodeHandle, Received, TransportConfig, default_config};
use rand_core::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let insecure = args.iter().any(|a| a == "--insecure");
    let mut numbers = args.iter().filter_map(|a| a.parse::<usize>().ok());
    let nodes = numbers.next().unwrap_or(10).max(2);
    let messages = numbers.next().unwrap_or(100).max(1);

    let config: Config = if insecure {
        Config {
            crypto: Arc::new(InsecureTestProvider),
            ..Config::default()
        }
    } else {
        default_config()
    };
    println!(
        "loopback_bench: {nodes} nodes, {messages} messages of 1 KiB, crypto {}",
        config.crypto.name()
    );
    let topic = TopicId::from_name("bench");
    let rss_before = rss_kib();
    let started = Instant::now();

    // Publish instants by message index, and every delivery's latency.
    let sent: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<(u32, Duration)>>> = Arc::default();
    let mut handles: Vec<NodeHandle> = Vec::new();
    let mut readers = Vec::new();
    for i in 0..nodes {
        let mut rng = chacha20::ChaCha8Rng::seed_from_u64(i as u64);
        let identity = Identity::from_seeds(&*config.crypto, IdentitySeeds::generate(&mut rng));
        let mut b = NodeBuilder::new(identity)
            .bind("127.0.0.1:0".parse().unwrap())
            .config(config.clone())
            .transport(TransportConfig::default());
        if let Some(first) = handles.first() {
            b = b.bootstrap([first.bootstrap_peer()]);
        }
        let node = b.spawn().expect("spawn");
        let mut sub = node.subscribe(topic).await.expect("subscribe");
        let (sent, latencies) = (sent.clone(), latencies.clone());
        readers.push(tokio::spawn(async move {
            let mut lagged = 0;
            while let Some(item) = sub.recv().await {
                match item {
                    Received::Message(m) => {
                        let now = Instant::now();
                        let Some(idx) = m.payload.get(..4) else {
                            continue;
                        };
                        let idx = u32::from_be_bytes(idx.try_into().unwrap());
                        if let Some(t) = sent.lock().unwrap().get(&idx) {
                            latencies.lock().unwrap().push((idx, now - *t));
                        }
                    }
                    Received::Lagged(n) => lagged += n,
                }
            }
            lagged
        }));
        handles.push(node);
    }

    // Wait until every node has a neighbour in the topic, then let the tree settle.
    for n in &handles {
        while n
            .inspect(move |v| v.topic_neighbors(&topic).is_empty())
            .await
            .unwrap()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("overlay formed in {:.2} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rss_formed = rss_kib();

    let mut rng = chacha20::ChaCha8Rng::seed_from_u64(42);
    let publish_start = Instant::now();
    for k in 0..messages as u32 {
        let from = rng.next_u32() as usize % nodes;
        let mut payload = vec![0u8; 1024];
        payload[..4].copy_from_slice(&k.to_be_bytes());
        sent.lock().unwrap().insert(k, Instant::now());
        handles[from]
            .publish(topic, Bytes::from(payload))
            .await
            .expect("publish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait for the stragglers (anti-entropy repairs anything lost within seconds).
    let expected = messages * (nodes - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while latencies.lock().unwrap().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let publish_time = publish_start.elapsed();
    let rss_after = rss_kib();

    let lat = latencies.lock().unwrap().clone();
    let mut all: Vec<Duration> = lat.iter().map(|(_, d)| *d).collect();
    all.sort();
    let mut last: HashMap<u32, (Duration, usize)> = HashMap::new();
    for (idx, d) in &lat {
        let e = last.entry(*idx).or_default();
        e.0 = e.0.max(*d);
        e.1 += 1;
    }
    let mut complete: Vec<Duration> = last
        .values()
        .filter(|(_, n)| *n == nodes - 1)
        .map(|(d, _)| *d)
        .collect();
    complete.sort();

    println!(
        "deliveries: {} of {expected} ({} of {messages} messages reached every node)",
        all.len(),
        complete.len()
    );
    println!(
        "latency per delivery:       p50 {}  p95 {}  max {}",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.95)),
        ms(all.last().copied().unwrap_or_default())
    );
    println!(
        "latency to the last node:   p50 {}  p95 {}  max {}",
        ms(percentile(&complete, 0.5)),
        ms(percentile(&complete, 0.95)),
        ms(complete.last().copied().unwrap_or_default())
    );
    let mut frames_out = 0;
    let mut bytes_out = 0;
    for h in &handles {
        let c = h.counters();
        frames_out += c.frames_out;
        bytes_out += c.bytes_out;
    }
    println!(
        "traffic: {frames_out} frames, {:.1} MiB sent in all during {:.1} s",
        bytes_out as f64 / (1 << 20) as f64,
        (started.elapsed()).as_secs_f64()
    );
    println!("publishing took {:.2} s", publish_time.as_secs_f64());
    if let (Some(before), Some(formed), Some(after)) = (rss_before, rss_formed, rss_after) {
        let per_node = |rss: u64| rss.saturating_sub(before) as f64 / nodes as f64;
        println!(
            "RSS: {:.1} MiB before the nodes; {:.0} KiB per node once the overlay formed, \
             {:.0} KiB per node after the messages (each node retains them, ~6.4 KB each with \
             the author's key and signature)",
            before as f64 / 1024.0,
            per_node(formed),
            per_node(after),
        );
    }
    let shutdowns: Vec<_> = handles
        .iter()
        .map(|h| {
            let h = h.clone();
            tokio::spawn(async move { h.shutdown().await })
        })
        .collect();
    for s in shutdowns {
        let _ = s.await;
    }
    let mut lagged = 0;
    for r in readers {
        lagged += r.await.unwrap_or(0);
    }
    if lagged > 0 {
        println!("subscribers lagged by {lagged} deliveries");
    }
    if all.len() < expected {
        std::process::exit(1);
    }
}
