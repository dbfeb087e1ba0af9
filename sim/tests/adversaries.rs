//! Contract version 4's hostile peers: address groups (`subnets`, `byzantine`'s `subnet`), the
//! `eclipse` behaviour (an attacker's identities really connect to its targets and flood them
//! with membership requests that offer only attacker identities), and the metrics that judge it
//! (`eclipsed_nodes`, `honest_view_fraction`).

use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::frame::Frame;
use hearsay_proto::membership::hyparview::{Message, PeerInfo, Priority};
use hearsay_proto::{PeerId, TimeDelta, Timestamp};
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::run::{Sim, SimBuilder};
use hearsay_sim::scenario::{
    Action, Behaviour, DEFAULT_TARGETS, LatencyDist, NetworkSpec, Scenario, SubnetChoice,
};
use hearsay_sim::world::World;
use std::collections::{BTreeMap, BTreeSet};

fn s(secs: u64) -> TimeDelta {
    TimeDelta::from_secs(secs)
}

fn t(secs: u64) -> Timestamp {
    SIM_EPOCH + s(secs)
}

fn net(subnets: Option<usize>) -> NetworkSpec {
    NetworkSpec {
        latency: LatencyDist::Fixed(TimeDelta::from_millis(20)),
        subnets,
        ..NetworkSpec::default()
    }
}

fn byzantine(fraction: f64, behaviour: Behaviour, subnet: SubnetChoice, targets: f64) -> Action {
    Action::Byzantine {
        fraction,
        behaviour,
        subnet,
        targets,
    }
}

// ------------------------------------------------------------------------------- parsing

#[test]
fn parses_subnets_subnet_targets_and_eclipse() {
    let text = r#"
nodes = 40
[network]
subnets = 7

[[events]]
at = "0s"
action = "join"

[[events]]
at = "10s"
action = "byzantine"
fraction = 0.1
behaviour = "eclipse"
targets = 0.25
subnet = "own"

[[events]]
at = "20s"
action = "byzantine"
fraction = 0.1
behaviour = "eclipse"

[[events]]
at = "30s"
action = "byzantine"
fraction = 0.1
behaviour = "drop"
subnet = "shared"

[[expect]]
metric = "eclipsed_nodes"
max = 0

[[expect]]
metric = "honest_view_fraction.p5"
min = 0.4

[[expect]]
metric = "honest_view_fraction.min"
min = 0
"#;
    let sc = Scenario::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.network.subnets, Some(7));
    assert_eq!(
        sc.events[1].action,
        byzantine(0.1, Behaviour::Eclipse, SubnetChoice::Own, 0.25)
    );
    // The defaults: one new shared group, a tenth of the honest nodes as targets.
    assert_eq!(
        sc.events[2].action,
        byzantine(0.1, Behaviour::Eclipse, SubnetChoice::Shared, 0.1)
    );
    assert_eq!(DEFAULT_TARGETS, 0.1);
    assert_eq!(
        sc.events[3].action,
        byzantine(0.1, Behaviour::Drop, SubnetChoice::Shared, DEFAULT_TARGETS)
    );
    assert_eq!(sc.expects.len(), 3);
    // Without `subnets`, one group per node.
    let plain = Scenario::parse("nodes = 3\n", "p.toml").unwrap();
    assert_eq!(plain.network.subnets, None);
}

