//! Root beacons for one topic overlay: the member with the smallest id is the overlay's *root*
//! and floods a numbered beacon every `interval`; every member keeps the root it heard, its
//! distance in hops, and a *parent*: the neighbour closest to the root in hops (ties keep the
//! current parent, so the choice does not flap with latency). Each member passes every new beacon
//! to all its neighbours, naming its parent, so a member knows its *children* too. Parents and
//! children form a breadth-first spanning tree of the overlay, which Plumtree uses as its eager
//! tree (§15.4): its depth is the root's eccentricity, whoever publishes.
//!
//! Two parts of a topic's overlay that formed apart, or were cut apart, have different roots;
//! a merge walk that reaches a member of another part sees it and links the two (§15.2). A
//! member that hears nothing from its root for `timeout` takes over as its own root; the smallest
//! id wins again within one flood.

use crate::id::PeerId;
use crate::time::{TimeDelta, Timestamp};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use minicbor::{Decode, Encode};

/// A root beacon as one neighbour passes it to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct RootBeacon {
    /// The root.
    #[n(0)]
    pub root: PeerId,
    /// The root's beacon number (grows by one per beacon).
    #[n(1)]
    pub seq: u64,
    /// Hops from the root to the sender.
    #[n(2)]
    pub dist: u8,
    /// The sender's parent (none for the root).
    #[n(3)]
    pub parent: Option<PeerId>,
}

/// Parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Pause between two beacons of a root. Default 5 s.
    pub interval: TimeDelta,
    /// Silence after which a member takes over as root. Default 16 s.
    pub timeout: TimeDelta,
    /// RootTree farther than this many hops are ignored. Default 32.
    pub max_dist: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: TimeDelta::from_secs(5),
            timeout: TimeDelta::from_secs(16),
            max_dist: 32,
        }
    }
}

/// The beacon state of one member.
#[derive(Debug)]
pub struct RootTree {
    config: Config,
    me: PeerId,
    current: RootBeacon,
    parent: Option<PeerId>,
    heard_at: Timestamp,
    /// This member's own beacon numbers, kept when it stops being root.
    own_seq: u64,
    next_emit: Timestamp,
    neighbors: Vec<PeerId>,
    /// The latest beacon each neighbour passed on, for the current root.
    reports: BTreeMap<PeerId, RootBeacon>,
    out: VecDeque<(PeerId, RootBeacon)>,
    /// RootTree adopted (for inspection).
    adopted: u64,
    /// Grows whenever the tree links may have changed.
    version: u64,
    /// Roots this member gave up on, with the last number heard: copies of those beacons still
    /// travelling are refused, so a dead root cannot come back from them.
    /// Oldest first: when full, the root given up longest ago is forgotten.
    expired: VecDeque<(PeerId, u64)>,
}

/// Most given-up roots remembered.
const MAX_EXPIRED: usize = 8;

impl RootTree {
    /// A member that starts as its own root; its first beacon goes at `first`.
    pub fn new(config: Config, me: PeerId, now: Timestamp, first: Timestamp) -> Self {
        Self {
            config,
            me,
            current: RootBeacon {
                root: me,
                seq: 0,
                dist: 0,
                parent: None,
            },
            parent: None,
            heard_at: now,
            reports: BTreeMap::new(),
            own_seq: 0,
            next_emit: first,
            neighbors: Vec::new(),
            out: VecDeque::new(),
            adopted: 0,
            version: 0,
            expired: VecDeque::new(),
        }
    }

    /// The root this member follows (itself when it is root).
    pub fn root(&self) -> PeerId {
        self.current.root
    }

    /// Hops to the root.
    pub fn dist(&self) -> u8 {
        self.current.dist
    }

    /// The neighbour the current root's latest beacon came from first.
    pub fn parent(&self) -> Option<PeerId> {
        self.parent
    }

    /// Whether this member is root.
    pub fn is_root(&self) -> bool {
        self.current.root == self.me
    }

    /// RootTree adopted so far.
    pub fn adopted(&self) -> u64 {
        self.adopted
    }

