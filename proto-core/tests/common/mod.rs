//! Test support: deterministic identities and a tiny in-memory network that drives Nodes the
//! way a runtime does (connect both ends, deliver frames in order, report disconnects).
#![allow(dead_code)]

use bytes::Bytes;
use hearsay_proto::node::{Event, Transmit};
use hearsay_proto::{Config, Identity, IdentitySeeds, Node, PeerId, TimeDelta, Timestamp};
use rand_core::SeedableRng;
use std::collections::VecDeque;
use std::fmt::Write as _;

/// A fixed start time: 2027-01-15T08:00:00Z.
pub const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

pub fn identity(seed: u8) -> Identity {
    let config = Config::default();
    let mut rng = chacha20::ChaCha8Rng::from_seed([seed; 32]);
    Identity::from_seeds(&*config.crypto, IdentitySeeds::generate(&mut rng))
}

pub fn node(seed: u8) -> Node {
    node_with(seed, Config::default())
}

pub fn node_with(seed: u8, config: Config) -> Node {
    Node::new(config, identity(seed), u64::from(seed), T0).unwrap()
}

/// What crossed the in-memory network, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    Frame {
        from: usize,
        to: usize,
        bytes: Bytes,
    },
    Connected {
        a: usize,
        b: usize,
    },
    Disconnected {
        a: usize,
        b: usize,
    },
}

pub struct Net {
    pub nodes: Vec<Node>,
    pub now: Timestamp,
    in_flight: VecDeque<Wire>,
    pub events: Vec<(usize, Event)>,
    pub trace: String,
    /// Transmits dropped on the floor instead of delivered, per (from, to) pair.
    pub cut: Vec<(usize, usize)>,
}

impl Net {
    pub fn new(nodes: Vec<Node>) -> Self {
        Net {
            nodes,
            now: T0,
            in_flight: VecDeque::new(),
            events: Vec::new(),
            trace: String::new(),
            cut: Vec::new(),
        }
    }

    pub fn index_of(&self, peer: PeerId) -> Option<usize> {
        self.nodes.iter().position(|n| n.peer_id() == peer)
    }

    pub fn id(&self, i: usize) -> PeerId {
        self.nodes[i].peer_id()
    }

    /// Drains every node's outputs into the network, then delivers until quiet.
    pub fn run(&mut self) {
        loop {
            self.collect();
            let Some(item) = self.in_flight.pop_front() else {
                break;
            };
            let now = self.now;
            match item {
                Wire::Frame { from, to, bytes } => {
                    let from_id = self.id(from);
                    writeln!(self.trace, "frame {from}->{to} {}", hex(&bytes)).unwrap();
                    let r = self.nodes[to].handle_frame(now, from_id, bytes);
                    writeln!(self.trace, "  result {r:?}").unwrap();
                }
                Wire::Connected { a, b } => {
                    writeln!(self.trace, "connected {a}<->{b}").unwrap();
                    let (ia, ib) = (self.id(a), self.id(b));
                    self.nodes[a].handle_connected(now, ib);
                    self.nodes[b].handle_connected(now, ia);
                }
                Wire::Disconnected { a, b } => {
                    writeln!(self.trace, "disconnected {a}<->{b}").unwrap();
                    let (ia, ib) = (self.id(a), self.id(b));
                    self.nodes[a].handle_disconnected(now, ib);
                    self.nodes[b].handle_disconnected(now, ia);
                }
            }
        }
    }

    /// Advances time to `t`, firing timers in order.
    pub fn advance_to(&mut self, t: Timestamp) {
        loop {
            let next = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(due) if due <= t => {
                    self.now = self.now.max(due);
                    let now = self.now;
                    for (i, n) in self.nodes.iter_mut().enumerate() {
                        if n.poll_timeout().is_some_and(|d| d <= now) {
                            n.handle_timeout(now);
                            // The contract: after handle_timeout(now) nothing is due at or
                            // before now, or a driver would spin.
                            let next = n.poll_timeout();
                            assert!(
                                next.is_none_or(|t| t > now),
                                "node {i} still due at {next:?} after handle_timeout({now:?})"
                            );
                        }
                    }
                    self.run();
                }
                _ => break,
            }
        }
        self.now = t;
    }

    pub fn advance(&mut self, d: TimeDelta) {
        let t = self.now + d;
        self.advance_to(t);
    }

    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit() {
                match t {
                    Transmit::Send { to, frame } => {
                        let to = self.index_of(to).expect("send to unknown node");
                        if !self.cut.contains(&(i, to)) {
                            self.in_flight.push_back(Wire::Frame {
                                from: i,
                                to,
                                bytes: frame,
                            });
                        }
                    }
                    Transmit::Connect { peer, .. } => {
                        if let Some(b) = self.index_of(peer) {
                            self.in_flight.push_back(Wire::Connected { a: i, b });
                        }
                    }
                    Transmit::Disconnect { peer } => {
                        let b = self.index_of(peer).expect("disconnect unknown node");
                        self.in_flight.push_back(Wire::Disconnected { a: i, b });
                    }
                    other => panic!("unexpected transmit {other:?}"),
                }
            }
            while let Some(e) = self.nodes[i].poll_event() {
                writeln!(self.trace, "event {i} {e:?}").unwrap();
                self.events.push((i, e));
            }
        }
    }

    /// Node `from` joins through node `to`, and the network runs until quiet.
    pub fn join(&mut self, from: usize, to: usize) {
        let contact = hearsay_proto::node::Contact {
            peer: self.id(to),
            addresses: vec![],
        };
        let command = hearsay_proto::node::Command::Join {
            contacts: vec![contact],
        };
        self.nodes[from].handle_command(self.now, command).unwrap();
        self.run();
    }

    pub fn neighbors(&self, i: usize) -> Vec<PeerId> {
        self.nodes[i].inspect().neighbors().collect()
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