#[test]
fn rejects_bad_subnets_subnet_and_targets() {
    let event = |extra: &str| {
        format!(
            "[[events]]\nat = \"1s\"\naction = \"byzantine\"\nfraction = 0.1\nbehaviour = \"eclipse\"\n{extra}\n"
        )
    };
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            "[network]\nsubnets = 0\n".into(),
            Some("network.subnets"),
            "at least 1",
        ),
        (
            "[network]\nsubnets = 2.5\n".into(),
            Some("network.subnets"),
            "integer",
        ),
        (
            "[[events]]\nat = \"1s\"\naction = \"set_network\"\nsubnets = 4\n".into(),
            Some("events[1].subnets"),
            "unknown key",
        ),
        (
            event("subnet = \"mine\""),
            Some("events[1].subnet"),
            "valid: shared, own",
        ),
        (event("targets = 0"), Some("events[1].targets"), "(0, 1]"),
        (event("targets = 1.5"), Some("events[1].targets"), "(0, 1]"),
        (event("targets = -0.1"), Some("events[1].targets"), "(0, 1]"),
        (event("targets = \"all\""), Some("events[1].targets"), "number"),
        (
            "[[events]]\nat = \"1s\"\naction = \"byzantine\"\nfraction = 0.1\nbehaviour = \"drop\"\ntargets = 0.2\n".into(),
            Some("events[1].targets"),
            "only to behaviour = \"eclipse\"",
        ),
        (
            "[[events]]\nat = \"1s\"\naction = \"byzantine\"\nfraction = 0.1\nbehaviour = \"sybil\"\n".into(),
            Some("events[1].behaviour"),
            "eclipse",
        ),
        (
            "[[expect]]\nmetric = \"honest_view_fraction\"\nmin = 0.4\n".into(),
            Some("expect[1].metric"),
            "honest_view_fraction.p5",
        ),
    ];
    for (text, key, words) in cases {
        match Scenario::parse(&text, "bad.toml") {
            Ok(sc) => panic!("{text:?} parsed as {sc:?}"),
            Err(e) => {
                assert_eq!(e.key.as_deref(), key, "{text:?}: {e}");
                assert!(e.message.contains(words), "{text:?}: {e}");
            }
        }
    }
}

// ------------------------------------------------------------------------------- subnets

fn joined(nodes: usize, subnets: Option<usize>) -> SimBuilder {
    Sim::builder()
        .nodes(nodes)
        .seed(3)
        .duration(s(30))
        .network(net(subnets))
        .at(
            s(0),
            Action::Join {
                contacts: 1,
                spread: s(0),
            },
        )
}

#[test]
fn nodes_sit_in_address_groups_and_byzantine_events_move_them() {
    let w = joined(10, Some(3)).build().unwrap();
    assert!((0..10).all(|i| w.subnet_of(i) == (i % 3) as u32));
    let w = joined(10, None).build().unwrap();
    assert!((0..10).all(|i| w.subnet_of(i) == i as u32));

    let mut w = joined(20, Some(4))
        .at(
            s(5),
            byzantine(0.1, Behaviour::Drop, SubnetChoice::Shared, DEFAULT_TARGETS),
        )
        .at(
            s(6),
            byzantine(0.1, Behaviour::Forge, SubnetChoice::Own, DEFAULT_TARGETS),
        )
        .at(
            s(7),
            byzantine(
                0.1,
                Behaviour::Replay,
                SubnetChoice::Shared,
                DEFAULT_TARGETS,
            ),
        )
        .build()
        .unwrap();
    w.run_until(t(8));
    let by = |b: Behaviour| -> Vec<usize> {
        (0..w.len())
            .filter(|&i| w.adversary(i).is_some_and(|a| a.behaviour() == b))
            .collect()
    };
    let (drop, forge, replay) = (
        by(Behaviour::Drop),
        by(Behaviour::Forge),
        by(Behaviour::Replay),
    );
    assert_eq!((drop.len(), forge.len(), replay.len()), (2, 1, 1));
    // Shared: one new group each time, numbered after the 4 that exist.
    assert!(drop.iter().all(|&i| w.subnet_of(i) == 4));
    assert!(replay.iter().all(|&i| w.subnet_of(i) == 5));
    // Own: where it was.
    assert!(forge.iter().all(|&i| w.subnet_of(i) == (i % 4) as u32));
    // Honest nodes stay put, and are the only honest ones.
    for i in 0..w.len() {
        if w.adversary(i).is_none() {
            assert_eq!(w.subnet_of(i), (i % 4) as u32);
            assert!(w.is_honest(i));
        } else {
            assert!(!w.is_honest(i));
        }
    }
}

// ------------------------------------------------------------------------------- eclipse

