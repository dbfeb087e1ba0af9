//! The link model: QUIC-like connections between nodes (set up in one round trip, reliable
//! and ordered per direction, torn down explicitly or after `idle_timeout` of silence), the
//! scenario's latency distribution, loss, duplication and reordering, and partitions (cuts).

use super::{Ev, NodeState, World};
use crate::broadcast;
use crate::scenario::{LatencyDist, LossMode};
use bytes::Bytes;
use hearsay_proto::node::Transmit;
use hearsay_proto::{PeerId, TimeDelta, Timestamp};
use rand_core::Rng;

/// A connection between two nodes.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    a: usize,
    b: usize,
    /// Whether each end's core currently believes it is connected.
    open: [bool; 2],
    /// Set while the connection cannot carry frames both ways (a dead, hung or cut end).
    broken_since: Option<Timestamp>,
    /// An end restarted: this connection can never carry frames again.
    dead: bool,
}

impl Conn {
    fn side(&self, node: usize) -> usize {
        usize::from(node != self.a)
    }
    fn other(&self, node: usize) -> usize {
        if node == self.a { self.b } else { self.a }
    }
}

/// A connection between two nodes as [`World::link_between`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkState {
    /// Both ends are up.
    Open,
    /// Being set up.
    Pending,
    /// None, or one that cannot carry frames any more.
    None,
}

/// What happened to frames on the links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames put on a connection.
    pub sent: u64,
    /// Frames handed to the receiving node.
    pub delivered: u64,
    /// Frames lost to a partition.
    pub lost_partition: u64,
    /// Frames lost to link loss (`drop` mode).
    pub lost_loss: u64,
    /// Frames lost because an end was crashed, hung, or the connection was closed.
    pub lost_dead: u64,
    /// Frames delivered a second time (link duplication).
    pub duplicated: u64,
}

/// One frame handed to a node (recorded when the delivery log is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When.
    pub at: Timestamp,
    /// Sender.
    pub from: usize,
    /// Receiver.
    pub to: usize,
    /// The frame.
    pub frame: Bytes,
}

/// Partition state: group per node; `oneway` cuts only group 0's frames to the others.
#[derive(Debug, Clone)]
pub(super) struct Cut {
    group: Vec<u16>,
    oneway: bool,
}

/// The key of a directed pair of nodes in `last_delivery`.
fn pair(from: usize, to: usize) -> (u32, u32) {
    (from as u32, to as u32)
}

