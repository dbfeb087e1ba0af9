//! Membership at scale and under attack, in the simulator.

use hearsay_proto::TimeDelta;
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::run::Sim;
use hearsay_sim::scenario::{Action, Behaviour, DEFAULT_TARGETS, SubnetChoice};

fn s(secs: u64) -> TimeDelta {
    TimeDelta::from_secs(secs)
}

#[test]
fn a_thousand_nodes_join_into_one_component_with_symmetric_active_views() {
    let mut w = Sim::builder()
        .nodes(1000)
        .seed(21)
        .duration(s(90))
        .at(
            s(0),
            Action::Join {
                contacts: 1,
                spread: s(20),
            },
        )
        .build()
        .unwrap();
    w.run_until(SIM_EPOCH + s(90));
    assert_eq!(w.components(), 1);
    let mut asymmetric = Vec::new();
    for i in 0..w.len() {
        let node = w.node(i).unwrap();
        let active: Vec<_> = node.inspect().neighbors().collect();
        assert!(!active.is_empty(), "node {i} isolated");
        for p in active {
            let j = w.index_of(&p).unwrap();
            if !w
                .node(j)
                .unwrap()
                .inspect()
                .neighbors()
                .any(|q| q == node.peer_id())
            {
                asymmetric.push((i, j));
            }
        }
    }
    assert_eq!(
        asymmetric,
        vec![],
        "active views are symmetric after quiescence"
    );
}

#[test]
fn a_byzantine_node_claiming_honest_nodes_dead_evicts_nobody() {
    let result = Sim::builder()
        .nodes(60)
        .seed(5)
        .duration(s(120))
        .at(
            s(0),
            Action::Join {
                contacts: 2,
                spread: s(5),
            },
        )
        .at(
            s(20),
            Action::Byzantine {
                fraction: 0.1,
                behaviour: Behaviour::Forge,
                subnet: SubnetChoice::Shared,
                targets: DEFAULT_TARGETS,
            },
        )
        .expect("false_positives", None, Some(0.0))
        .expect("components", None, Some(1.0))
        .expect("rejected_frames", Some(1.0), None)
        .run()
        .unwrap();
    for e in &result.expectations {
        assert!(e.passed, "{e:?}");
    }
}

/// Forgers claim honest peers are dead with incarnations those never had (SPEC.md §14.4): the
/// victims count the lies and sign nothing for them, and nobody else acts on or passes on a
/// claim above what the subject signed.
#[test]
fn lies_about_a_victim_are_counted_and_cost_it_no_signature() {
    let mut w = Sim::builder()
        .nodes(30)
        .seed(9)
        .duration(s(60))
        .at(
            s(0),
            Action::Join {
                contacts: 2,
                spread: s(2),
            },
        )
        .at(
            s(10),
            Action::Byzantine {
                fraction: 0.1,
                behaviour: Behaviour::Forge,
                subnet: SubnetChoice::Shared,
                targets: DEFAULT_TARGETS,
            },
        )
        .build()
        .unwrap();
    w.run_until(SIM_EPOCH + s(60));
    let (mut future, mut refutations, mut unverifiable, mut none_isolated) = (0, 0, 0, true);
    for i in 0..w.len() {
        if !w.is_live(i) {
            continue;
        }
        let n = w.node(i).unwrap().inspect();
        let c = n.failure_detector_counters();
        future += c.future_incarnations;
        refutations += c.refutations;
        unverifiable += c.unverifiable_claims;
        none_isolated &= n.neighbors().count() > 0;
    }
    assert!(
        future > 0,
        "no victim saw a claim about an incarnation it never had"
    );
    assert!(
        unverifiable > 0,
        "nobody saw a claim above what its subject signed"
    );
    assert_eq!(refutations, 0, "a lie made a victim sign");
    assert!(none_isolated);
    assert_eq!(w.components(), 1);
}

/// The contract's idle window runs from 60 s after the last join to the first publish (or the
/// end): empty, it gives null; open, it counts only the quiet part, which costs less per second
/// than the whole run with its joins.
#[test]
fn idle_traffic_is_measured_over_the_quiet_window_only() {
    let run = |secs: u64| {
        Sim::builder()
            .nodes(30)
            .seed(4)
            .duration(s(secs))
            .at(
                s(0),
                Action::Join {
                    contacts: 1,
                    spread: s(5),
                },
            )
            .run()
            .unwrap()
            .metrics
    };
    let short = run(60);
    assert_eq!(
        short.idle_bytes_per_node_per_s, None,
        "window 65 s..60 s is empty"
    );
    let long = run(180);
    let idle = long.idle_bytes_per_node_per_s.unwrap();
    let whole = long.bytes_per_node_per_s.unwrap();
    assert!(
        idle > 0.0 && idle < whole,
        "idle {idle} vs whole run {whole}"
    );
    assert!(long.idle_frames_per_node_per_s.unwrap() > 0.0);
}
