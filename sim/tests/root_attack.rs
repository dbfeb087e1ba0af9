//! Contract version 4's `root` behaviour: attackers grind an identity with the smallest id they
//! can find, rejoin with it, take the topic tree (its root, or the parent of honest nodes), and
//! forward no payload.

use hearsay_proto::broadcast::plumtree::Message as Plumtree;
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::frame::Frame;
use hearsay_proto::{PeerId, TimeDelta, Timestamp, TopicId};
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::run::{Sim, SimBuilder};
use hearsay_sim::scenario::{
    Action, Behaviour, DEFAULT_TARGETS, LatencyDist, NetworkSpec, Scenario, SubnetChoice,
};
use hearsay_sim::world::{GRIND_TRIES, World, grind_root_identity};
use std::time::Instant;

fn s(secs: u64) -> TimeDelta {
    TimeDelta::from_secs(secs)
}

fn t(secs: u64) -> Timestamp {
    SIM_EPOCH + s(secs)
}

fn topic() -> TopicId {
    TopicId::from_name("t")
}

/// 30 nodes in topic "t"; at 10 s `fraction` of them turn `root`; 20 messages from 20 s.
fn attacked(seed: u64, fraction: f64) -> SimBuilder {
    Sim::builder()
        .nodes(30)
        .seed(seed)
        .duration(s(32))
        .network(NetworkSpec {
            latency: LatencyDist::Uniform {
                min: TimeDelta::from_millis(10),
                max: TimeDelta::from_millis(50),
            },
            ..NetworkSpec::default()
        })
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
            Action::Byzantine {
                fraction,
                behaviour: Behaviour::Root,
                subnet: SubnetChoice::Shared,
                targets: DEFAULT_TARGETS,
            },
        )
        .at(
            s(20),
            Action::Publish {
                topic: "t".into(),
                count: 20,
                rate: 2.0,
                size: 256,
                measure: true,
                senders: 0,
            },
        )
}

/// The scenario's nodes that turned `root`.
fn attackers(w: &World) -> Vec<usize> {
    (0..w.scenario_nodes())
        .filter(|&i| {
            w.adversary(i)
                .is_some_and(|a| a.behaviour() == Behaviour::Root)
        })
        .collect()
}

fn honest(w: &World) -> Vec<usize> {
    (0..w.len()).filter(|&i| w.is_honest(i)).collect()
}

#[test]
fn grinding_is_deterministic_and_keeps_the_smallest_id() {
    let started = Instant::now();
    let (seeds, best) = grind_root_identity(&InsecureTestProvider, 4, 3, GRIND_TRIES);
    eprintln!("grinding {GRIND_TRIES} identities: {:?}", started.elapsed());
    // Its seeds give that id.
    let id = hearsay_proto::Identity::from_seeds(&InsecureTestProvider, seeds);
    assert_eq!(id.peer_id(), best);
    // The same seed and attacker, the same identity.
    let (one, a) = grind_root_identity(&InsecureTestProvider, 4, 3, 4096);
    let (two, b) = grind_root_identity(&InsecureTestProvider, 4, 3, 4096);
    assert_eq!(a, b);
    assert_eq!(*one.to_bytes(), *two.to_bytes());
    assert!(best <= a);
    // Another attacker, or another run, grinds another identity.
    assert_ne!(grind_root_identity(&InsecureTestProvider, 4, 2, 64).1, a);
    assert_ne!(grind_root_identity(&InsecureTestProvider, 5, 3, 64).1, a);
    // 2^16 tries: the smallest of 65,536 uniform ids starts with about 16 zero bits.
    assert_eq!(best.as_bytes()[0], 0, "{best:?}");
}

