//! Every application request is a `Command` through `Node::handle_command` (SPEC.md §8.2): a
//! driver that only ever calls `handle_command` gets what the convenience methods give.

use bytes::Bytes;
use hearsay_proto::discovery::foaf::Target;
use hearsay_proto::discovery::presence::presence_topic;
use hearsay_proto::node::{Accepted, Command, Event, NodeError};
use hearsay_proto::testing::{Net, node};
use hearsay_proto::{TimeDelta, TopicId};
use zeroize::Zeroizing;

#[test]
fn a_driver_that_only_sends_commands_subscribes_publishes_finds_and_beacons() {
    let mut net = Net::new(vec![node(1), node(2)]);
    net.join(1, 0);
    let now = net.now;
    let topic = TopicId::from_name("commands");
    for i in 0..2 {
        let r = net.nodes[i].handle_command(now, Command::Subscribe { topic });
        assert_eq!(r, Ok(Accepted::Done));
    }
    net.run();
    net.advance(TimeDelta::from_secs(2));

    // Publish answers with the message's id; the other node delivers that id.
    let payload = Bytes::from_static(b"through a command");
    let Ok(Accepted::Message { id }) = net.nodes[0].handle_command(
        now,
        Command::Publish {
            topic,
            payload: payload.clone(),
        },
    ) else {
        panic!("publish was not accepted with an id");
    };
    net.run();
    net.advance(TimeDelta::from_secs(2));
    let delivered: Vec<_> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            Event::Delivered {
                id: got,
                payload: p,
                ..
            } if *i == 1 => Some((*got, p.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![(id, payload)]);

    // Find answers with a query id; the query ends with FindDone for that id.
    let target = Target::Peer(net.id(1));
    let Ok(Accepted::Query { id: query }) = net.nodes[0].handle_command(
        net.now,
        Command::Find {
            target,
            ttl: Some(2),
        },
    ) else {
        panic!("find was not accepted with a query id");
    };
    net.run();
    net.advance(TimeDelta::from_secs(30));
    assert!(
        net.events
            .iter()
            .any(|(i, e)| *i == 0 && matches!(e, Event::FindDone { query: q, .. } if *q == query)),
        "no FindDone for the query the command started"
    );

    // PresenceStart answers with the group's topic; its Debug never shows the secret.
    let secret = [7u8; 32];
    let start = Command::PresenceStart {
        group_secret: Zeroizing::new(secret),
    };
    let shown = format!("{start:?}");
    assert!(
        !shown.contains('7'),
        "the secret leaked into Debug: {shown}"
    );
    let r = net.nodes[1].handle_command(net.now, start);
    assert_eq!(
        r,
        Ok(Accepted::PresenceGroup {
            topic: presence_topic(&secret)
        })
    );
    let r = net.nodes[1].handle_command(
        net.now,
        Command::PresenceStop {
            group: presence_topic(&secret),
        },
    );
    assert_eq!(r, Ok(Accepted::Done));

    // Refusals are the same typed errors as the methods'.
    let other = TopicId::from_name("not subscribed");
    assert_eq!(
        net.nodes[0].handle_command(net.now, Command::Unsubscribe { topic: other }),
        Err(NodeError::NotSubscribed { topic: other })
    );
    assert_eq!(
        net.nodes[0].handle_command(
            net.now,
            Command::Publish {
                topic: other,
                payload: Bytes::new()
            }
        ),
        Err(NodeError::NotSubscribed { topic: other })
    );
}