/// 24 nodes in one topic; at 10 s three of them turn `eclipse` attackers against a quarter of
/// the honest nodes.
fn attacked(seed: u64) -> SimBuilder {
    Sim::builder()
        .nodes(24)
        .seed(seed)
        .duration(s(40))
        .network(net(Some(6)))
        .at(
            s(0),
            Action::Join {
                contacts: 1,
                spread: s(0),
            },
        )
        .at(
            s(2),
            Action::Subscribe {
                topic: "t".into(),
                fraction: 1.0,
            },
        )
        .at(
            s(10),
            byzantine(0.125, Behaviour::Eclipse, SubnetChoice::Shared, 0.25),
        )
}

/// Who offered what to whom: for each request kind (and overlay), the distinct identities
/// that sent it to a target, and every peer named in a SHUFFLE or FORWARD_JOIN.
#[derive(Debug, Default)]
struct Seen {
    senders: BTreeMap<&'static str, BTreeSet<usize>>,
    offered: Vec<PeerId>,
}

fn seen(w: &World, targets: &BTreeSet<usize>) -> Seen {
    let mut out = Seen::default();
    for d in w.deliveries() {
        if w.sybil_controller(d.from).is_none() || !targets.contains(&d.to) {
            continue;
        }
        let (overlay, message) = match Frame::decode(&d.frame) {
            Ok(Frame::Membership(m)) => ("node", m),
            Ok(Frame::Topic(TopicMessage::Membership { message, .. })) => ("topic", message),
            _ => continue,
        };
        let kind = match message {
            Message::Join => "join",
            Message::Neighbor {
                priority: Priority::High,
            } => "neighbor-high",
            Message::Shuffle { origin, nodes, .. } => {
                out.offered.push(origin.peer);
                out.offered.extend(nodes.iter().map(|i: &PeerInfo| i.peer));
                "shuffle"
            }
            Message::ForwardJoin { node, .. } => {
                out.offered.push(node.peer);
                "forward-join"
            }
            _ => continue,
        };
        let key: &'static str = match (overlay, kind) {
            ("node", "join") => "node join",
            ("node", "neighbor-high") => "node neighbor-high",
            ("node", "shuffle") => "node shuffle",
            ("node", _) => "node forward-join",
            (_, "join") => "topic join",
            (_, "neighbor-high") => "topic neighbor-high",
            (_, "shuffle") => "topic shuffle",
            _ => "topic forward-join",
        };
        out.senders.entry(key).or_default().insert(d.from);
    }
    out
}

