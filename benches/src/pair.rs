//! Two [`Node`]s joined over a lossless in-memory pump and made neighbours in one topic: the
//! receiving end of the node-level benchmarks (`benches/plumtree.rs`, perf-report's node
//! throughput), fed pre-signed GOSSIP frames from its neighbour.

use bytes::Bytes;
use chacha20::ChaCha8Rng;
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::broadcast::plumtree::{Message as Plumtree, Payload};
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::node::{Command, Contact};
use hearsay_proto::{
    Config, CryptoProvider, Event, Frame, Identity, IdentitySeeds, Node, PeerId, TimeDelta,
    Timestamp, TopicId, Transmit,
};
use rand_core::SeedableRng;
use std::sync::Arc;

/// Delivers every queued transmit between the two nodes until both are quiet (events are
/// dropped).
pub fn pump(nodes: &mut [Node; 2], now: Timestamp) {
    loop {
        let mut quiet = true;
        for i in 0..2 {
            while let Some(t) = nodes[i].poll_transmit() {
                quiet = false;
                let (me, other) = (nodes[i].peer_id(), nodes[1 - i].peer_id());
                match t {
                    Transmit::Send { to, frame } if to == other => {
                        let _ = nodes[1 - i].handle_frame(now, me, frame);
                    }
                    Transmit::Connect { peer, .. } if peer == other => {
                        nodes[i].handle_connected(now, other);
                        nodes[1 - i].handle_connected(now, me);
                    }
                    Transmit::Connect { peer, .. } => nodes[i].handle_disconnected(now, peer),
                    Transmit::Disconnect { peer } if peer == other => {
                        nodes[i].handle_disconnected(now, other);
                        nodes[1 - i].handle_disconnected(now, me);
                    }
                    _ => {}
                }
            }
            while nodes[i].poll_event().is_some() {}
        }
        if quiet {
            return;
        }
    }
}

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
    /// Two nodes with `provider`'s crypto: node 1 joins through node 0, both subscribe to one
    /// topic, and virtual time runs until they are topic neighbours. Node 1 is returned.
    pub fn new(provider: Arc<dyn CryptoProvider>) -> Result<Receiver, String> {
        let config = Config {
            crypto: provider.clone(),
            ..Config::default()
        };
        let seeds: Vec<IdentitySeeds> = (0..2u64)
            .map(|i| IdentitySeeds::generate(&mut ChaCha8Rng::seed_from_u64(100 + i)))
            .collect();
        let mut now = crate::FIXTURE_NOW;
        let mk = |i: usize, now| {
            let id = Identity::from_seeds(&*provider, seeds[i].clone());
            Node::new(config.clone(), id, i as u64, now).map_err(|e| format!("node: {e:?}"))
        };
        let mut nodes = [mk(0, now)?, mk(1, now)?];
        let p0 = nodes[0].peer_id();
        nodes[1]
            .handle_command(
                now,
                Command::Join {
                    contacts: vec![Contact {
                        peer: p0,
                        addresses: Vec::new(),
                    }],
                },
            )
            .map_err(|e| format!("join: {e:?}"))?;
        pump(&mut nodes, now);
        let topic = TopicId::from_name("perf");
        for node in &mut nodes {
            node.subscribe(now, topic)
                .map_err(|e| format!("subscribe: {e:?}"))?;
        }
        pump(&mut nodes, now);
        let joined = |nodes: &[Node; 2]| nodes[1].inspect().topic_neighbors(&topic).contains(&p0);
        let mut waited = 0;
        while !joined(&nodes) && waited < 600 {
            now += TimeDelta::from_millis(100);
            for node in &mut nodes {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
            pump(&mut nodes, now);
            waited += 1;
        }
        if !joined(&nodes) {
            return Err("the two nodes never became topic neighbours".into());
        }
        let [_, node] = nodes;
        Ok(Receiver {
            node,
            sender: Identity::from_seeds(&*provider, seeds[0].clone()),
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
