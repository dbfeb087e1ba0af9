//! Broadcast through the Node surface: topic overlays found through the node-level overlay,
//! Plumtree delivering once to every subscriber and to nobody else.
mod common;

use common::{Net, node};
use hearsay_proto::node::Event;
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
    let mut net = Net::new((0..n as u8).map(|i| node(i + 1)).collect());
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
