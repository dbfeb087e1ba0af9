//! `hearsay demo`: N real nodes over QUIC on 127.0.0.1 in this process. They form the overlay,
//! publish M messages from random nodes, one node crashes (its runtime is dropped: no goodbye),
//! the survivors publish again and still deliver to each other; then a report: delivery, latency
//! percentiles, frames and bytes per node.

use crate::{Error, failed};
use bytes::Bytes;
use clap::Args;
use hearsay_proto::{TimeDelta, TopicId};
use hearsay_tokio::{NodeBuilder, NodeHandle, Received, default_config, generate_identity};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `hearsay demo`
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// How many nodes (at least 3).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(3..=200))]
    pub nodes: u16,
    /// How many messages to publish before the node crashes (as many again after, at
    /// least 1 each).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub messages: u32,
}

/// Publish instants by message number; deliveries as (message, node, latency).
#[derive(Default)]
struct Log {
    sent: HashMap<u32, Instant>,
    deliveries: Vec<(u32, usize, Duration)>,
    lagged: u64,
}

type Shared = Arc<Mutex<Log>>;

fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A small xorshift generator for picking publishers (the demo needs no real randomness).
struct Pick(u64);

impl Pick {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// `hearsay demo`: runs the network and writes the report to `out`.
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(demo(usize::from(args.nodes), args.messages))?;
    out.write_all(report.text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| failed(format!("cannot write to standard output: {e}")))?;
    if report.complete {
        Ok(())
    } else {
        Err(failed(
            "not every message reached every running node (see the report above)",
        ))
    }
}

struct Report {
    text: String,
    complete: bool,
}

