//! N nodes wired together in memory, the way a runtime drives them: both ends of a connection
//! told, frames delivered in order, disconnects reported, timers fired in virtual time.

use super::frames::{encode, hello, hex};
use crate::node::{Command, Contact, FrameError};
use crate::{Event, Node, PeerId, PeerRecord, TimeDelta, Timestamp, Transmit};
use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;
use chacha20::ChaCha8Rng;
use core::fmt::Write as _;
use rand_core::{Rng, SeedableRng};

/// Deliveries one [`Net::run`] may make before it decides the nodes never fall quiet (two nodes
/// answering each other for ever at the same instant is a bug).
const MAX_DELIVERIES_PER_RUN: usize = 1_000_000;

/// What is on its way between the nodes, delivered first in, first out.
#[derive(Debug, Clone)]
enum Wire {
    /// A frame from node `from` to node `to`.
    Frame {
        from: usize,
        to: usize,
        bytes: Bytes,
    },
    /// Node `a` dialled node `b`: both are told the connection is up.
    Connected { a: usize, b: usize },
    /// Node `a` closed its connection to node `b`: both are told it is down.
    Disconnected { a: usize, b: usize },
    /// Node `a` dialled `peer`, outside the net: the dial fails.
    DialFailed { a: usize, peer: PeerId },
    /// Node `a` closed its connection to `peer`, outside the net.
    Closed { a: usize, peer: PeerId },
}

/// What a [`Net`] did with the frames the nodes sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Frames handed to their recipient.
    pub delivered: u64,
    /// Frames dropped by a cut.
    pub cut: u64,
    /// Frames dropped by the random loss.
    pub lost: u64,
    /// Frames to peers outside the net (dropped).
    pub to_outside: u64,
}

/// N nodes in memory. Every node's outputs go into one first-in, first-out queue that
/// [`Net::run`] delivers until every node is quiet; [`Net::advance`] moves virtual time, firing
/// timers in order and delivering what they send. Nodes are numbered by their place in
/// [`Net::nodes`].
///
/// - **Connections**: a dial to a node of the net connects both ends; a dial to anyone else
///   fails (`handle_disconnected`); a disconnect is reported to both ends.
/// - **Cuts**: a cut link carries no frames (counted in [`NetCounters::cut`]); connections
///   still open and close across it. [`Net::cut`], [`Net::cut_one_way`], [`Net::partition`],
///   [`Net::isolate`], [`Net::heal`].
/// - **Loss**: with [`Net::set_loss`], each frame not cut is dropped with a fixed probability,
///   drawn from a seeded rng: the same seed drops the same frames.
/// - **Peers outside the net** (hostile peers the test speaks for): [`Net::inject`] hands a node
///   any bytes as any peer, [`Net::connect_outside`] opens a connection with a Hello; frames to
///   such peers are counted and dropped, connections a node closes to them are listed in
///   [`Net::closed`].
/// - **Records**: every event lands in [`Net::events`] with its node's number;
///   [`Net::start_trace`] writes every delivery, its result and every event to a text trace.
///
/// ```
/// use hearsay_proto::testing::{Net, node};
/// use hearsay_proto::{Event, TimeDelta};
///
/// let mut net = Net::new((1..=3).map(node).collect());
/// net.join(1, 0);
/// net.join(2, 0);
/// assert!(net.events.iter().any(|(i, e)| *i == 2 && matches!(e, Event::NeighborUp { .. })));
/// // Node 2 alone on one side: nothing it sends arrives, nothing reaches it.
/// net.isolate(2);
/// net.advance(TimeDelta::from_secs(30));
/// assert!(net.counters.cut > 0);
/// ```
#[derive(Debug)]
pub struct Net {
    /// The nodes, by number.
    pub nodes: Vec<Node>,
    /// The virtual time inputs are given at.
    pub now: Timestamp,
    /// Every event the nodes emitted, with the emitting node's number, in order.
    pub events: Vec<(usize, Event)>,
    /// Connections the nodes closed to peers outside the net: (node, peer), in order.
    pub closed: Vec<(usize, PeerId)>,
    /// What happened to the frames sent so far.
    pub counters: NetCounters,
    in_flight: VecDeque<Wire>,
    cuts: BTreeSet<(usize, usize)>,
    loss: Option<(f64, ChaCha8Rng)>,
    trace: Option<String>,
    keep: usize,
    kept: Vec<(usize, usize, Bytes)>,
}

