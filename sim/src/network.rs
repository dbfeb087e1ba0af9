//! Nodes on a fixed-latency network, driven like a runtime drives them.

use crate::SIM_EPOCH;
use crate::scheduler::Scheduler;
use bytes::Bytes;
use hearsay_proto::node::{Command, Contact, Event, Transmit};
use hearsay_proto::{Config, Identity, IdentitySeeds, Node, PeerId, TimeDelta, Timestamp};
use rand_core::SeedableRng;
use std::collections::BTreeMap;

/// A node's position in the network (its creation order).
pub type NodeIndex = usize;

/// Something that happens in the simulated world.
#[derive(Debug, Clone)]
pub enum SimEvent {
    /// A frame reaches `to`.
    Deliver {
        /// Sender.
        from: NodeIndex,
        /// Receiver.
        to: NodeIndex,
        /// The frame.
        frame: Bytes,
    },
    /// A connection between `a` and `b` is up at both ends.
    Connected {
        /// The dialler.
        a: NodeIndex,
        /// The dialled.
        b: NodeIndex,
    },
    /// The connection between `a` and `b` is gone at both ends.
    Disconnected {
        /// One end.
        a: NodeIndex,
        /// The other.
        b: NodeIndex,
    },
    /// A node's timer.
    Timer {
        /// Whose.
        node: NodeIndex,
    },
}

/// Nodes on links of one fixed latency, with a running hash over everything that happened.
pub struct Network {
    nodes: Vec<Node>,
    index: BTreeMap<PeerId, NodeIndex>,
    /// The timer each node has asked for, to avoid scheduling duplicates.
    armed: Vec<Option<Timestamp>>,
    scheduler: Scheduler<SimEvent>,
    latency: TimeDelta,
    trace: blake3::Hasher,
    events: Vec<(Timestamp, NodeIndex, Event)>,
    frames_delivered: u64,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("nodes", &self.nodes.len())
            .field("now", &self.scheduler.now())
            .finish_non_exhaustive()
    }
}