    /// Neighbours whose latest beacon named this member as their parent.
    pub fn children(&self) -> impl Iterator<Item = &PeerId> + '_ {
        let me = self.me;
        let (root, seq) = (self.current.root, self.current.seq);
        self.reports
            .iter()
            .filter(move |(_, b)| {
                b.parent == Some(me) && b.root == root && b.seq.saturating_add(1) >= seq
            })
            .map(|(p, _)| p)
    }

    /// Grows whenever [`RootTree::tree_links`] may have changed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The tree links of this member: its parent and its children.
    pub fn tree_links(&self) -> Vec<PeerId> {
        self.parent.iter().chain(self.children()).copied().collect()
    }

    /// The next beacon to send.
    pub fn poll(&mut self) -> Option<(PeerId, RootBeacon)> {
        self.out.pop_front()
    }

    /// `peer` became a neighbour: it hears the current beacon at once.
    pub fn neighbor_up(&mut self, peer: PeerId) {
        if !self.neighbors.contains(&peer) {
            self.neighbors.push(peer);
        }
        self.out.push_back((peer, self.current));
    }

    /// `peer` is no longer a neighbour.
    pub fn neighbor_down(&mut self, peer: &PeerId) {
        self.version += 1;
        self.neighbors.retain(|p| p != peer);
        self.reports.remove(peer);
        if self.parent == Some(*peer) {
            // Keep the root: its next beacon arrives through another neighbour, or the
            // timeout makes this member root.
            self.parent = None;
        }
    }

    /// A beacon from neighbour `from`.
    pub fn handle(&mut self, now: Timestamp, from: PeerId, b: RootBeacon) {
        if b.root == self.me {
            // Our own beacon passed back by a neighbour: it says whether we are its parent.
            if self.is_root() {
                self.reports.insert(from, b);
                self.version += 1;
            }
            return;
        }
        if b.dist >= self.config.max_dist {
            return;
        }
        if self
            .expired
            .iter()
            .any(|(root, s)| *root == b.root && b.seq <= *s)
        {
            return;
        }
        if b.root > self.current.root {
            // The neighbour follows a worse root: tell it about ours now rather than at the
            // next flood.
            self.out.push_back((from, self.current));
            return;
        }
        if b.root < self.current.root {
            self.reports.clear();
        }
        self.reports.insert(from, b);
        self.version += 1;
        let fresh = b.root < self.current.root || b.seq > self.current.seq;
        let old_parent = self.parent;
        self.choose_parent();
        if fresh {
            self.current.root = b.root;
            self.current.seq = b.seq;
            self.heard_at = now;
            self.adopted += 1;
        }
        if fresh || self.parent != old_parent {
            self.current.dist = self
                .parent
                .and_then(|p| self.reports.get(&p))
                .map_or(b.dist, |r| r.dist)
                .saturating_add(1);
            self.current.parent = self.parent;
            for p in &self.neighbors {
                self.out.push_back((*p, self.current));
            }
        }
    }

    /// The parent: among neighbours reporting the current root (or a better one just heard)
    /// with a recent number, the one fewest hops from it; ties keep the current parent, then
    /// the smallest id.
    fn choose_parent(&mut self) {
        let best_root = self
            .reports
            .values()
            .map(|b| b.root)
            .min()
            .unwrap_or(self.current.root)
            .min(self.current.root);
        let newest = self
            .reports
            .values()
            .filter(|b| b.root == best_root)
            .map(|b| b.seq)
            .max()
            .unwrap_or(0);
        let current = self.parent;
        let me = self.me;
        self.parent = self
            .reports
            .iter()
            .filter(|(_, b)| b.root == best_root && b.seq.saturating_add(1) >= newest)
            // A neighbour whose parent is this member is below it, not a way up.
            .filter(|(_, b)| b.parent != Some(me))
            .min_by_key(|(p, b)| (b.dist, Some(**p) != current, **p))
            .map(|(p, _)| *p);
    }

    /// Runs the beacon timer and the root timeout.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if !self.is_root() && now >= self.heard_at + self.config.timeout {
            let root = self.current.root;
            self.expired.retain(|(r, _)| *r != root);
            if self.expired.len() >= MAX_EXPIRED {
                self.expired.pop_front();
            }
            self.expired.push_back((root, self.current.seq));
            self.current = RootBeacon {
                root: self.me,
                seq: self.own_seq,
                dist: 0,
                parent: None,
            };
            self.parent = None;
            self.reports.clear();
            self.version += 1;
            self.next_emit = now;
        }
        if self.is_root() && now >= self.next_emit {
            self.own_seq += 1;
            self.current.seq = self.own_seq;
            self.next_emit = now + self.config.interval;
            for p in &self.neighbors {
                self.out.push_back((*p, self.current));
            }
        }
    }

    /// When [`RootTree::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Timestamp {
        if self.is_root() {
            self.next_emit
        } else {
            self.heard_at + self.config.timeout
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn id(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    /// A line of members 1 - 2 - ... - n delivering beacons instantly.
    fn settle(members: &mut [RootTree], now: Timestamp) {
        loop {
            let mut moved = false;
            for i in 0..members.len() {
                while let Some((to, b)) = members[i].poll() {
                    moved = true;
                    let from = members[i].me;
                    if let Some(j) = members.iter().position(|m| m.me == to) {
                        members[j].handle(now, from, b);
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn line(n: u8) -> Vec<RootTree> {
        let mut m: Vec<RootTree> = (1..=n)
            .rev()
            .map(|i| RootTree::new(Config::default(), id(i), T, T))
            .collect();
        for i in 0..m.len() - 1 {
            let (a, b) = (m[i].me, m[i + 1].me);
            m[i].neighbor_up(b);
            m[i + 1].neighbor_up(a);
        }
        m
    }

    #[test]
    fn the_smallest_id_becomes_everyones_root_with_hop_distances() {
        let mut m = line(6);
        for x in m.iter_mut() {
            x.handle_timeout(T);
        }
        settle(&mut m, T);
        for (k, x) in m.iter().enumerate() {
            assert_eq!(x.root(), id(1));
            assert_eq!(usize::from(x.dist()), m.len() - 1 - k);
            // In the line 6 - 5 - ... - 1, each member's parent is the next one towards 1 and
            // its only child the previous one.
            let parent = (k + 1 < m.len()).then(|| m[k + 1].me);
            assert_eq!(x.parent(), parent, "member {k}");
            let children: Vec<PeerId> = x.children().copied().collect();
            let expected: Vec<PeerId> = (k > 0).then(|| m[k - 1].me).into_iter().collect();
            assert_eq!(children, expected, "member {k}");
        }
    }

    #[test]
    fn when_the_root_goes_silent_the_next_smallest_takes_over() {
        let mut m = line(4);
        for x in m.iter_mut() {
            x.handle_timeout(T);
        }
        settle(&mut m, T);
        // Member 1 (last in the line) disappears.
        let gone = m.pop().unwrap().me;
        let last = m.len() - 1;
        m[last].neighbor_down(&gone);
        let later = T + TimeDelta::from_secs(17);
        for x in m.iter_mut() {
            x.handle_timeout(later);
        }
        settle(&mut m, later);
        assert!(
            m.iter().all(|x| x.root() == id(2)),
            "{:?}",
            m.iter().map(|x| x.root()).collect::<Vec<_>>()
        );
    }
}