impl Net {
    /// A net of `nodes`, at [`T0`](super::T0), with no connection yet.
    pub fn new(nodes: Vec<Node>) -> Self {
        Net {
            nodes,
            now: super::T0,
            events: Vec::new(),
            closed: Vec::new(),
            counters: NetCounters::default(),
            in_flight: VecDeque::new(),
            cuts: BTreeSet::new(),
            loss: None,
            trace: None,
            keep: 0,
            kept: Vec::new(),
        }
    }

    /// Two connected nodes: `b` (node 1) joins through `a` (node 0), and their frames go back
    /// and forth until both are quiet. They are then each other's neighbour.
    pub fn pair(a: Node, b: Node) -> Self {
        let mut net = Net::new(vec![a, b]);
        net.join(1, 0);
        net
    }

    /// Node `i`'s peer id.
    pub fn id(&self, i: usize) -> PeerId {
        self.nodes[i].peer_id()
    }

    /// The number of the node whose peer id is `peer`, if it is in the net.
    pub fn index_of(&self, peer: PeerId) -> Option<usize> {
        self.nodes.iter().position(|n| n.peer_id() == peer)
    }

    /// Node `i`'s neighbours in the node-level overlay.
    pub fn neighbors(&self, i: usize) -> Vec<PeerId> {
        self.nodes[i].inspect().neighbors().collect()
    }

    /// Node `from` joins the overlay through node `to`, and the net runs until quiet.
    pub fn join(&mut self, from: usize, to: usize) {
        let contact = Contact {
            peer: self.id(to),
            addresses: Vec::new(),
        };
        let command = Command::Join {
            contacts: vec![contact],
        };
        self.nodes[from]
            .handle_command(self.now, command)
            .expect("join");
        self.run();
    }

    // ---------------------------------------------------------------- cuts and loss

    /// Frames from `from` to `to` are dropped (the other direction still carries them).
    pub fn cut_one_way(&mut self, from: usize, to: usize) {
        self.cuts.insert((from, to));
    }

    /// Frames between `a` and `b` are dropped, both ways.
    pub fn cut(&mut self, a: usize, b: usize) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Cuts every link between the nodes in `side` and the others, both ways: two partitions.
    pub fn partition(&mut self, side: &[usize]) {
        for &a in side {
            for b in (0..self.nodes.len()).filter(|b| !side.contains(b)) {
                self.cut(a, b);
            }
        }
    }

    /// Cuts node `i` off from every other node.
    pub fn isolate(&mut self, i: usize) {
        self.partition(&[i]);
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.cuts.clear();
    }