#[test]
fn eclipse_attackers_make_identities_connect_to_their_targets_and_flood_them() {
    let mut w = attacked(5).build().unwrap();
    w.record();
    w.run_until(t(40));
    let attackers: Vec<usize> = (0..w.scenario_nodes())
        .filter(|&i| {
            w.adversary(i)
                .is_some_and(|a| a.behaviour() == Behaviour::Eclipse)
        })
        .collect();
    assert_eq!(attackers.len(), 3, "an eighth of 24 nodes");
    let targets: BTreeSet<usize> = w.eclipse_targets(attackers[0]).iter().copied().collect();
    assert_eq!(targets.len(), 5, "a quarter of the 21 honest nodes");
    for &a in &attackers {
        // Chosen once for the event: the same targets for each of its attackers, all honest.
        assert_eq!(
            w.eclipse_targets(a)
                .iter()
                .copied()
                .collect::<BTreeSet<_>>(),
            targets
        );
        // Identities: at most 20 alive, at most one new per second (30 s of attack), each a
        // node after the scenario's, in its attacker's (new, shared) address group, never honest.
        let alive = w.sybils_of(a);
        let made = w.sybils_made(a);
        assert!(!alive.is_empty() && alive.len() <= 20, "{alive:?}");
        assert!(
            (20..=31).contains(&made),
            "attacker {a} made {made} identities"
        );
        assert!(
            made > alive.len() as u64,
            "refused or evicted identities are replaced (made {made}, alive {})",
            alive.len()
        );
        assert_eq!(
            w.subnet_of(a),
            6,
            "one new group after the 6 of the scenario"
        );
        for &x in alive {
            assert!(x >= w.scenario_nodes());
            assert_eq!(w.sybil_controller(x), Some(a));
            assert_eq!(w.subnet_of(x), w.subnet_of(a));
            assert!(!w.is_honest(x) && !w.is_live(x));
            assert!(w.node(x).is_some());
        }
    }
    // Retired identities are stopped (crash semantics), and no action brings them back.
    let retired = (w.scenario_nodes()..w.len())
        .filter(|&x| w.node(x).is_none())
        .count();
    assert!(retired > 0);
    // They really are connected to the targets...
    for &target in &targets {
        let linked = (w.scenario_nodes()..w.len())
            .filter(|&x| w.connected(x, target))
            .count();
        assert!(linked > 0, "no identity is connected to target {target}");
    }
    // ... and the targets heard every request, in both overlays, from several identities,
    // and were offered nothing but attacker identities.
    let seen = seen(&w, &targets);
    for key in [
        "node join",
        "node neighbor-high",
        "node shuffle",
        "node forward-join",
        "topic join",
        "topic neighbor-high",
        "topic shuffle",
        "topic forward-join",
    ] {
        let n = seen.senders.get(key).map_or(0, BTreeSet::len);
        assert!(
            n >= 3,
            "{key}: from {n} distinct identities ({:?})",
            seen.senders
        );
    }
    assert!(!seen.offered.is_empty());
    for p in &seen.offered {
        let i = w.index_of(p).expect("a simulated node");
        assert!(
            w.sybil_controller(i).is_some(),
            "offered node {i} is not an identity"
        );
    }
    // Honest nodes take them in: some target holds attacker identities in its active view.
    let holds_sybils = targets.iter().any(|&target| {
        w.node(target).is_some_and(|n| {
            n.inspect().neighbors().any(|p| {
                w.index_of(&p)
                    .is_some_and(|i| w.sybil_controller(i).is_some())
            })
        })
    });
    assert!(holds_sybils);

    // The metrics: sampled from the attack on; someone's view held an attacker identity.
    let r = w.finish(0.0, None, None);
    assert_eq!(r.nodes, 24, "identities are not scenario nodes");
    assert!(r.metrics.eclipsed_nodes.is_some());
    let f = r.metrics.honest_view_fraction.expect("sampled");
    assert!(f.min < 1.0 && f.min <= f.p5 && f.p5 <= 1.0, "{f:?}");
    assert_eq!(r.series.frames_per_node.len(), 24);
}

#[test]
fn eclipse_runs_are_deterministic() {
    let hash = |seed| {
        let mut w = attacked(seed).duration(s(16)).build().unwrap();
        w.run();
        (w.trace_hash(), w.len())
    };
    let a = hash(9);
    assert!(a.1 > 24, "identities were made");
    assert_eq!(a, hash(9));
    assert_ne!(a.0, hash(10).0);
}

#[test]
fn eclipse_metrics_are_null_without_a_byzantine_event() {
    let quiet = joined(12, None).duration(s(20)).run().unwrap();
    assert_eq!(quiet.metrics.eclipsed_nodes, None);
    assert_eq!(quiet.metrics.honest_view_fraction, None);
    // Any `byzantine` event starts the samples. Adversaries that leave membership alone (drop)
    // leave honest views mostly honest: only their own places in them are not.
    let r = joined(12, None)
        .duration(s(20))
        .at(
            s(10),
            byzantine(0.1, Behaviour::Drop, SubnetChoice::Shared, DEFAULT_TARGETS),
        )
        .run()
        .unwrap();
    assert!(r.metrics.eclipsed_nodes.is_some_and(|n| n <= 1), "{r:?}");
    let f = r
        .metrics
        .honest_view_fraction
        .expect("sampled from the byzantine event");
    assert!(f.min <= f.p5 && f.p5 >= 0.5 && f.p5 <= 1.0, "{f:?}");
}
