//! Broadcast in the simulator: `subscribe`, `unsubscribe` and `publish` go through the node's
//! API, and the delivery metrics count what the nodes did.

use hearsay_proto::node::Event;
use hearsay_proto::{TimeDelta, TopicId};
use hearsay_sim::run::{Sim, SimBuilder};
use hearsay_sim::scenario::{Action, Behaviour, ConfigValue, DEFAULT_TARGETS, SubnetChoice};
use std::collections::BTreeSet;

fn s(secs: u64) -> TimeDelta {
    TimeDelta::from_secs(secs)
}

fn subscribe(fraction: f64) -> Action {
    Action::Subscribe {
        topic: "t".into(),
        fraction,
    }
}

fn publish(count: u64, measure: bool, senders: usize) -> Action {
    Action::Publish {
        topic: "t".into(),
        count,
        rate: 5.0,
        size: 300,
        measure,
        senders,
    }
}

/// `n` nodes joined by 5 s; from 10 s, one node subscribes per second while at least 20 nodes
/// remain unsubscribed (a fraction of 0.05 rounds down to one node until then).
fn partially_subscribed(n: usize, seed: u64) -> SimBuilder {
    let mut b = Sim::builder().nodes(n).seed(seed).duration(s(70)).at(
        s(0),
        Action::Join {
            contacts: 1,
            spread: s(5),
        },
    );
    for k in 0..n.saturating_sub(19) as u64 {
        b = b.at(s(10 + k), subscribe(0.05));
    }
    b
}

