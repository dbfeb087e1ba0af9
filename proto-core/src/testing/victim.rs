//! One node under test and the hostile peers that talk to it.

use super::frames::{encode, hello, topic_join};
use super::identities::{node_with, record};
use super::time::{HOUR, T0};
use crate::membership::hyparview;
use crate::node::{Counters, FrameError};
use crate::{Config, Event, Frame, Identity, Node, PeerId, TimeDelta, Timestamp, Transmit};
use alloc::vec::Vec;
use bytes::Bytes;

/// One node (node number 0, see [`node_with`]) fed by peers the test speaks for: it sends
/// frames or raw bytes as any peer, and nothing the node outputs is delivered anywhere. The
/// node's transmits and events wait in its queues for the test to inspect ([`Victim::transmits`],
/// [`Victim::frames_to`], [`Victim::events`]) or throw away ([`Victim::drain`]).
///
/// ```
/// use hearsay_proto::testing::{Victim, identity};
/// use hearsay_proto::{Config, Frame};
/// use hearsay_proto::membership::hyparview::Message;
///
/// let mut v = Victim::new(Config::default());
/// let h = identity(1);
/// v.connect(&h); // connection, then a Hello with a valid record
/// v.send(&h, Frame::Membership(Message::Join)).unwrap();
/// assert_eq!(v.node.inspect().neighbors().collect::<Vec<_>>(), vec![h.peer_id()]);
/// ```
#[derive(Debug)]
pub struct Victim {
    /// The node under test.
    pub node: Node,
    /// The virtual time every input is given at; [`Victim::advance`] moves it and runs timers.
    pub now: Timestamp,
}

impl Victim {
    /// Node number 0 with `config` (its identity from the configuration's provider), at [`T0`].
    pub fn new(config: Config) -> Self {
        Victim {
            node: node_with(0, config),
            now: T0,
        }
    }

    /// A victim subscribed to `topic` whose only topic neighbour is `h`: `h` connected and
    /// joined the topic's overlay, so it is an eager Plumtree peer. Outputs so far are drained.
    pub fn subscribed(config: Config, topic: crate::TopicId, h: &Identity) -> Self {
        let mut v = Victim::new(config);
        v.node.subscribe(v.now, topic).expect("subscribes");
        v.connect(h);
        v.topic_join(h, topic);
        v.drain();
        assert_eq!(v.node.inspect().topic_neighbors(&topic), [h.peer_id()]);
        v
    }

    /// The node's counters.
    pub fn counters(&self) -> &Counters {
        self.node.inspect().counters()
    }

    /// `h` connects and completes the handshake with a record issued now, valid for `lifetime`.
    /// Panics if the node refuses the Hello.
    pub fn connect_for(&mut self, h: &Identity, lifetime: TimeDelta) {
        self.node.handle_connected(self.now, h.peer_id());
        let hello = hello(record(h, self.now, lifetime));
        self.send(h, hello).expect("hello accepted");
    }

    /// `h` connects and completes the handshake with a record valid for an hour.
    pub fn connect(&mut self, h: &Identity) {
        self.connect_for(h, HOUR);
    }

    /// The connection to `h` closes.
    pub fn disconnect(&mut self, h: &Identity) {
        self.node.handle_disconnected(self.now, h.peer_id());
    }

    /// `h` sends `frame`; the node's answer to `handle_frame`.
    pub fn send(&mut self, h: &Identity, frame: Frame) -> Result<(), FrameError> {
        self.send_bytes(h.peer_id(), encode(frame))
    }

    /// `from` sends `bytes` (anything: garbage, a truncated or padded frame).
    pub fn send_bytes(&mut self, from: PeerId, bytes: Bytes) -> Result<(), FrameError> {
        self.node.handle_frame(self.now, from, bytes)
    }

    /// `h` joins the node-level overlay (it becomes a neighbour). Panics if refused.
    pub fn join(&mut self, h: &Identity) {
        self.send(h, Frame::Membership(hyparview::Message::Join))
            .expect("join");
    }

    /// `h` joins `topic`'s overlay (it becomes a topic neighbour, an eager Plumtree peer).
    pub fn topic_join(&mut self, h: &Identity, topic: crate::TopicId) {
        self.send(h, topic_join(topic)).expect("topic join");
    }

    /// Every transmit the node queued, in order.
    pub fn transmits(&mut self) -> Vec<Transmit> {
        core::iter::from_fn(|| self.node.poll_transmit()).collect()
    }

    /// Every event the node queued, in order.
    pub fn events(&mut self) -> Vec<Event> {
        core::iter::from_fn(|| self.node.poll_event()).collect()
    }

    /// Throws away the queued transmits and events.
    pub fn drain(&mut self) {
        self.transmits();
        self.events();
    }

    /// The frames queued for `to`, decoded; the other transmits are thrown away.
    pub fn frames_to(&mut self, to: PeerId) -> Vec<Frame> {
        self.transmits()
            .into_iter()
            .filter_map(|t| match t {
                Transmit::Send { to: p, frame } if p == to => Frame::decode(&frame).ok(),
                _ => None,
            })
            .collect()
    }

    /// Advances the clock by `by`, running every timer that falls due on the way (and
    /// `handle_timeout` once more at the end).
    pub fn advance(&mut self, by: TimeDelta) {
        let target = self.now + by;
        while let Some(due) = self.node.poll_timeout().filter(|t| *t <= target) {
            self.now = self.now.max(due);
            self.node.handle_timeout(self.now);
        }
        self.now = target;
        self.node.handle_timeout(self.now);
    }
}
