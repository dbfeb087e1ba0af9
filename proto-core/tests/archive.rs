//! An anchor's mailbox through the Node surface (SPEC.md §15.7): with `plumtree.archive` on,
//! every retained message comes out as `Event::Archived`; a restarted node takes the records
//! back with `restore_message` (checked, never delivered again) and serves them, so a node that
//! was away catches up from it by reconciliation alone.
use bytes::Bytes;
use hearsay_proto::broadcast::plumtree::RestoreError;
use hearsay_proto::node::{Event, NodeError};
use hearsay_proto::testing::{Net, node, node_with};
use hearsay_proto::{Config, MessageId, TimeDelta, TopicId};
use std::collections::BTreeSet;

fn anchor_config() -> Config {
    let mut config = Config::default();
    config.topics.plumtree.archive = true;
    config
}

fn archived(net: &Net, who: usize) -> Vec<(TopicId, MessageId, Bytes)> {
    net.events
        .iter()
        .filter(|(i, _)| *i == who)
        .filter_map(|(_, e)| match e {
            Event::Archived {
                topic, id, record, ..
            } => Some((*topic, *id, record.clone())),
            _ => None,
        })
        .collect()
}

fn delivered(net: &Net, who: usize) -> Vec<MessageId> {
    net.events
        .iter()
        .filter(|(i, _)| *i == who)
        .filter_map(|(_, e)| match e {
            Event::Delivered { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_restarted_anchor_serves_what_it_archived_to_a_returning_node() {
    let topic = TopicId::from_name("mailbox");
    // 0: the anchor, 1: a publisher, 2: a plain subscriber.
    let mut net = Net::new(vec![node_with(1, anchor_config()), node(2), node(3)]);
    net.join(1, 0);
    net.join(2, 0);
    net.advance(TimeDelta::from_secs(2));
    for i in 0..3 {
        let now = net.now;
        net.nodes[i].subscribe(now, topic).unwrap();
    }
    net.advance(TimeDelta::from_secs(5));
    let mut published = BTreeSet::new();
    for k in 0..5u8 {
        let now = net.now;
        published.insert(net.nodes[1].publish(now, topic, &[k; 100]).unwrap());
        net.advance(TimeDelta::from_millis(300));
    }
    net.advance(TimeDelta::from_secs(2));

    // The anchor archived each message exactly once; plain nodes archive nothing.
    let records = archived(&net, 0);
    let ids: BTreeSet<MessageId> = records.iter().map(|(_, id, _)| *id).collect();
    assert_eq!(ids, published);
    assert_eq!(records.len(), published.len());
    assert!(records.iter().all(|(t, _, _)| *t == topic));
    assert!(archived(&net, 1).is_empty() && archived(&net, 2).is_empty());
    // The publisher's own messages are archived too when it is the anchor.
    let own = {
        let now = net.now;
        net.nodes[0]
            .publish(now, topic, b"from the anchor")
            .unwrap()
    };
    net.advance(TimeDelta::from_millis(500));
    let records = archived(&net, 0);
    assert!(records.iter().any(|(_, id, _)| *id == own));

    // Everyone else goes away; the anchor restarts from its records only.
    let later = net.now;
    let mut restarted = node_with(1, anchor_config());
    assert!(matches!(
        restarted.restore_message(later, &records[0].2),
        Err(NodeError::NotSubscribed { .. })
    ));
    restarted.subscribe(later, topic).unwrap();
    for (_, id, record) in &records {
        assert_eq!(restarted.restore_message(later, record).unwrap(), *id);
    }
    // Twice is refused; damaged bytes are refused; nothing is delivered by restoring.
    assert!(matches!(
        restarted.restore_message(later, &records[0].2),
        Err(NodeError::Restore(RestoreError::AlreadySeen))
    ));
    let mut forged = records[1].2.to_vec();
    let at = forged.len() - 10;
    forged[at] ^= 1;
    // (a flipped signature byte decodes but fails the check; a flipped structure byte fails
    // to decode)
    let mut fresh = node_with(1, anchor_config());
    fresh.subscribe(later, topic).unwrap();
    assert!(matches!(
        fresh.restore_message(later, &forged),
        Err(NodeError::Restore(RestoreError::Invalid) | NodeError::State(_))
    ));
    // Outside the retention window: refused as expired.
    let too_late = later + TimeDelta::from_secs(11 * 60);
    let mut late = node_with(1, anchor_config());
    late.subscribe(too_late, topic).unwrap();
    assert!(matches!(
        late.restore_message(too_late, &records[0].2),
        Err(NodeError::Restore(RestoreError::Expired))
    ));
    while let Some(e) = restarted.poll_event() {
        assert!(
            !matches!(e, Event::Delivered { .. } | Event::Archived { .. }),
            "restoring delivered or re-archived {e:?}"
        );
    }

    // A node that missed everything joins the restarted anchor alone and catches up.
    let mut net2 = Net::new(vec![restarted, node(4)]);
    net2.now = later;
    net2.join(1, 0);
    net2.advance(TimeDelta::from_secs(1));
    let now = net2.now;
    net2.nodes[1].subscribe(now, topic).unwrap();
    net2.advance(TimeDelta::from_secs(30));
    let got: BTreeSet<MessageId> = delivered(&net2, 1).into_iter().collect();
    let mut expected = published.clone();
    expected.insert(own);
    assert_eq!(
        got, expected,
        "the returning node lacks messages the anchor held"
    );
    assert_eq!(delivered(&net2, 1).len(), expected.len(), "delivered twice");
}