#[test]
fn a_topic_delivers_every_message_once_to_every_subscriber_and_to_nobody_else() {
    let n = 30;
    let topic = TopicId::from_name("t");
    let mut w = partially_subscribed(n, 3)
        .at(s(40), publish(5, false, 0))
        .at(s(45), publish(30, true, 0))
        .at(s(52), publish(10, true, 2))
        .build()
        .unwrap();
    w.record();
    w.run();
    let subscribers: BTreeSet<usize> = (0..n)
        .filter(|&i| w.node(i).unwrap().inspect().is_subscribed(&topic))
        .collect();
    assert_eq!(subscribers.len(), 11, "one node a second, while 20 remain");
    let mut authors = BTreeSet::new();
    for (_, i, e) in w.events() {
        if let Event::Delivered { author, .. } = e {
            assert!(subscribers.contains(i), "non-subscriber {i} delivered");
            authors.insert(w.index_of(author).unwrap());
        }
    }
    assert!(authors.is_subset(&subscribers));
    // The simulator's rmr is the nodes' own count of redundant payload frames when every
    // message is measured; here the warm-up adds to the nodes' counts only.
    let (mut delivered, mut duplicates) = (0, 0);
    for i in &subscribers {
        let c = w.node(*i).unwrap().inspect();
        let c = c.broadcast_counters(&topic).unwrap();
        delivered += c.delivered;
        duplicates += c.duplicates;
    }
    assert_eq!(
        delivered,
        45 * 10,
        "45 messages, 10 subscribers other than the author"
    );
    let r = w.finish(0.0, None, None);
    let m = &r.metrics;
    assert_eq!(m.delivery_ratio, Some(1.0), "{m:?}");
    assert_eq!(m.duplicate_deliveries, Some(0));
    assert_eq!(m.payload_frames_to_nonsubscribers, Some(0));
    assert_eq!(m.forged_delivered, Some(0));
    let rmr = m.rmr.unwrap();
    assert!(rmr >= 0.0 && rmr <= duplicates as f64 / 400.0, "rmr {rmr}");
    assert!(m.ldh_max.is_some_and(|h| h >= 1));
    let lat = m.latency_ms.unwrap();
    assert!(lat.p50 > 0.0 && lat.p50 <= lat.p95 && lat.p99 <= lat.max);
    assert_eq!(r.series.latency_ms.len(), 40 * 10);
    assert_eq!(r.series.deliveries_over_time.last().unwrap().1, 400);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn unsubscribed_nodes_stop_delivering_and_leave_the_denominator() {
    let n = 30;
    let topic = TopicId::from_name("t");
    let mut w = partially_subscribed(n, 4)
        .at(s(40), publish(5, true, 1))
        .at(
            s(45),
            Action::Unsubscribe {
                topic: "t".into(),
                fraction: 0.5,
            },
        )
        .at(s(55), publish(10, true, 0))
        .build()
        .unwrap();
    w.run();
    let subscribers = (0..n)
        .filter(|&i| w.node(i).unwrap().inspect().is_subscribed(&topic))
        .count();
    assert_eq!(subscribers, 6, "half of 11 left, rounded down");
    let m = w.finish(0.0, None, None).metrics;
    // Deliveries before the unsubscribe to nodes that left do not count, nor are they expected.
    assert_eq!(m.delivery_ratio, Some(1.0), "{m:?}");
    assert_eq!(m.duplicate_deliveries, Some(0));
}

#[test]
fn forgers_and_replayers_get_nothing_delivered_that_was_not_published_or_already_delivered() {
    let mut w = Sim::builder()
        .nodes(40)
        .seed(8)
        .duration(s(150))
        .config("retention", ConfigValue::Duration(s(30)))
        .at(
            s(0),
            Action::Join {
                contacts: 1,
                spread: s(0),
            },
        )
        .at(s(10), subscribe(1.0))
        .at(
            s(15),
            Action::Byzantine {
                fraction: 0.1,
                behaviour: Behaviour::Forge,
                subnet: SubnetChoice::Shared,
                targets: DEFAULT_TARGETS,
            },
        )
        .at(
            s(15),
            Action::Byzantine {
                fraction: 0.12,
                behaviour: Behaviour::Replay,
                subnet: SubnetChoice::Shared,
                targets: DEFAULT_TARGETS,
            },
        )
        .at(s(20), publish(40, true, 0))
        .build()
        .unwrap();
    w.run();
    let adversaries: Vec<usize> = (0..w.len()).filter(|&i| w.adversary(i).is_some()).collect();
    assert_eq!(adversaries.len(), 8);
    for &i in &adversaries {
        let a = w.adversary(i).unwrap();
        assert!(
            a.payload_frames > 50,
            "adversary {i} sent {}",
            a.payload_frames
        );
    }
    let topic = TopicId::from_name("t");
    let (mut invalid, mut too_old) = (0, 0);
    for i in (0..w.len()).filter(|i| !adversaries.contains(i)) {
        let c = w.node(i).unwrap().inspect();
        invalid += c.counters().invalid_payloads;
        too_old += c.broadcast_counters(&topic).unwrap().too_old;
    }
    assert!(
        invalid > 100,
        "forgeries reached honest validators: {invalid}"
    );
    assert!(
        too_old > 100,
        "replays after the retention window: {too_old}"
    );
    let m = w.finish(0.0, None, None).metrics;
    assert_eq!(m.forged_delivered, Some(0));
    assert_eq!(m.duplicate_deliveries, Some(0));
}

#[test]
fn without_a_publish_the_delivery_metrics_are_null() {
    let m = Sim::builder()
        .nodes(8)
        .duration(s(20))
        .at(
            s(0),
            Action::Join {
                contacts: 1,
                spread: s(0),
            },
        )
        .at(s(5), subscribe(1.0))
        .run()
        .unwrap()
        .metrics;
    assert_eq!(m.delivery_ratio, None);
    assert_eq!(m.latency_ms, None);
    assert_eq!(m.rmr, None);
    assert_eq!(m.ldh_max, None);
    assert_eq!(m.forged_delivered, None);
    assert_eq!(m.duplicate_deliveries, None);
    assert_eq!(m.payload_frames_to_nonsubscribers, None);
}

/// Regression: when the node-level overlay dropped a neighbour whose connection a topic overlay
/// kept, a later NEIGHBOR or JOIN attempt to that peer waited for a dial that never came, timed
/// out, and dropped the peer; crash-half with seed 3 ended with the node-level overlay in two
/// parts (43 and 157 nodes) that never re-merged.
#[test]
fn a_connection_kept_by_a_topic_is_reused_by_the_node_level_overlay() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/crash-half.toml");
    let scenario = hearsay_sim::scenario::Scenario::load(&path).unwrap();
    let opts = hearsay_sim::run::RunOptions {
        seed: Some(3),
        nodes: None,
        crypto: hearsay_sim::world::CryptoChoice::Fast,
        ..Default::default()
    };
    let result = hearsay_sim::run::run_scenario(scenario, &opts).unwrap();
    assert_eq!(
        result.metrics.components,
        Some(1),
        "replay: hearsay-sim run sim/scenarios/crash-half.toml --seed 3"
    );
    assert_eq!(result.metrics.false_positives, Some(0));
}

#[test]
fn topic_neighbour_events_track_each_topic_overlay() {
    let n = 12;
    let topic = TopicId::from_name("t");
    let mut w = Sim::builder()
        .nodes(n)
        .seed(9)
        .duration(s(40))
        .at(
            s(0),
            Action::Join {
                contacts: 1,
                spread: s(5),
            },
        )
        .at(s(10), subscribe(1.0))
        .build()
        .unwrap();
    w.record();
    w.run();
    for i in 0..n {
        // Replaying the node's up/down events gives exactly its current topic neighbours.
        let mut replayed = BTreeSet::new();
        for (_, j, e) in w.events() {
            match e {
                Event::TopicNeighborUp { topic: t, peer } if *j == i && *t == topic => {
                    replayed.insert(*peer);
                }
                Event::TopicNeighborDown { topic: t, peer } if *j == i && *t == topic => {
                    replayed.remove(peer);
                }
                _ => {}
            }
        }
        let now: BTreeSet<_> = w
            .node(i)
            .unwrap()
            .inspect()
            .topic_neighbors(&topic)
            .into_iter()
            .collect();
        assert!(!now.is_empty(), "node {i} has topic neighbours");
        assert_eq!(replayed, now, "node {i}");
    }
}