impl Network {
    /// `n` nodes with identities and RNGs derived from `seed`, on links of `latency`.
    pub fn new(n: usize, seed: u64, latency: TimeDelta) -> Self {
        let mut nodes = Vec::with_capacity(n);
        let mut index = BTreeMap::new();
        for i in 0..n {
            let config = Config::default();
            let node_seed = blake3::derive_key(
                "hearsay-sim node seed",
                &[seed.to_le_bytes(), (i as u64).to_le_bytes()].concat(),
            );
            let mut rng = chacha20::ChaCha8Rng::from_seed(node_seed);
            let identity = Identity::from_seeds(&*config.crypto, IdentitySeeds::generate(&mut rng));
            let node = Node::new(config, identity, node_seed, SIM_EPOCH)
                .unwrap_or_else(|e| panic!("node {i}: {e}"));
            index.insert(node.peer_id(), i);
            nodes.push(node);
        }
        let mut net = Network {
            armed: vec![None; n],
            nodes,
            index,
            scheduler: Scheduler::new(SIM_EPOCH),
            latency,
            trace: blake3::Hasher::new(),
            events: Vec::new(),
            frames_delivered: 0,
        };
        for i in 0..n {
            net.drain(i);
        }
        net
    }

    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        self.scheduler.now()
    }

    /// The node at `i`.
    pub fn node(&self, i: NodeIndex) -> &Node {
        &self.nodes[i]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Application events so far, with the time and the node that emitted them.
    pub fn events(&self) -> &[(Timestamp, NodeIndex, Event)] {
        &self.events
    }

    /// Frames delivered so far.
    pub fn frames_delivered(&self) -> u64 {
        self.frames_delivered
    }

    /// A hash over every delivered frame and every event, in order.
    pub fn trace_hash(&self) -> blake3::Hash {
        self.trace.finalize()
    }

    /// Makes node `i` join through node `contact`.
    pub fn join(&mut self, i: NodeIndex, contact: NodeIndex) {
        let peer = self.nodes[contact].peer_id();
        let addresses = self.nodes[contact].inspect().record().addresses.to_vec();
        let now = self.now();
        self.nodes[i]
            .handle_command(
                now,
                Command::Join {
                    contacts: vec![Contact { peer, addresses }],
                },
            )
            .unwrap_or_else(|e| panic!("join: {e}"));
        self.drain(i);
    }

    /// Runs until virtual time `until`.
    pub fn run_until(&mut self, until: Timestamp) {
        while let Some((now, event)) = self.scheduler.pop_until(until) {
            self.trace.update(format!("{now:?} {event:?}\n").as_bytes());
            match event {
                SimEvent::Deliver { from, to, frame } => {
                    self.frames_delivered += 1;
                    let from_id = self.nodes[from].peer_id();
                    // Refusals are counted by the node itself.
                    let _ = self.nodes[to].handle_frame(now, from_id, frame);
                    self.drain(to);
                }
                SimEvent::Connected { a, b } => {
                    let (ia, ib) = (self.nodes[a].peer_id(), self.nodes[b].peer_id());
                    self.nodes[a].handle_connected(now, ib);
                    self.nodes[b].handle_connected(now, ia);
                    self.drain(a);
                    self.drain(b);
                }
                SimEvent::Disconnected { a, b } => {
                    let (ia, ib) = (self.nodes[a].peer_id(), self.nodes[b].peer_id());
                    self.nodes[a].handle_disconnected(now, ib);
                    self.nodes[b].handle_disconnected(now, ia);
                    self.drain(a);
                    self.drain(b);
                }
                SimEvent::Timer { node } => {
                    if self.armed[node] == Some(now) {
                        self.armed[node] = None;
                        self.nodes[node].handle_timeout(now);
                        self.drain(node);
                    }
                }
            }
        }
        self.scheduler.advance_to(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: TimeDelta) {
        let until = self.now() + d;
        self.run_until(until);
    }

    /// Carries out node `i`'s outputs and re-arms its timer.
    fn drain(&mut self, i: NodeIndex) {
        let now = self.now();
        while let Some(t) = self.nodes[i].poll_transmit() {
            match t {
                Transmit::Send { to, frame } => {
                    if let Some(&to) = self.index.get(&to) {
                        self.scheduler
                            .schedule(now + self.latency, SimEvent::Deliver { from: i, to, frame });
                    }
                }
                Transmit::Connect { peer, .. } => {
                    if let Some(&b) = self.index.get(&peer) {
                        // One round trip to set a connection up.
                        self.scheduler.schedule(
                            now + self.latency.saturating_mul(2),
                            SimEvent::Connected { a: i, b },
                        );
                    }
                }
                Transmit::Disconnect { peer } => {
                    if let Some(&b) = self.index.get(&peer) {
                        self.scheduler
                            .schedule(now + self.latency, SimEvent::Disconnected { a: i, b });
                    }
                }
                _ => {}
            }
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.trace
                .update(format!("{now:?} event {i} {e:?}\n").as_bytes());
            self.events.push((now, i, e));
        }
        if let Some(t) = self.nodes[i].poll_timeout()
            && self.armed[i].is_none_or(|armed| t < armed)
        {
            self.armed[i] = Some(t);
            self.scheduler.schedule(t, SimEvent::Timer { node: i });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn star(n: usize, seed: u64) -> Network {
        let mut net = Network::new(n, seed, TimeDelta::from_millis(20));
        for i in 1..n {
            net.join(i, 0);
        }
        net.run_for(TimeDelta::from_secs(1));
        net
    }

    #[test]
    fn nodes_joining_one_hub_all_become_its_neighbours_in_two_round_trips() {
        let net = star(8, 3);
        assert_eq!(net.node(0).inspect().neighbors().count(), 7);
        for i in 1..8 {
            assert_eq!(
                net.node(i).inspect().neighbors().collect::<Vec<_>>(),
                vec![net.node(0).peer_id()]
            );
        }
        // Connect (one round trip, 40 ms) then one Hello each way (20 ms).
        let last_up = net
            .events()
            .iter()
            .filter(|(_, _, e)| matches!(e, Event::NeighborUp { .. }))
            .map(|(t, _, _)| *t)
            .max()
            .unwrap();
        assert_eq!(last_up - SIM_EPOCH, TimeDelta::from_millis(60));
        assert_eq!(net.frames_delivered(), 14);
    }

    #[test]
    fn same_seed_same_trace_and_different_seed_different_trace() {
        assert_eq!(star(6, 9).trace_hash(), star(6, 9).trace_hash());
        assert_ne!(star(6, 9).trace_hash(), star(6, 10).trace_hash());
    }

    #[test]
    fn timers_fire_in_virtual_time_record_refreshes_reach_neighbours() {
        let mut net = star(3, 1);
        let before = net.node(1).inspect().record().issued_at;
        net.run_for(TimeDelta::from_secs(3600));
        let after = net.node(1).inspect().record().clone();
        assert!(
            after.issued_at > before,
            "node 1 never refreshed its record"
        );
        assert_eq!(
            net.node(0).inspect().known_record(&after.peer_id),
            Some(&after)
        );
    }
}