    /// Whether frames from `from` to `to` are dropped by a cut.
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cuts.contains(&(from, to))
    }

    /// From now on, each frame not cut is dropped with probability `rate` (0 to 1), drawn from
    /// an rng seeded with `seed`: the same seed (and the same run) drops the same frames. A
    /// rate of 0 turns loss off.
    pub fn set_loss(&mut self, rate: f64, seed: u64) {
        self.loss = (rate > 0.0).then(|| (rate, ChaCha8Rng::seed_from_u64(seed)));
    }

    // ---------------------------------------------------------------- records

    /// From now on, write every delivery (frames in hex), its result and every event to the
    /// trace ([`Net::trace`]): two runs of one scenario can then be compared byte for byte.
    pub fn start_trace(&mut self) {
        self.trace.get_or_insert_with(String::new);
    }

    /// The trace written since [`Net::start_trace`] (empty if it was not called).
    pub fn trace(&self) -> &str {
        self.trace.as_deref().unwrap_or("")
    }

    /// From now on, keep a copy of the first `limit` frames delivered, with sender and
    /// recipient ([`Net::kept`]).
    pub fn keep_frames(&mut self, limit: usize) {
        self.keep = limit;
    }

    /// The frames kept since [`Net::keep_frames`]: (from, to, bytes), in delivery order.
    pub fn kept(&self) -> &[(usize, usize, Bytes)] {
        &self.kept
    }

    // ---------------------------------------------------------------- peers outside the net

    /// Node `to` receives `bytes` from `from` (any peer, in the net or not), now; the node's
    /// answer to `handle_frame`. Nothing is delivered until the next [`Net::run`].
    pub fn inject(&mut self, to: usize, from: PeerId, bytes: Bytes) -> Result<(), FrameError> {
        self.nodes[to].handle_frame(self.now, from, bytes)
    }

    /// `record`'s peer, outside the net, connects to node `to` and sends its Hello; the node's
    /// answer to the Hello.
    pub fn connect_outside(&mut self, to: usize, record: &PeerRecord) -> Result<(), FrameError> {
        let peer = record.peer_id;
        self.nodes[to].handle_connected(self.now, peer);
        self.inject(to, peer, encode(hello(record.clone())))
    }

    // ---------------------------------------------------------------- running

    /// Drains every node's outputs into the net and delivers them in order until every node is
    /// quiet. Panics if the nodes never fall quiet.
    pub fn run(&mut self) {
        let mut deliveries = 0usize;
        loop {
            self.collect();
            let Some(item) = self.in_flight.pop_front() else {
                break;
            };
            deliveries += 1;
            assert!(
                deliveries <= MAX_DELIVERIES_PER_RUN,
                "the nodes never fall quiet at {:?}",
                self.now
            );
            self.deliver(item);
        }
    }

    /// Advances virtual time to `t`: delivers what is queued, then fires every timer due by
    /// `t` in order (each node's due timers at the instant they fall due), delivering what they
    /// send. Panics if a node is still due at or before `now` right after
    /// `handle_timeout(now)` (a driver would spin).
    pub fn advance_to(&mut self, t: Timestamp) {
        self.run();
        loop {
            let next = self.nodes.iter().filter_map(Node::poll_timeout).min();
            match next {
                Some(due) if due <= t => {
                    self.now = self.now.max(due);
                    let now = self.now;
                    for (i, n) in self.nodes.iter_mut().enumerate() {
                        if n.poll_timeout().is_some_and(|d| d <= now) {
                            n.handle_timeout(now);
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
        self.now = self.now.max(t);
    }

    /// Advances virtual time by `d` (see [`Net::advance_to`]).
    pub fn advance(&mut self, d: TimeDelta) {
        let t = self.now + d;
        self.advance_to(t);
    }

    fn deliver(&mut self, item: Wire) {
        let now = self.now;
        match item {
            Wire::Frame { from, to, bytes } => {
                let from_id = self.id(from);
                if let Some(trace) = &mut self.trace {
                    let _ = writeln!(trace, "frame {from}->{to} {}", hex(&bytes));
                }
                if self.kept.len() < self.keep {
                    self.kept.push((from, to, bytes.clone()));
                }
                self.counters.delivered += 1;
                let r = self.nodes[to].handle_frame(now, from_id, bytes);
                if let Some(trace) = &mut self.trace {
                    let _ = writeln!(trace, "  result {r:?}");
                }
            }
            Wire::Connected { a, b } => {
                self.note(format_args!("connected {a}<->{b}"));
                let (ia, ib) = (self.id(a), self.id(b));
                self.nodes[a].handle_connected(now, ib);
                self.nodes[b].handle_connected(now, ia);
            }
            Wire::Disconnected { a, b } => {
                self.note(format_args!("disconnected {a}<->{b}"));
                let (ia, ib) = (self.id(a), self.id(b));
                self.nodes[a].handle_disconnected(now, ib);
                self.nodes[b].handle_disconnected(now, ia);
            }
            Wire::DialFailed { a, peer } => {
                self.note(format_args!("dial failed {a}->{peer:?}"));
                self.nodes[a].handle_disconnected(now, peer);
            }
            Wire::Closed { a, peer } => {
                self.note(format_args!("closed {a}->{peer:?}"));
                self.nodes[a].handle_disconnected(now, peer);
                self.closed.push((a, peer));
            }
        }
    }

    fn note(&mut self, line: core::fmt::Arguments<'_>) {
        if let Some(trace) = &mut self.trace {
            let _ = writeln!(trace, "{line}");
        }
    }

    /// Whether the loss drops the next frame.
    fn lose(&mut self) -> bool {
        match &mut self.loss {
            Some((rate, rng)) => {
                let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                draw < *rate
            }
            None => false,
        }
    }

    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit() {
                let item = match t {
                    Transmit::Send { to, frame } => {
                        let Some(to) = self.index_of(to) else {
                            self.counters.to_outside += 1;
                            continue;
                        };
                        if self.is_cut(i, to) {
                            self.counters.cut += 1;
                            continue;
                        }
                        if self.lose() {
                            self.counters.lost += 1;
                            continue;
                        }
                        Wire::Frame {
                            from: i,
                            to,
                            bytes: frame,
                        }
                    }
                    Transmit::Connect { peer, .. } => match self.index_of(peer) {
                        Some(b) => Wire::Connected { a: i, b },
                        None => Wire::DialFailed { a: i, peer },
                    },
                    Transmit::Disconnect { peer } => match self.index_of(peer) {
                        Some(b) => Wire::Disconnected { a: i, b },
                        None => Wire::Closed { a: i, peer },
                    },
                };
                self.in_flight.push_back(item);
            }
            while let Some(e) = self.nodes[i].poll_event() {
                if let Some(trace) = &mut self.trace {
                    let _ = writeln!(trace, "event {i} {e:?}");
                }
                self.events.push((i, e));
            }
        }
    }
}