#[test]
fn root_attackers_rejoin_with_the_smallest_ids_and_capture_the_tree() {
    let seed = 4;
    let mut w = attacked(seed, 0.1).build().unwrap();
    w.record();
    w.run_until(t(19));
    let attackers = attackers(&w);
    assert_eq!(attackers.len(), 3, "a tenth of 30 nodes");
    let honest = honest(&w);
    assert_eq!(honest.len(), 27);
    let honest_ids: Vec<PeerId> = honest.iter().map(|&i| w.peer_id(i)).collect();
    let mut identities = Vec::new();
    for &a in &attackers {
        // The old identity stopped (crash semantics) and is Byzantine.
        assert!(w.node(a).is_none() && !w.is_honest(a) && !w.is_live(a));
        // The new one: a real node after the scenario's, with the ground id, smaller than every
        // honest node's, joined and subscribed as its attacker was, never honest.
        let x = w.root_identity(a).expect("rejoined");
        identities.push(x);
        assert!(x >= w.scenario_nodes());
        assert_eq!(w.made_by(x), Some(a));
        assert_eq!(w.sybil_controller(x), None);
        assert!(!w.is_honest(x) && !w.is_live(x));
        assert_eq!(w.subnet_of(x), w.subnet_of(a));
        let id = w.peer_id(x);
        assert_eq!(
            id,
            grind_root_identity(&InsecureTestProvider, seed, a, GRIND_TRIES).1
        );
        assert!(honest_ids.iter().all(|h| id < *h), "{id:?}");
        assert_eq!(w.index_of(&id), Some(x));
        let view = w.node(x).expect("running").inspect();
        assert!(view.is_subscribed(&topic()));
        assert!(view.neighbors().count() > 0, "it joined the overlay");
        assert!(!view.topic_neighbors(&topic()).is_empty(), "and the topic");
    }
    // The smallest of them is the root of the topic tree: its own, and honest nodes'.
    let best = *identities
        .iter()
        .min_by_key(|&&x| w.peer_id(x))
        .expect("three");
    let root = w.peer_id(best);
    assert_eq!(
        w.node(best)
            .unwrap()
            .inspect()
            .topic_root(&topic())
            .unwrap()
            .0,
        root
    );
    let follow = honest
        .iter()
        .filter(|&&i| w.node(i).unwrap().inspect().topic_root(&topic()).unwrap().0 == root)
        .count();
    let captured = honest
        .iter()
        .filter(|&&i| w.captured_by_root(i, &topic()))
        .count();
    let children = honest
        .iter()
        .filter(|&&i| {
            w.node(i)
                .unwrap()
                .inspect()
                .topic_root(&topic())
                .unwrap()
                .2
                .is_some_and(|p| identities.iter().any(|&x| w.peer_id(x) == p))
        })
        .count();
    eprintln!(
        "at 19 s: {follow} of 27 follow the ground root, {children} have an attacker as parent, {captured} captured"
    );
    assert_eq!(
        follow,
        honest.len(),
        "every honest node follows the ground root"
    );
    assert!(children >= 1);

    w.run_until(t(32));
    // It forwarded no payload: not one GOSSIP or REPAIR frame from an attacker's identity
    // reached anyone, though its node wanted to send some.
    let mut payload = 0;
    let mut ihave = 0;
    let mut beacons_of_others = 0;
    for d in w.deliveries() {
        if !identities.contains(&d.from) {
            continue;
        }
        match Frame::decode(&d.frame) {
            Ok(Frame::Topic(TopicMessage::Broadcast { message, .. })) => match message {
                Plumtree::Gossip(_) | Plumtree::Repair(_) => payload += 1,
                Plumtree::IHave(_) => ihave += 1,
                _ => {}
            },
            Ok(Frame::Topic(TopicMessage::Beacon { beacon, .. }))
                if beacon.root != w.peer_id(d.from) =>
            {
                // Zero hops claimed to any root but itself.
                assert_eq!(beacon.dist, 0, "{beacon:?}");
                beacons_of_others += 1;
            }
            _ => {}
        }
    }
    let dropped: u64 = identities
        .iter()
        .map(|&x| w.adversary(x).unwrap().payload_dropped)
        .sum();
    let rewritten: u64 = identities
        .iter()
        .map(|&x| w.adversary(x).unwrap().beacons_rewritten)
        .sum();
    eprintln!(
        "payload frames dropped {dropped}, beacons rewritten {rewritten} ({beacons_of_others} delivered), IHAVE delivered {ihave}"
    );
    assert_eq!(payload, 0);
    assert!(dropped > 0);
    assert!(rewritten > 0 && beacons_of_others > 0);
    assert!(ihave > 0, "it announces what it does not forward");

    // No metric counts its identities, old or new.
    let r = w.finish(0.0, None, None);
    assert_eq!(r.nodes, 30);
    assert_eq!(r.series.frames_per_node.len(), 30);
    assert!(r.metrics.delivery_ratio.is_some());
}

#[test]
fn root_runs_are_deterministic() {
    let hash = |seed| {
        let mut w = attacked(seed, 0.05).duration(s(24)).build().unwrap();
        w.run();
        (w.trace_hash(), w.len())
    };
    let a = hash(9);
    assert_eq!(a.1, 31, "one identity was appended");
    assert_eq!(a, hash(9));
    assert_ne!(a.0, hash(10).0);
}

#[test]
fn parses_behaviour_root() {
    let text = r#"
nodes = 20
[[events]]
at = "30s"
action = "byzantine"
fraction = 0.05
behaviour = "root"

[[events]]
at = "31s"
action = "byzantine"
fraction = 0.05
behaviour = "root"
subnet = "own"
"#;
    let sc = Scenario::parse(text, "root.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sc.events[0].action,
        Action::Byzantine {
            fraction: 0.05,
            behaviour: Behaviour::Root,
            subnet: SubnetChoice::Shared,
            targets: DEFAULT_TARGETS,
        }
    );
    assert_eq!(
        sc.events[1].action,
        Action::Byzantine {
            fraction: 0.05,
            behaviour: Behaviour::Root,
            subnet: SubnetChoice::Own,
            targets: DEFAULT_TARGETS,
        }
    );
    // `targets` is eclipse's alone; an unknown behaviour lists `root` among the valid ones.
    let bad = "[[events]]\nat = \"1s\"\naction = \"byzantine\"\nfraction = 0.1\nbehaviour = \"root\"\ntargets = 0.2\n";
    let e = Scenario::parse(bad, "bad.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("events[1].targets"), "{e}");
    let bad =
        "[[events]]\nat = \"1s\"\naction = \"byzantine\"\nfraction = 0.1\nbehaviour = \"hub\"\n";
    let e = Scenario::parse(bad, "bad.toml").unwrap_err();
    assert_eq!(e.key.as_deref(), Some("events[1].behaviour"), "{e}");
    assert!(e.message.contains("root"), "{e}");
}