/// Publishes `range` from random nodes among `alive`, then waits until every alive node but
/// the author has each message (or 30 s pass). Returns (expected, got) deliveries.
async fn round(
    nodes: &[NodeHandle],
    alive: &[usize],
    range: std::ops::Range<u32>,
    log: &Shared,
    pick: &mut Pick,
    topic: TopicId,
) -> Result<(usize, usize), Error> {
    let expected = range.len() * (alive.len() - 1);
    let before = lock(log).deliveries.len();
    for k in range {
        let from = alive[pick.next(alive.len())];
        let mut payload = k.to_be_bytes().to_vec();
        payload.extend_from_slice(format!(" message {k} from node {from}").as_bytes());
        lock(log).sent.insert(k, Instant::now());
        nodes[from]
            .publish(topic, Bytes::from(payload))
            .await
            .map_err(|e| failed(format!("node {from} cannot publish: {e}")))?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = lock(log).deliveries.len() - before;
        if got >= expected || Instant::now() >= deadline {
            return Ok((expected, got));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn demo(n: usize, messages: u32) -> Result<Report, Error> {
    let mut config = default_config();
    // Repair faster than the defaults, so a demo run takes seconds.
    config.topics.antientropy.interval = TimeDelta::from_secs(1);
    config.topics.antientropy.settle = TimeDelta::from_millis(1500);
    let topic = TopicId::from_name("demo");
    let started = Instant::now();
    let log: Shared = Arc::default();
    let mut text = format!(
        "hearsay demo: {n} nodes over QUIC on 127.0.0.1 (TLS 1.3 with X25519MLKEM768, ML-DSA-65 \
         identities, crypto {})\n",
        config.crypto.name()
    );

    let mut nodes: Vec<NodeHandle> = Vec::new();
    let mut readers = Vec::new();
    // The node that will crash runs on a runtime of its own: dropping that runtime stops it
    // dead, as a killed process would (no goodbye, no QUIC close).
    let victim = n / 2;
    let mut victim_runtime = None;
    for i in 0..n {
        let identity = generate_identity(&*config.crypto)
            .map_err(|e| failed(format!("cannot create an identity: {e}")))?;
        let mut builder = NodeBuilder::new(identity)
            .bind(([127, 0, 0, 1], 0).into())
            .config(config.clone());
        if let Some(first) = nodes.first() {
            builder = builder.bootstrap([first.bootstrap_peer()]);
        }
        let node = if i == victim {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| failed(format!("cannot start a runtime for node {i}: {e}")))?;
            let spawned = {
                let _inside = rt.enter();
                builder.spawn()
            };
            victim_runtime = Some(rt);
            spawned
        } else {
            builder.spawn()
        }
        .map_err(|e| failed(format!("cannot start node {i}: {e}")))?;
        let mut sub = node
            .subscribe(topic)
            .await
            .map_err(|e| failed(format!("node {i} cannot subscribe: {e}")))?;
        let log = log.clone();
        readers.push(tokio::spawn(async move {
            while let Some(item) = sub.recv().await {
                let now = Instant::now();
                let mut log = lock(&log);
                match item {
                    Received::Message(m) => {
                        let Some(k) = m.payload.get(..4).and_then(|b| b.try_into().ok()) else {
                            continue;
                        };
                        let k = u32::from_be_bytes(k);
                        if let Some(t) = log.sent.get(&k).copied() {
                            log.deliveries.push((k, i, now - t));
                        }
                    }
                    Received::Lagged(n) => log.lagged += n,
                }
            }
        }));
        nodes.push(node);
    }

    // The overlay: every node has a neighbour in the topic.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, node) in nodes.iter().enumerate() {
        while !node
            .inspect(move |v| !v.topic_neighbors(&topic).is_empty())
            .await
            .unwrap_or(false)
        {
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "node {i} found no neighbour in 30 s: is something blocking UDP on 127.0.0.1?"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let formed = started.elapsed();
    text.push_str(&format!(
        "overlay formed in {:.2} s; letting the broadcast tree settle for 2 s\n",
        formed.as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut pick = Pick(0x9e37_79b9_7f4a_7c15);
    let all: Vec<usize> = (0..n).collect();
    let (exp1, got1) = round(&nodes, &all, 0..messages, &log, &mut pick, topic).await?;
    text.push_str(&format!(
        "phase 1: {messages} messages from random nodes: {got1} of {exp1} deliveries ({:.1}%)\n",
        100.0 * got1 as f64 / exp1.max(1) as f64
    ));

    // Crash one node (not the bootstrap node, so the survivors must route around it).
    let victim_counters = nodes[victim].counters();
    if let Some(rt) = victim_runtime.take() {
        rt.shutdown_background();
    }
    let alive: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (exp2, got2) = round(
        &nodes,
        &alive,
        messages..2 * messages,
        &log,
        &mut pick,
        topic,
    )
    .await?;
    text.push_str(&format!(
        "phase 2: node {victim} crashed (no goodbye); {messages} more messages from the {} survivors: \
         {got2} of {exp2} deliveries ({:.1}%)\n",
        alive.len(),
        100.0 * got2 as f64 / exp2.max(1) as f64
    ));

    let (exp, got) = (exp1 + exp2, got1 + got2);
    let (latencies, last, per_node, lagged, phase_latencies) = {
        let log_now = lock(&log);
        let phase_latencies: Vec<(u32, Duration)> =
            log_now.deliveries.iter().map(|d| (d.0, d.2)).collect();
        let mut latencies: Vec<Duration> = log_now.deliveries.iter().map(|d| d.2).collect();
        latencies.sort();
        let mut last: HashMap<u32, Duration> = HashMap::new();
        for (k, _, d) in &log_now.deliveries {
            let e = last.entry(*k).or_default();
            *e = (*e).max(*d);
        }
        let mut per_node = vec![0u64; n];
        for (_, i, _) in &log_now.deliveries {
            per_node[*i] += 1;
        }
        (latencies, last, per_node, log_now.lagged, phase_latencies)
    };
    let mut to_last: Vec<Duration> = last.into_values().collect();
    to_last.sort();

    text.push_str(&format!(
        "\ndelivery: {got} of {exp} ({:.1}%)\n",
        100.0 * got as f64 / exp.max(1) as f64
    ));
    text.push_str(&format!(
        "latency, publish to each delivery:  p50 {}  p90 {}  p99 {}  max {}\n",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    ));
    text.push_str(&format!(
        "latency, publish to the last node:  p50 {}  p90 {}  max {}\n",
        ms(percentile(&to_last, 0.5)),
        ms(percentile(&to_last, 0.9)),
        ms(to_last.last().copied().unwrap_or_default())
    ));
    for (label, phase) in [
        ("before the crash", 0..messages),
        ("after the crash", messages..2 * messages),
    ] {
        let mut d: Vec<Duration> = phase_latencies
            .iter()
            .filter(|(k, _)| phase.contains(k))
            .map(|(_, d)| *d)
            .collect();
        d.sort();
        text.push_str(&format!(
            "  {label:<16} p50 {}  p90 {}  p99 {}  max {}\n",
            ms(percentile(&d, 0.5)),
            ms(percentile(&d, 0.9)),
            ms(percentile(&d, 0.99)),
            ms(d.last().copied().unwrap_or_default())
        ));
    }
    if lagged > 0 {
        text.push_str(&format!("subscribers lagged by {lagged} deliveries\n"));
    }
    text.push_str(&format!(
        "\n{:>4}  {:<8}  {:>9}  {:>10}  {:>9}  {:>10}  {:>11}  {:>10}\n",
        "node", "peer", "state", "delivered", "frames in", "frames out", "KiB in", "KiB out"
    ));
    let mut totals = (0u64, 0u64, 0u64, 0u64);
    for (i, node) in nodes.iter().enumerate() {
        let c = if i == victim {
            victim_counters.clone()
        } else {
            node.counters()
        };
        totals.0 += c.frames_in;
        totals.1 += c.frames_out;
        totals.2 += c.bytes_in;
        totals.3 += c.bytes_out;
        let peer = node.peer_id().to_string();
        text.push_str(&format!(
            "{i:>4}  {:<8}  {:>9}  {:>10}  {:>9}  {:>10}  {:>11.1}  {:>10.1}\n",
            peer.get(..8).unwrap_or(&peer),
            if i == victim { "crashed" } else { "running" },
            per_node[i],
            c.frames_in,
            c.frames_out,
            c.bytes_in as f64 / 1024.0,
            c.bytes_out as f64 / 1024.0,
        ));
    }
    text.push_str(&format!(
        "{:>4}  {:<8}  {:>9}  {:>10}  {:>9}  {:>10}  {:>11.1}  {:>10.1}\n",
        "all",
        "",
        "",
        got,
        totals.0,
        totals.1,
        totals.2 as f64 / 1024.0,
        totals.3 as f64 / 1024.0
    ));
    text.push_str(&format!(
        "\n(frames and bytes include membership, failure detection and repair traffic; \
         node {victim}'s are as of when it crashed)\ntotal time {:.1} s\n",
        started.elapsed().as_secs_f64()
    ));

    let stops: Vec<_> = nodes
        .iter()
        .map(|h| {
            let h = h.clone();
            tokio::spawn(async move { h.shutdown().await })
        })
        .collect();
    for s in stops {
        let _ = s.await;
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
    }
    Ok(Report {
        text,
        complete: got >= exp,
    })
}
