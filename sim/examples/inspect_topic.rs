//! Debugging aid: runs a scenario to a virtual second and prints a topic's overlay (components,
//! eccentricity, degrees), Plumtree's eager graph, hop histogram, broadcast totals and missing
//! deliveries. Usage: `cargo run --release -p hearsay-sim --example inspect_topic -- FILE [SECS]
//! [TOPIC] x` (a fourth argument skips the per-node listing). `NOLOG=1` skips the delivery log.
use hearsay_proto::node::Event;
use hearsay_proto::{TimeDelta, TopicId};
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::{CryptoChoice, World};
use std::collections::BTreeMap;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sc = Scenario::load(std::path::Path::new(&args[1])).unwrap();
    let at: u64 = args
        .get(2)
        .map(|a| a.parse().unwrap())
        .unwrap_or(sc.duration.as_micros() / 1_000_000);
    let seed = sc.seed;
    let n = sc.nodes;
    let mut w = World::new(sc, seed, n, CryptoChoice::Fast).unwrap();
    if std::env::var("NOLOG").is_err() {
        w.record();
    }
    w.run_until(SIM_EPOCH + TimeDelta::from_secs(at));
    let topic = TopicId::from_name(args.get(3).map(String::as_str).unwrap_or("t"));
    let mut per_node: BTreeMap<usize, usize> = BTreeMap::new();
    let mut per_msg: BTreeMap<String, usize> = BTreeMap::new();
    for (_, i, e) in w.events() {
        if let Event::Delivered { id, .. } = e {
            *per_node.entry(*i).or_default() += 1;
            *per_msg.entry(format!("{id:?}")).or_default() += 1;
        }
    }
    // Topic overlay components among subscribers.
    let n = w.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for i in 0..n {
        let Some(node) = w.node(i) else { continue };
        let nbrs: Vec<hearsay_proto::PeerId> = if std::env::var("NODELEVEL").is_ok() {
            node.inspect().neighbors().collect()
        } else {
            node.inspect().topic_neighbors(&topic)
        };
        for p in nbrs {
            let j = w.index_of(&p).unwrap();
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            if a != b {
                parent[a] = b;
            }
        }
    }
    let mut comps: BTreeMap<usize, usize> = BTreeMap::new();
    for i in 0..n {
        if w.node(i).is_some_and(|x| {
            std::env::var("NODELEVEL").is_ok() || x.inspect().is_subscribed(&topic)
        }) && w.is_live(i)
        {
            *comps.entry(find(&mut parent, i)).or_default() += 1;
        }
    }
    let mut sizes: Vec<usize> = comps.values().copied().collect();
    sizes.sort();
    println!("topic components {}: sizes {:?}", sizes.len(), sizes);
    {
        // BFS distances in the topic overlay (undirected union of active views).
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        for i in 0..n {
            let Some(node) = w.node(i) else { continue };
            for p in node.inspect().topic_neighbors(&topic) {
                let j = w.index_of(&p).unwrap();
                adj[i].push(j);
                adj[j].push(i);
            }
        }
        let mut ecc = Vec::new();
        for src in 0..n {
            if adj[src].is_empty() {
                continue;
            }
            let mut d = vec![usize::MAX; n];
            d[src] = 0;
            let mut q = std::collections::VecDeque::from([src]);
            while let Some(x) = q.pop_front() {
                for &y in &adj[x] {
                    if d[y] == usize::MAX {
                        d[y] = d[x] + 1;
                        q.push_back(y);
                    }
                }
            }
            ecc.push(
                d.iter()
                    .filter(|&&v| v != usize::MAX)
                    .max()
                    .copied()
                    .unwrap_or(0),
            );
        }
        ecc.sort();
        if !ecc.is_empty() {
            println!(
                "topic overlay eccentricity min {} median {} max {}",
                ecc[0],
                ecc[ecc.len() / 2],
                ecc[ecc.len() - 1]
            );
        }
        let degs: Vec<usize> = (0..n)
            .map(|i| {
                w.node(i)
                    .map_or(0, |x| x.inspect().topic_neighbors(&topic).len())
            })
            .collect();
        let mut dh: BTreeMap<usize, usize> = BTreeMap::new();
        for d in degs {
            *dh.entry(d).or_default() += 1;
        }
        println!("topic degree histogram {dh:?}");
    }
    if std::env::var("COMPS").is_ok() {
        let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            if w.node(i).is_some_and(|x| x.inspect().is_subscribed(&topic)) && w.is_live(i) {
                members.entry(find(&mut parent, i)).or_default().push(i);
            }
        }
        for (_, m) in members.iter().filter(|(_, m)| m.len() < 20) {
            println!("  component {:?}", m);
            for &i in m {
                let v = w.node(i).unwrap().inspect();
                let c = v.counters();
                let tn: Vec<usize> = v
                    .topic_neighbors(&topic)
                    .iter()
                    .filter_map(|p| w.index_of(p))
                    .collect();
                let nb: Vec<(usize, bool)> = v
                    .neighbors()
                    .map(|p| {
                        let j = w.index_of(&p).unwrap();
                        (j, w.node(j).unwrap().inspect().is_subscribed(&topic))
                    })
                    .collect();
                println!(
                    "    node {i}: topic_neighbors {tn:?} node-level neighbours (id, subscribed) {nb:?} topic_joins {} finds_sent {} finds_answered {} tm={:?}",
                    c.topic_joins,
                    c.finds_sent,
                    c.finds_answered,
                    v.topic_membership_counters(&topic)
                );
            }
        }
    }
    // Eager graph components and asymmetric links.
    let mut parent: Vec<usize> = (0..n).collect();
    let mut asym = 0;
    let mut eager_edges = 0;
    for i in 0..n {
        let Some(node) = w.node(i) else { continue };
        for p in node.inspect().eager_peers(&topic) {
            let j = w.index_of(&p).unwrap();
            eager_edges += 1;
            if !w
                .node(j)
                .is_some_and(|x| x.inspect().eager_peers(&topic).contains(&node.peer_id()))
            {
                asym += 1;
            }
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            if a != b {
                parent[a] = b;
            }
        }
    }
    let mut ec: BTreeMap<usize, usize> = BTreeMap::new();
    for i in 0..n {
        if w.is_live(i) {
            *ec.entry(find(&mut parent, i)).or_default() += 1;
        }
    }
    println!(
        "eager components {} eager directed edges {} asymmetric {}",
        ec.len(),
        eager_edges,
        asym
    );
    let mut hops: BTreeMap<u8, usize> = BTreeMap::new();
    for (_, _, e) in w.events() {
        if let Event::Delivered { hops: h, .. } = e {
            *hops.entry(*h).or_default() += 1;
        }
    }
    println!("hops histogram {hops:?}");
    let mut tot = BTreeMap::<&str, u64>::new();
    for i in 0..n {
        if let Some(c) = w
            .node(i)
            .and_then(|x| x.inspect().broadcast_counters(&topic))
        {
            *tot.entry("delivered").or_default() += c.delivered;
            *tot.entry("dups").or_default() += c.duplicates;
            *tot.entry("prunes").or_default() += c.prunes_sent;
            *tot.entry("grafts").or_default() += c.grafts_sent;
            *tot.entry("optim").or_default() += c.optimizations;
            *tot.entry("abandoned").or_default() += c.missing_abandoned;
            *tot.entry("notnb").or_default() += c.not_neighbor;
            *tot.entry("unknown").or_default() += c.unknown_requests;
            *tot.entry("too_old").or_default() += c.too_old;
            *tot.entry("invalid").or_default() += c.invalid;
        }
    }
    println!("totals {tot:?}");
    // Missing deliveries of measured messages at live subscribers.
    let mut got = std::collections::HashSet::new();
    for (_, i, e) in w.events() {
        if let Event::Delivered { id, .. } = e {
            got.insert((*i, *id));
        }
    }
    let mut missing = 0;
    for (k, m) in w.published().iter().enumerate() {
        if !m.measure {
            continue;
        }
        for i in 0..n {
            if i == m.author
                || !w.is_live(i)
                || !w.node(i).unwrap().inspect().is_subscribed(&m.topic)
            {
                continue;
            }
            if !got.contains(&(i, m.id)) {
                missing += 1;
                if missing < 30 {
                    let v = w.node(i).unwrap().inspect();
                    let tn: Vec<usize> = v
                        .topic_neighbors(&topic)
                        .iter()
                        .filter_map(|p| w.index_of(p))
                        .collect();
                    println!(
                        "MISSING msg#{k} {:?} author {} at {:.3}s -> node {i} tn={tn:?} retained={} bc={:?} rc={:?}",
                        m.id,
                        m.author,
                        (m.at - SIM_EPOCH).as_micros() as f64 / 1e6,
                        v.retained(&topic),
                        v.broadcast_counters(&topic),
                        v.reconcile_counters(&topic)
                    );
                }
            }
        }
    }
    println!("missing total {missing}");
    if let Some(k) = std::env::var("TRACE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // Every payload frame of message k, in delivery order.
        let m = &w.published()[k];
        let mut firsts = std::collections::HashSet::new();
        for d in w.deliveries() {
            if let Some((_t, p)) = hearsay_sim::broadcast::payload_of(&d.frame)
                && p.message.id() == m.id
            {
                let repair = !matches!(
                    hearsay_proto::Frame::decode(&d.frame),
                    Ok(hearsay_proto::Frame::Topic(
                        hearsay_proto::broadcast::topic::TopicMessage::Broadcast {
                            message: hearsay_proto::broadcast::plumtree::Message::Gossip(_),
                            ..
                        }
                    ))
                );
                let first = firsts.insert(d.to);
                println!(
                    "  {:.3}s {} -> {} hops {} {}{}",
                    (d.at - SIM_EPOCH).as_micros() as f64 / 1e6,
                    d.from,
                    d.to,
                    p.hops,
                    if repair { "REPAIR " } else { "" },
                    if first { "" } else { "DUP" }
                );
            }
        }
    }
    if std::env::var("PERMSG").is_ok() {
        // Payload frames received per published message, by kind, in publish order.
        let mut frames: BTreeMap<hearsay_proto::MessageId, (usize, usize, usize)> = BTreeMap::new();
        for d in w.deliveries() {
            if let Some((_t, p)) = hearsay_sim::broadcast::payload_of(&d.frame) {
                let e = frames.entry(p.message.id()).or_default();
                match hearsay_proto::Frame::decode(&d.frame) {
                    Ok(hearsay_proto::Frame::Topic(
                        hearsay_proto::broadcast::topic::TopicMessage::Broadcast {
                            message: hearsay_proto::broadcast::plumtree::Message::Gossip(_),
                            ..
                        },
                    )) => e.0 += 1,
                    _ => e.1 += 1,
                }
            }
        }
        for (_, _, e) in w.events() {
            if let Event::Delivered { id, .. } = e {
                frames.entry(*id).or_default().2 += 1;
            }
        }
        for (k, m) in w.published().iter().enumerate() {
            let (g, r, d) = frames.get(&m.id).copied().unwrap_or_default();
            println!(
                "msg#{k} author {} gossip {g} repair {r} delivered {d} extra {}",
                m.author,
                (g + r) as i64 - d as i64
            );
        }
    }
    if let (Ok(node), Some(k)) = (
        std::env::var("NODE").map(|v| v.parse::<usize>().unwrap()),
        std::env::var("MSG")
            .ok()
            .map(|v| v.parse::<usize>().unwrap()),
    ) {
        let m = &w.published()[k];
        for d in w.deliveries() {
            if d.to != node {
                continue;
            }
            if let Some((_t, p)) = hearsay_sim::broadcast::payload_of(&d.frame)
                && p.message.id() == m.id
            {
                {
                    let kind = format!("{:?}", hearsay_proto::Frame::decode(&d.frame).unwrap())
                        .chars()
                        .take(60)
                        .collect::<String>();
                    println!(
                        "  {:.3}s from {} (byz {}) ts_ok={} hops={} {}",
                        (d.at - SIM_EPOCH).as_micros() as f64 / 1e6,
                        d.from,
                        w.adversary(d.from).is_some(),
                        p.message.timestamp == m.at,
                        p.hops,
                        kind
                    );
                }
            }
        }
    }
    if args.len() > 5 {
        return;
    }
    println!(
        "msgs {} per-msg deliveries: {:?}",
        per_msg.len(),
        per_msg.values().collect::<Vec<_>>()
    );
    for i in 0..w.len() {
        let Some(node) = w.node(i) else { continue };
        let v = node.inspect();
        let tn: Vec<usize> = v
            .topic_neighbors(&topic)
            .iter()
            .filter_map(|p| w.index_of(p))
            .collect();
        let eager: Vec<usize> = v
            .eager_peers(&topic)
            .iter()
            .filter_map(|p| w.index_of(p))
            .collect();
        let lazy: Vec<usize> = v
            .lazy_peers(&topic)
            .iter()
            .filter_map(|p| w.index_of(p))
            .collect();
        println!(
            "{i:3} live={} sub={} deliv={} tn={tn:?} eager={eager:?} lazy={lazy:?} retained={} bc={:?} rc={:?} nb={}",
            w.is_live(i),
            v.is_subscribed(&topic),
            per_node.get(&i).copied().unwrap_or(0),
            v.retained(&topic),
            v.broadcast_counters(&topic),
            v.reconcile_counters(&topic),
            v.neighbors().count(),
        );
        if args.len() > 4 {
            let c = v.counters();
            println!("    {c:?}");
            println!("    topic hpv {:?}", v.topic_membership_counters(&topic));
            println!("    swim {:?}", v.failure_detector_counters());
        }
    }
}