impl World {
    /// Whether frames from `a` reach `b` (partitions only; not node liveness).
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        match &self.cut {
            None => true,
            Some(cut) => {
                let (ga, gb) = (self.cut_group(cut, a), self.cut_group(cut, b));
                ga == gb || (cut.oneway && ga != 0)
            }
        }
    }

    /// The partition group of node `i`: by its number for the scenario's nodes; an identity an
    /// adversary made sits where its attacker does.
    fn cut_group(&self, cut: &Cut, i: usize) -> u16 {
        match cut.group.get(i) {
            Some(g) => *g,
            None => self
                .made_by(i)
                .and_then(|c| cut.group.get(c))
                .copied()
                .unwrap_or(u16::MAX),
        }
    }

    /// The state of the connection between `a` and `b`, as the world carries it.
    pub(super) fn link_between(&self, a: usize, b: usize) -> LinkState {
        match self
            .pair_conn
            .get(&(a.min(b), a.max(b)))
            .and_then(|id| self.conns.get(id))
        {
            Some(c) if c.dead || c.broken_since.is_some() => LinkState::None,
            Some(c) if c.open[0] && c.open[1] => LinkState::Open,
            Some(_) => LinkState::Pending,
            None => LinkState::None,
        }
    }

    /// One draw from the scenario's latency distribution.
    fn latency(&mut self) -> TimeDelta {
        match &self.net.latency {
            LatencyDist::Fixed(v) => *v,
            LatencyDist::Uniform { min, max } => {
                let span = max.as_micros().saturating_sub(min.as_micros());
                TimeDelta::from_micros(
                    min.as_micros()
                        + if span == 0 {
                            0
                        } else {
                            self.rng.next_u64() % (span + 1)
                        },
                )
            }
            LatencyDist::LogNormal { median, p99 } => {
                // ln L ~ N(mu, sigma): mu = ln median, sigma = (ln p99 - mu) / z99.
                let mu = (median.as_micros().max(1) as f64).ln();
                let sigma = ((p99.as_micros().max(1) as f64).ln() - mu).max(0.0) / 2.326_347_874;
                let (u1, u2) = (self.unit(), self.unit());
                let z = (-2.0 * u1.max(f64::MIN_POSITIVE).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * u2).cos();
                TimeDelta::from_micros((mu + sigma * z).exp() as u64)
            }
        }
    }

    /// A uniform draw from [0, 1).
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Whether both ends of a connection between `a` and `b` believe it is up.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.pair_conn
            .get(&(a.min(b), a.max(b)))
            .and_then(|id| self.conns.get(id))
            .is_some_and(|c| c.open[0] && c.open[1])
    }

    /// Splits the nodes into consecutive groups of the given fractions (the rest form one more
    /// group); `oneway` cuts only group 0's frames to the others.
    pub(super) fn partition(&mut self, now: Timestamp, groups: &[f64], oneway: bool) {
        // The scenario's nodes; identities adversaries made follow their attackers.
        let n = self.base_nodes;
        let mut group = vec![groups.len() as u16; n];
        let mut start = 0usize;
        let mut acc = 0.0;
        for (g, f) in groups.iter().enumerate() {
            acc += f;
            let stop = ((acc * n as f64) + 1e-9).floor() as usize;
            for slot in group.iter_mut().take(stop.min(n)).skip(start) {
                *slot = g as u16;
            }
            start = stop.min(n);
        }
        self.cut = Some(Cut { group, oneway });
        self.refresh_health(now, None);
    }

    /// Node `i` restarted: the connections of its previous life can never work again (QUIC
    /// state is gone).
    pub(super) fn forget_connections(&mut self, i: usize) {
        for id in self.conns_of.get(&i).into_iter().flatten() {
            if let Some(c) = self.conns.get_mut(id) {
                c.dead = true;
                c.open[c.side(i)] = false;
            }
        }
    }

    /// A frame arrives at `to` over connection `conn` (unless the connection or `to` is gone).
    pub(super) fn deliver(
        &mut self,
        now: Timestamp,
        from: usize,
        to: usize,
        conn: u64,
        frame: Bytes,
    ) {
        // "D", time, from, to, the frame's length and a 64-bit digest of it (little-endian
        // u64s): one update of 41 bytes. Hashing every frame's bytes into the trace was ~5 % of
        // a 10,000-node run (3.5 GB of frames); the digest changes with any byte of the frame.
        use core::hash::BuildHasher;
        let digest =
            foldhash::fast::FixedState::with_seed(0x6865_6172_7361_7921).hash_one(&frame[..]);
        let mut head = [0u8; 41];
        head[0] = b'D';
        head[1..9].copy_from_slice(&now.as_micros().to_le_bytes());
        head[9..17].copy_from_slice(&(from as u64).to_le_bytes());
        head[17..25].copy_from_slice(&(to as u64).to_le_bytes());
        head[25..33].copy_from_slice(&(frame.len() as u64).to_le_bytes());
        head[33..41].copy_from_slice(&digest.to_le_bytes());
        self.trace.update(&head);
        let Some(c) = self.conns.get(&conn) else {
            self.stats.lost_dead += 1;
            return;
        };
        if !c.open[c.side(to)] || !self.running(to) {
            self.stats.lost_dead += 1;
            return;
        }
        self.stats.delivered += 1;
        if let Some(log) = self.delivery_log.as_mut() {
            log.push(Delivery {
                at: now,
                from,
                to,
                frame: frame.clone(),
            });
        }
        match self.nodes[to].adversary.as_mut() {
            Some(adv) => adv.incoming(&frame),
            None => {
                if self.broadcast.publishing()
                    && let Some((topic, payload)) = broadcast::payload_of(&frame)
                {
                    let subscribed = self.nodes[to]
                        .node
                        .as_ref()
                        .is_some_and(|n| n.inspect().is_subscribed(&topic));
                    self.broadcast
                        .frame_received(&payload.message.id(), subscribed);
                }
            }
        }
        if self.sybil_controller(to).is_some() && self.sybil_heard(now, to, from, &frame) {
            return; // membership and the rest are the attacker's business, not its node's
        }
        let peer = self.nodes[from].peer;
        if let Some(node) = self.nodes[to].node.as_mut() {
            // Refusals are counted by the node; the sim reads the counters.
            let _ = node.handle_frame(now, peer, frame);
        }
        self.drain(to);
    }

    /// One end of a new connection learns that it is up.
    pub(super) fn conn_up(&mut self, now: Timestamp, node: usize, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.dead {
            return;
        }
        let side = c.side(node);
        let peer_index = c.other(node);
        if self.nodes[node].state != NodeState::Running && self.nodes[node].state != NodeState::Left
        {
            return; // a crashed or hung end never learns of it; idle timeout cleans up
        }
        c.open[side] = true;
        let peer = self.nodes[peer_index].peer;
        // The connection's remote end is in the peer's address group (contract v4 `subnets`).
        let group = hearsay_proto::AddressGroup::of(super::sim_socket(
            peer_index,
            self.nodes[peer_index].subnet,
        ));
        if let Some(n) = self.nodes[node].node.as_mut() {
            n.handle_connected_in(now, peer, group);
        }
        self.drain(node);
    }

    /// A dial from `node` to `peer` failed. As a real driver does (SPEC.md §20.5), the node is
    /// not told while a connection to `peer` is up at its end: one appeared meanwhile (the peer
    /// came back and dialled in), and reporting it gone would leave the peer's end open alone.
    pub(super) fn dial_failed(&mut self, now: Timestamp, node: usize, peer: PeerId) {
        let connected = self.index.get(&peer).is_some_and(|&j| {
            self.pair_conn
                .get(&(node.min(j), node.max(j)))
                .and_then(|id| self.conns.get(id))
                .is_some_and(|c| !c.dead && c.open[c.side(node)])
        });
        if self.running(node) && !connected {
            if let Some(n) = self.nodes[node].node.as_mut() {
                n.handle_disconnected(now, peer);
            }
            self.drain(node);
        }
    }

    /// `idle_timeout` after connection `conn` broke at `since`: if it is still broken, both
    /// ends learn that it is gone.
    pub(super) fn idle_check(&mut self, now: Timestamp, conn: u64, since: Timestamp) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.broken_since == Some(since) {
            let (a, b) = (c.a, c.b);
            self.conn_down(now, a, conn);
            self.conn_down(now, b, conn);
        }
    }

    /// `node` learns that connection `conn` is gone; the connection is dropped once both ends
    /// know.
    pub(super) fn conn_down(&mut self, now: Timestamp, node: usize, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let side = c.side(node);
        let peer_index = c.other(node);
        if c.open[side] {
            c.open[side] = false;
            if let Some(adv) = self.nodes[node].adversary.as_mut()
                && adv.sybil_of().is_some()
            {
                adv.flagged = true; // disconnected: its attacker replaces it
            }
            let peer = self.nodes[peer_index].peer;
            match self.nodes[node].state {
                NodeState::Running | NodeState::Left => {
                    if let Some(n) = self.nodes[node].node.as_mut() {
                        n.handle_disconnected(now, peer);
                    }
                    self.drain(node);
                }
                NodeState::Hung => self.nodes[node].missed_disconnects.push(peer),
                NodeState::Crashed => {}
            }
        }
        if let Some(c) = self.conns.get(&conn)
            && !c.open[0]
            && !c.open[1]
        {
            let key = (c.a.min(c.b), c.a.max(c.b));
            self.conns.remove(&conn);
            for end in [key.0, key.1] {
                if let Some(ids) = self.conns_of.get_mut(&end) {
                    ids.retain(|&id| id != conn);
                }
            }
            if self.pair_conn.get(&key) == Some(&conn) {
                self.pair_conn.remove(&key);
                // Nothing goes between the two until a new connection sets these again.
                self.last_delivery.remove(&pair(key.0, key.1));
                self.last_delivery.remove(&pair(key.1, key.0));
            }
        }
    }

    /// Re-evaluates whether each connection of `nodes` (or all, if `None`) can carry frames.
    pub(super) fn refresh_health(&mut self, now: Timestamp, only: Option<usize>) {
        let mut ids: Vec<u64> = match only {
            Some(n) => self.conns_of.get(&n).cloned().unwrap_or_default(),
            None => self.conns.keys().copied().collect(),
        };
        ids.sort_unstable(); // id order: idle checks are scheduled in it

        let idle = self.net.idle_timeout;
        for id in ids {
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            let (a, b) = (c.a, c.b);
            let broken = c.dead
                || !self.running(a)
                || !self.running(b)
                || !self.reachable(a, b)
                || !self.reachable(b, a);
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            match (broken, c.broken_since) {
                (true, None) => {
                    c.broken_since = Some(now);
                    self.scheduler.schedule(
                        now + idle,
                        Ev::IdleCheck {
                            conn: id,
                            since: now,
                        },
                    );
                }
                (false, Some(_)) => c.broken_since = None,
                _ => {}
            }
        }
    }

    /// Carries out one of node `i`'s transmits: a frame on a connection, a dial or a close.
    /// `injected` frames come from a Byzantine plug-in.
    pub(super) fn transmit(&mut self, now: Timestamp, i: usize, t: Transmit, injected: bool) {
        match t {
            Transmit::Send { to, frame } => {
                let Some(&j) = self.index.get(&to) else {
                    return;
                };
                if !injected || self.nodes[i].adversary.is_none() {
                    self.discovery.frame_sent(&frame);
                    self.nodes[i].frames_sent += 1;
                    self.nodes[i].bytes_sent += frame.len() as u64;
                    if let Some(t) = &mut self.traffic
                        && (self.idle.window.is_none()
                            || (self.idle.opened.is_some() && self.idle.closed.is_none()))
                    {
                        t.count(&frame);
                    }
                }
                let key = (i.min(j), i.max(j));
                let Some(&conn) = self.pair_conn.get(&key) else {
                    return;
                };
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if !c.open[c.side(i)] || c.dead {
                    return; // no connection at this end: nothing goes on the wire
                }
                self.stats.sent += 1;
                if !self.reachable(i, j) {
                    self.stats.lost_partition += 1;
                    return; // the connection will time out if the cut persists
                }
                if !self.running(j) {
                    self.stats.lost_dead += 1;
                    return;
                }
                let mut at = now + self.latency();
                if self.chance(self.net.loss) {
                    match self.net.loss_mode {
                        LossMode::Drop => {
                            self.stats.lost_loss += 1;
                            return;
                        }
                        LossMode::Delay => {
                            // A retransmission after about one round trip.
                            let rtt = self.latency() + self.latency();
                            at += rtt + TimeDelta::from_millis(25);
                        }
                    }
                }
                if self.chance(self.net.reorder) {
                    let extra = self.latency() + self.latency();
                    at += TimeDelta::from_micros(self.rng.next_u64() % extra.as_micros().max(1));
                } else {
                    let last = self.last_delivery.entry(pair(i, j)).or_insert(now);
                    at = at.max(*last);
                    *last = at;
                }
                if self.chance(self.net.duplicate) {
                    self.stats.duplicated += 1;
                    let again = at + TimeDelta::from_micros(1 + self.rng.next_u64() % 5_000);
                    self.scheduler.schedule(
                        again,
                        Ev::Deliver {
                            from: i,
                            to: j,
                            conn,
                            frame: frame.clone(),
                        },
                    );
                }
                self.scheduler.schedule(
                    at,
                    Ev::Deliver {
                        from: i,
                        to: j,
                        conn,
                        frame,
                    },
                );
            }
            Transmit::Connect { peer, .. } => {
                let Some(&j) = self.index.get(&peer) else {
                    self.scheduler
                        .schedule(now + self.net.idle_timeout, Ev::DialFail { node: i, peer });
                    return;
                };
                let key = (i.min(j), i.max(j));
                if let Some(&existing) = self.pair_conn.get(&key)
                    && let Some(c) = self.conns.get(&existing)
                    && !c.dead
                    && c.broken_since.is_none()
                {
                    if c.open[c.side(i)] {
                        // Already connected: report it again; the core ignores duplicates.
                        self.scheduler.schedule(
                            now,
                            Ev::ConnUp {
                                node: i,
                                conn: existing,
                            },
                        );
                    }
                    return; // a handshake is under way
                }
                if i == j || !self.running(j) || !self.reachable(i, j) || !self.reachable(j, i) {
                    self.scheduler
                        .schedule(now + self.net.idle_timeout, Ev::DialFail { node: i, peer });
                    return;
                }
                let id = self.next_conn;
                self.next_conn += 1;
                self.conns_of.entry(i).or_default().push(id);
                self.conns_of.entry(j).or_default().push(id);
                self.conns.insert(
                    id,
                    Conn {
                        a: i,
                        b: j,
                        open: [false, false],
                        broken_since: None,
                        dead: false,
                    },
                );
                self.pair_conn.insert(key, id);
                let (there, back) = (self.latency(), self.latency());
                self.scheduler
                    .schedule(now + there, Ev::ConnUp { node: j, conn: id });
                self.scheduler
                    .schedule(now + there + back, Ev::ConnUp { node: i, conn: id });
                // Nothing arrives at either end before the dialler's side is up.
                self.last_delivery.insert(pair(i, j), now + there + back);
                self.last_delivery.insert(pair(j, i), now + there + back);
            }
            Transmit::Disconnect { peer } => {
                let Some(&j) = self.index.get(&peer) else {
                    return;
                };
                let key = (i.min(j), i.max(j));
                let Some(&conn) = self.pair_conn.get(&key) else {
                    return;
                };
                // The closer hears of it at once; the other end after what is in flight.
                self.scheduler.schedule(now, Ev::ConnDown { node: i, conn });
                if self.reachable(i, j) && self.running(j) {
                    let lat = self.latency();
                    let after = self.last_delivery.get(&pair(i, j)).copied().unwrap_or(now);
                    self.scheduler
                        .schedule((now + lat).max(after), Ev::ConnDown { node: j, conn });
                }
            }
            _ => {}
        }
    }
}
