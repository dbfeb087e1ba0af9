//! Broadcast through the Node surface: topic overlays found through the node-level overlay,
//! Plumtree delivering once to every subscriber and to nobody else.
use hearsay_proto::node::Event;
use hearsay_proto::testing::{Net, node};
use hearsay_proto::{MessageId, TimeDelta, TopicId};
use std::collections::{BTreeMap, BTreeSet};

fn deliveries(net: &Net) -> BTreeMap<(usize, MessageId), u32> {
    let mut out = BTreeMap::new();
    for (i, e) in &net.events {
        if let Event::Delivered { id, .. } = e {
            *out.entry((*i, *id)).or_insert(0) += 1;
        }
    }
    out
}

fn overlay(n: usize) -> Net {
    let mut net = Net::new((1..=n as u64).map(node).collect());
    for i in 1..n {
        net.join(i, (i - 1) / 2);
        net.advance(TimeDelta::from_millis(200));
    }
    net.advance(TimeDelta::from_secs(5));
    net
}

#[test]
fn every_subscriber_gets_each_message_once_and_nobody_else_carries_it() {
    let n = 16;
    let mut net = overlay(n);
    let topic = TopicId::from_name("news");
    let subscribers: BTreeSet<usize> = (0..n).filter(|i| i % 3 != 1).collect();
    for &i in &subscribers {
        let now = net.now;
        net.nodes[i].subscribe(now, topic).unwrap();
        net.run();
    }
    net.advance(TimeDelta::from_secs(10));
    for &i in &subscribers {
        assert!(
            !net.nodes[i].inspect().topic_neighbors(&topic).is_empty(),
            "subscriber {i} found no member of the topic"
        );
    }
    let mut ids = Vec::new();
    for k in 0..5 {
        let author = *subscribers.iter().nth(k * 2).unwrap();
        let now = net.now;
        ids.push((
            author,
            net.nodes[author].publish(now, topic, b"hello").unwrap(),
        ));
        net.advance(TimeDelta::from_millis(300));
    }
    net.advance(TimeDelta::from_secs(5));
    let got = deliveries(&net);
    for (author, id) in &ids {
        for &i in &subscribers {
            if i == *author {
                assert!(
                    !got.contains_key(&(i, *id)),
                    "author {i} delivered its own message"
                );
            } else {
                assert_eq!(
                    got.get(&(i, *id)),
                    Some(&1),
                    "node {i}, message from {author}"
                );
            }
        }
    }
    for i in (0..n).filter(|i| !subscribers.contains(i)) {
        assert!(
            got.keys().all(|(j, _)| *j != i),
            "non-subscriber {i} got a delivery"
        );
    }
}

#[test]
fn a_subscriber_cut_off_while_messages_flow_gets_them_by_reconciliation() {
    let n = 10;
    let mut net = overlay(n);
    let topic = TopicId::from_name("repair");
    for i in 0..n {
        let now = net.now;
        net.nodes[i].subscribe(now, topic).unwrap();
        net.run();
    }
    net.advance(TimeDelta::from_secs(10));
    let victim = n - 1;
    net.isolate(victim);
    let mut ids = Vec::new();
    for k in 0..3 {
        let now = net.now;
        ids.push(
            net.nodes[k]
                .publish(now, topic, b"while you were out")
                .unwrap(),
        );
        net.advance(TimeDelta::from_millis(200));
    }
    net.advance(TimeDelta::from_millis(500));
    let got = deliveries(&net);
    assert!(
        ids.iter().all(|id| !got.contains_key(&(victim, *id))),
        "the cut leaked"
    );
    net.heal();
    net.advance(TimeDelta::from_secs(30));
    let got = deliveries(&net);
    for id in &ids {
        for i in 0..n {
            let author = ids.iter().position(|x| x == id).unwrap();
            if i != author {
                assert_eq!(got.get(&(i, *id)), Some(&1), "node {i}");
            }
        }
    }
    let repaired: u64 = (0..n)
        .map(|i| {
            net.nodes[i]
                .inspect()
                .reconcile_counters(&topic)
                .unwrap()
                .pushed
                + net.nodes[i]
                    .inspect()
                    .reconcile_counters(&topic)
                    .unwrap()
                    .wanted
        })
        .sum();
    assert!(repaired >= 3, "reconciliation moved {repaired} messages");
}

