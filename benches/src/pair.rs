//! Two [`Node`]s joined over the core harness's lossless in-memory net
//! ([`Net::pair`](hearsay_proto::testing::Net::pair)) and made neighbours in one topic: the
//! receiving end of the node-level benchmarks (`benches/plumtree.rs`, perf-report's node
//! throughput), fed pre-signed GOSSIP frames from its neighbour.

use bytes::Bytes;
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::broadcast::plumtree::{Message as Plumtree, Payload};
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::testing::{Net, identity_with, node_with};
use hearsay_proto::{
    Config, CryptoProvider, Event, Frame, Identity, Node, PeerId, TimeDelta, Timestamp, TopicId,
};
use std::sync::Arc;

/// A receiving node whose topic neighbour is `sender`.
#[derive(Debug)]
pub struct Receiver {
    /// The node under test.
    pub node: Node,
    /// Its neighbour, the frames' sender and the messages' author.
    pub sender: Identity,
    /// The topic the two share.
    pub topic: TopicId,
    /// The (virtual) instant the pair is at.
    pub now: Timestamp,
}

impl Receiver {
    /// Two nodes with `provider`'s crypto (harness nodes 100 and 101): node 1 joins through
    /// node 0, both subscribe to one topic, and virtual time runs until they are topic
    /// neighbours. Node 1 is returned.
    pub fn new(provider: Arc<dyn CryptoProvider>) -> Result<Receiver, String> {
        let config = Config {
            crypto: provider.clone(),
            ..Config::default()
        };
        let mut net = Net::pair(node_with(100, config.clone()), node_with(101, config));
        let topic = TopicId::from_name("perf");
        let now = net.now;
        for node in &mut net.nodes {
            node.subscribe(now, topic)
                .map_err(|e| format!("subscribe: {e:?}"))?;
        }
        let p0 = net.id(0);
        let joined = |net: &Net| net.nodes[1].inspect().topic_neighbors(&topic).contains(&p0);
        let mut waited = 0;
        while !joined(&net) && waited < 600 {
            net.advance(TimeDelta::from_millis(100));
            net.events.clear();
            waited += 1;
        }
        if !joined(&net) {
            return Err("the two nodes never became topic neighbours".into());
        }
        let now = net.now;
        let node = net.nodes.swap_remove(1);
        Ok(Receiver {
            node,
            sender: identity_with(&*provider, 100),
            topic,
            now,
        })
    }

    /// The sender's peer id.
    pub fn sender_id(&self) -> PeerId {
        self.sender.peer_id()
    }

    /// `n` distinct GOSSIP frames of `len`-byte messages signed by the sender (sequence numbers
    /// `first..first + n`), as the sender would push them.
    pub fn gossip_frames(&self, first: u64, n: usize, len: usize) -> Vec<Bytes> {
        gossip_frames(&self.sender, self.topic, self.now, first, n, len)
    }

    /// Feeds one frame from the sender and drains what the node queued; returns how many
    /// messages it delivered.
    pub fn feed(&mut self, frame: Bytes) -> usize {
        let from = self.sender.peer_id();
        let _ = self.node.handle_frame(self.now, from, frame);
        while self.node.poll_transmit().is_some() {}
        let mut delivered = 0;
        while let Some(e) = self.node.poll_event() {
            if matches!(e, Event::Delivered { .. }) {
                delivered += 1;
            }
        }
        delivered
    }
}

/// `n` distinct GOSSIP frames of `len`-byte messages by `author` on `topic` at `now`, sequence
/// numbers `first..first + n` (the first eight payload bytes are the sequence number).
pub fn gossip_frames(
    author: &Identity,
    topic: TopicId,
    now: Timestamp,
    first: u64,
    n: usize,
    len: usize,
) -> Vec<Bytes> {
    (first..first + n as u64)
        .map(|seq| {
            let mut payload = vec![0u8; len.max(8)];
            payload[..8].copy_from_slice(&seq.to_le_bytes());
            payload.truncate(len);
            let message = SignedMessage::publish(author, topic, seq + 1, now, &payload)
                .expect("the message signs");
            Frame::Topic(TopicMessage::Broadcast {
                topic,
                message: Plumtree::Gossip(Payload {
                    message,
                    author_key: author.verifying_key().clone(),
                    hops: 0,
                }),
            })
            .encode()
            .expect("fits a frame")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_proto::crypto::InsecureTestProvider;

    #[test]
    fn the_receiver_delivers_what_its_neighbour_sends() {
        let mut r = Receiver::new(Arc::new(InsecureTestProvider)).expect("the pair forms");
        let frames = r.gossip_frames(0, 3, 100);
        let delivered: usize = frames.into_iter().map(|f| r.feed(f)).sum();
        assert_eq!(delivered, 3);
    }
}
