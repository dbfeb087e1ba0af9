//! How far `root` attackers (contract v4) hold a topic's tree: runs a scenario and, every 10
//! virtual seconds from its first `byzantine` event, prints how many honest subscribers of the
//! topic have an attacker's identity as their root or their parent (as `inspect().topic_root`
//! reports them), then the run's delivery figures and wall time.
//!
//! Usage: `cargo run --release -p hearsay-sim --example tree_capture -- FILE [TOPIC] [SEED]`
//! (topic `t` and the file's seed by default).
use hearsay_proto::{PeerId, TimeDelta, TopicId};
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::scenario::{Action, Scenario};
use hearsay_sim::world::{CryptoChoice, World};
use std::collections::BTreeMap;
use std::time::Instant;

/// One sample of the honest subscribers of a topic.
#[derive(Debug, Default)]
struct Sample {
    subscribers: usize,
    /// Following an attacker's identity as root.
    roots: usize,
    /// With an attacker's identity as parent.
    parents: usize,
    /// Either.
    either: usize,
    /// How many follow each root (by node number).
    followed: BTreeMap<usize, usize>,
}

fn sample(w: &World, topic: &TopicId) -> Sample {
    // The identities `root` attackers rejoined with (their old ones are stopped).
    let attacker = |p: &PeerId| w.index_of(p).is_some_and(|j| w.made_by(j).is_some());
    let mut out = Sample::default();
    for i in (0..w.len()).filter(|&i| w.is_honest(i)) {
        let Some((root, _, parent)) = w.node(i).and_then(|n| n.inspect().topic_root(topic)) else {
            continue;
        };
        out.subscribers += 1;
        if let Some(j) = w.index_of(&root) {
            *out.followed.entry(j).or_default() += 1;
        }
        let r = attacker(&root);
        let p = parent.is_some_and(|p| attacker(&p));
        out.roots += usize::from(r);
        out.parents += usize::from(p);
        out.either += usize::from(r || p);
        debug_assert_eq!(r || p, w.captured_by_root(i, topic));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: tree_capture FILE [TOPIC] [SEED]");
        std::process::exit(2);
    };
    let sc = Scenario::load(std::path::Path::new(file)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let topic = TopicId::from_name(args.get(2).map_or("t", String::as_str));
    let seed = args.get(3).map_or(sc.seed, |s| s.parse().expect("a seed"));
    let first_attack = sc
        .events
        .iter()
        .filter(|e| matches!(e.action, Action::Byzantine { .. }))
        .map(|e| e.at.as_micros() / 1_000_000)
        .min()
        .unwrap_or(0);
    let (nodes, secs) = (sc.nodes, sc.duration.as_micros() / 1_000_000);
    let started = Instant::now();
    let mut w = World::new(sc, seed, nodes, CryptoChoice::Fast).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let mut at = first_attack;
    while at <= secs {
        w.run_until(SIM_EPOCH + TimeDelta::from_secs(at));
        let x = sample(&w, &topic);
        let roots: Vec<String> = x
            .followed
            .iter()
            .map(|(j, n)| {
                let kind = if w.made_by(*j).is_some() {
                    "attacker "
                } else {
                    ""
                };
                format!("{kind}{j}: {n}")
            })
            .collect();
        println!(
            "{at:>5} s: {:>4} of {} honest subscribers have an attacker as root or parent \
             (root {}, parent {}); roots followed: {}",
            x.either,
            x.subscribers,
            x.roots,
            x.parents,
            roots.join(", ")
        );
        at += 10;
    }
    let wall = started.elapsed().as_secs_f64();
    let r = w.finish(wall, None, Some(file.clone()));
    let m = &r.metrics;
    println!(
        "wall {wall:.1} s; delivery_ratio {:?}; latency_ms p95 {:?} p99 {:?}; duplicate_deliveries {:?}; trace {}",
        m.delivery_ratio,
        m.latency_ms.as_ref().map(|l| l.p95),
        m.latency_ms.as_ref().map(|l| l.p99),
        m.duplicate_deliveries,
        r.trace_hash
    );
    for e in &r.expectations {
        let verdict = if e.passed { "PASS" } else { "FAIL" };
        println!(
            "{verdict} {} = {:?} (min {:?}, max {:?})",
            e.metric, e.value, e.min, e.max
        );
    }
}