#[test]
fn publishing_needs_a_subscription_and_a_payload_within_the_limit() {
    let mut net = overlay(2);
    let topic = TopicId::from_name("t");
    let now = net.now;
    assert_eq!(
        net.nodes[0].publish(now, topic, b"x"),
        Err(hearsay_proto::NodeError::NotSubscribed { topic })
    );
    net.nodes[0].subscribe(now, topic).unwrap();
    let max = hearsay_proto::broadcast::message::MAX_PAYLOAD;
    let err = net.nodes[0]
        .publish(now, topic, &vec![0; max + 1])
        .unwrap_err();
    assert!(err.to_string().contains(&max.to_string()), "{err}");
    // The largest payload travels: its frame is within the frame limit.
    net.nodes[1].subscribe(now, topic).unwrap();
    net.advance(TimeDelta::from_secs(5));
    let id = net.nodes[0].publish(net.now, topic, &vec![7; max]).unwrap();
    net.advance(TimeDelta::from_secs(1));
    assert_eq!(deliveries(&net).get(&(1, id)), Some(&1));
}

/// Refuses payloads that start with `x`, and otherwise checks the signature as the default does.
struct NoX(hearsay_proto::broadcast::plumtree::SignatureValidator);
impl hearsay_proto::broadcast::plumtree::Validator for NoX {
    fn validate(
        &self,
        m: &hearsay_proto::broadcast::message::SignedMessage,
        key: &hearsay_proto::crypto::VerifyingKeyBytes,
    ) -> Result<(), hearsay_proto::broadcast::message::MessageError> {
        if m.payload.first() == Some(&b'x') {
            return Err(hearsay_proto::broadcast::message::MessageError::BadSignature);
        }
        self.0.validate(m, key)
    }
}

#[test]
fn a_topic_validator_decides_what_is_delivered_and_forwarded() {
    // A line 0 - 1 - 2 in the topic: node 1 installs a stricter validator.
    let mut net = Net::new((1..=3).map(node).collect());
    net.cut(0, 2);
    net.join(1, 0);
    net.join(2, 1);
    net.advance(TimeDelta::from_secs(2));
    let topic = TopicId::from_name("strict");
    for i in 0..3 {
        let now = net.now;
        net.nodes[i].subscribe(now, topic).unwrap();
        net.run();
    }
    net.advance(TimeDelta::from_secs(5));
    assert!(
        !net.nodes[0]
            .inspect()
            .topic_neighbors(&topic)
            .contains(&net.id(2)),
        "not a line"
    );
    let strict = NoX(hearsay_proto::broadcast::plumtree::SignatureValidator(
        hearsay_proto::Config::default().crypto,
    ));
    net.nodes[1].set_validator(topic, Box::new(strict)).unwrap();
    let now = net.now;
    let refused = net.nodes[0].publish(now, topic, b"xylophone").unwrap();
    let accepted = net.nodes[0].publish(now, topic, b"accordion").unwrap();
    net.advance(TimeDelta::from_secs(3));
    let got = deliveries(&net);
    assert_eq!(got.get(&(1, accepted)), Some(&1));
    assert_eq!(got.get(&(2, accepted)), Some(&1));
    assert_eq!(got.get(&(1, refused)), None, "the validator refused it");
    assert_eq!(
        got.get(&(2, refused)),
        None,
        "node 1 must not forward what it refused"
    );
    assert_eq!(net.nodes[1].inspect().counters().invalid_payloads, 1);
}

#[test]
fn subscribing_before_joining_finds_the_topic_once_the_overlay_forms() {
    let n = 12;
    let mut net = Net::new((1..=n as u64).map(node).collect());
    let topic = TopicId::from_name("early");
    for i in 0..n {
        let now = net.now;
        net.nodes[i].subscribe(now, topic).unwrap();
    }
    for i in 1..n {
        net.join(i, 0);
    }
    net.advance(TimeDelta::from_secs(20));
    for i in 0..n {
        assert!(
            !net.nodes[i].inspect().topic_neighbors(&topic).is_empty(),
            "node {i} alone in the topic; node-level neighbours {:?}",
            net.neighbors(i).len()
        );
    }
    let id = net.nodes[3].publish(net.now, topic, b"early bird").unwrap();
    net.advance(TimeDelta::from_secs(3));
    let got = deliveries(&net);
    let missing: Vec<usize> = (0..n)
        .filter(|&i| i != 3 && got.get(&(i, id)) != Some(&1))
        .collect();
    assert!(missing.is_empty(), "missing at {missing:?}");
}
