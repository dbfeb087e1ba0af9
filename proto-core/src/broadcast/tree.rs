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
//!
//! [`RootTree`] is a [`StateMachine`] (SPEC.md §8.8): its [`Input`] is a neighbour coming or
//! going, or a beacon from one; its [`Output`] a beacon to send, or the member's tree links once
//! they may have changed. Its one timer at a time (the next beacon while root, the root's
//! silence otherwise) is in a [`Deadlines`]. It draws no randomness.

use crate::id::PeerId;
use crate::machine::{Deadlines, Rng, StateMachine};
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

/// Everything that can happen to a member's beacon state but the passage of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `peer` became a neighbour: it hears the current beacon at once.
    NeighborUp(PeerId),
    /// `peer` is no longer a neighbour.
    NeighborDown(PeerId),
    /// A beacon from neighbour `from`.
    Beacon {
        /// The neighbour.
        from: PeerId,
        /// What it passed on.
        beacon: RootBeacon,
    },
}

/// What the beacon state asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `beacon` to neighbour `to`.
    Send {
        /// The neighbour.
        to: PeerId,
        /// The beacon.
        beacon: RootBeacon,
    },
    /// The member's tree links (its parent, then its children) may have changed; `links` is
    /// what they are now. It comes after the beacons queued with it, and once however many
    /// changes there were since the last one.
    Tree {
        /// Parent and children.
        links: Vec<PeerId>,
    },
}

/// The beacon state's timers: only one is set at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Not root: the root's silence has lasted `timeout`, this member takes over.
    Silence,
    /// Root: the next beacon goes.
    Emit,
}

crate::machine::internal_struct! {
    /// The beacon state of one member.
    #[derive(Debug)]
    struct RootTree {
        config: Config,
        me: PeerId,
        current: RootBeacon,
        parent: Option<PeerId>,
        /// This member's own beacon numbers, kept when it stops being root.
        own_seq: u64,
        /// [`Timer::Emit`] while root, else [`Timer::Silence`] (the root last heard from plus
        /// `timeout`).
        deadlines: Deadlines<Timer>,
        neighbors: Vec<PeerId>,
        /// The latest beacon each neighbour passed on, for the current root.
        reports: BTreeMap<PeerId, RootBeacon>,
        out: VecDeque<Output>,
        /// Roots adopted (for inspection).
        adopted: u64,
        /// Whether the tree links may have changed since the last [`Output::Tree`].
        tree_changed: bool,
        /// Roots this member gave up on, with the last number heard: copies of those beacons still
        /// travelling are refused, so a dead root cannot come back from them.
        /// Oldest first: when full, the root given up longest ago is forgotten.
        expired: VecDeque<(PeerId, u64)>,
    }
}

/// Most given-up roots remembered.
const MAX_EXPIRED: usize = 8;

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl RootTree {
    /// A member that starts as its own root; its first beacon goes at `first` (`now` is
    /// unused: a root hears from no root).
    pub fn new(config: Config, me: PeerId, _now: Timestamp, first: Timestamp) -> Self {
        let mut deadlines = Deadlines::new();
        deadlines.set(Timer::Emit, first);
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
            reports: BTreeMap::new(),
            own_seq: 0,
            deadlines,
            neighbors: Vec::new(),
            out: VecDeque::new(),
            adopted: 0,
            tree_changed: false,
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

    /// Roots adopted so far.
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

    /// The tree links of this member: its parent and its children.
    pub fn tree_links(&self) -> Vec<PeerId> {
        self.parent.iter().chain(self.children()).copied().collect()
    }

    /// Queues the current beacon for `to`.
    fn send(&mut self, to: PeerId) {
        self.out.push_back(Output::Send {
            to,
            beacon: self.current,
        });
    }

    /// Queues the current beacon for every neighbour.
    fn flood(&mut self) {
        let beacon = self.current;
        let sends = self.neighbors.iter().map(|&to| Output::Send { to, beacon });
        self.out.extend(sends);
    }

    /// See [`Input::NeighborUp`].
    fn neighbor_joined(&mut self, peer: PeerId) {
        if !self.neighbors.contains(&peer) {
            self.neighbors.push(peer);
        }
        self.send(peer);
    }

    /// See [`Input::NeighborDown`].
    fn neighbor_left(&mut self, peer: &PeerId) {
        self.tree_changed = true;
        self.neighbors.retain(|p| p != peer);
        self.reports.remove(peer);
        if self.parent == Some(*peer) {
            // Keep the root: its next beacon arrives through another neighbour, or the
            // timeout makes this member root.
            self.parent = None;
        }
    }

    /// See [`Input::Beacon`].
    fn on_beacon(&mut self, now: Timestamp, from: PeerId, b: RootBeacon) {
        if b.root == self.me {
            // Our own beacon passed back by a neighbour: it says whether we are its parent.
            if self.is_root() {
                self.reports.insert(from, b);
                self.tree_changed = true;
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
            self.send(from);
            return;
        }
        if b.root < self.current.root {
            self.reports.clear();
        }
        self.reports.insert(from, b);
        self.tree_changed = true;
        let fresh = b.root < self.current.root || b.seq > self.current.seq;
        let old_parent = self.parent;
        self.choose_parent();
        if fresh {
            self.current.root = b.root;
            self.current.seq = b.seq;
            self.adopted += 1;
            // Another root's (this member is no longer root, if it was): silence is counted
            // from now.
            self.deadlines.cancel(&Timer::Emit);
            self.deadlines
                .set(Timer::Silence, now + self.config.timeout);
        }
        if fresh || self.parent != old_parent {
            self.current.dist = self
                .parent
                .and_then(|p| self.reports.get(&p))
                .map_or(b.dist, |r| r.dist)
                .saturating_add(1);
            self.current.parent = self.parent;
            self.flood();
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

    /// The root went silent for `timeout`: this member takes over as its own root and
    /// remembers the old root as given up.
    fn take_over(&mut self) {
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
        self.tree_changed = true;
    }

    /// As root: the next beacon goes to every neighbour, and the one after in `interval`.
    fn emit(&mut self, now: Timestamp) {
        self.own_seq += 1;
        self.current.seq = self.own_seq;
        self.deadlines.set(Timer::Emit, now + self.config.interval);
        self.flood();
    }

    /// Runs the beacon timer or the root's silence.
    fn run_timers(&mut self, now: Timestamp) {
        // One timer at a time: a take-over sends the new root's first beacon at once.
        if let Some((_, timer)) = self.deadlines.pop_due(now) {
            if timer == Timer::Silence {
                self.take_over();
            }
            self.emit(now);
        }
    }

    /// The next output: beacons first, then the tree links if they may have changed.
    fn next_output(&mut self) -> Option<Output> {
        if let Some(out) = self.out.pop_front() {
            return Some(out);
        }
        if !core::mem::take(&mut self.tree_changed) {
            return None;
        }
        Some(Output::Tree {
            links: self.tree_links(),
        })
    }

    // ------------------------------------------------------ shorthands for older callers

    /// Shorthand for [`StateMachine::poll`].
    pub fn poll(&mut self) -> Option<Output> {
        self.next_output()
    }

    /// Shorthand for `handle(now, Input::NeighborUp(peer))`.
    pub fn neighbor_up(&mut self, peer: PeerId) {
        self.neighbor_joined(peer);
    }

    /// Shorthand for `StateMachine::handle(now, Input::Beacon { from, beacon })`.
    pub fn handle(&mut self, now: Timestamp, from: PeerId, beacon: RootBeacon) {
        self.on_beacon(now, from, beacon);
    }

    /// Shorthand for [`StateMachine::handle_timeout`] (the beacon state draws no randomness).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.run_timers(now);
    }
}

impl StateMachine for RootTree {
    type Input<'a> = Input;
    type Output = Output;
    type Reply = ();

    fn handle(&mut self, now: Timestamp, input: Input, _rng: &mut Rng) {
        match input {
            Input::NeighborUp(peer) => self.neighbor_joined(peer),
            Input::NeighborDown(peer) => self.neighbor_left(&peer),
            Input::Beacon { from, beacon } => self.on_beacon(now, from, beacon),
        }
    }

    fn handle_timeout(&mut self, now: Timestamp, _rng: &mut Rng) {
        self.run_timers(now);
    }

    fn poll(&mut self) -> Option<Output> {
        self.next_output()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Rng;
    use crate::machine::check::timers_move_forward;
    use proptest::prelude::*;
    use rand_core::SeedableRng;
    use std::vec;

    const T: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn id(n: u8) -> PeerId {
        PeerId::from_bytes([n; 32])
    }

    fn rng() -> Rng {
        Rng::from_seed([3; 32])
    }

    /// A line of members 1 - 2 - ... - n delivering beacons instantly.
    fn settle(members: &mut [RootTree], now: Timestamp) {
        let r = &mut rng();
        loop {
            let mut moved = false;
            for i in 0..members.len() {
                while let Some(out) = StateMachine::poll(&mut members[i]) {
                    moved = true;
                    let Output::Send { to, beacon } = out else {
                        continue;
                    };
                    let from = members[i].me;
                    if let Some(j) = members.iter().position(|m| m.me == to) {
                        let input = Input::Beacon { from, beacon };
                        StateMachine::handle(&mut members[j], now, input, r);
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn line(n: u8) -> Vec<RootTree> {
        let r = &mut rng();
        let mut m: Vec<RootTree> = (1..=n)
            .rev()
            .map(|i| RootTree::new(Config::default(), id(i), T, T))
            .collect();
        for i in 0..m.len() - 1 {
            let (a, b) = (m[i].me, m[i + 1].me);
            StateMachine::handle(&mut m[i], T, Input::NeighborUp(b), r);
            StateMachine::handle(&mut m[i + 1], T, Input::NeighborUp(a), r);
        }
        m
    }

    #[test]
    fn the_smallest_id_becomes_everyones_root_with_hop_distances() {
        let mut m = line(6);
        for x in m.iter_mut() {
            StateMachine::handle_timeout(x, T, &mut rng());
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
            StateMachine::handle_timeout(x, T, &mut rng());
        }
        settle(&mut m, T);
        // Member 1 (last in the line) disappears.
        let gone = m.pop().unwrap().me;
        let last = m.len() - 1;
        StateMachine::handle(&mut m[last], T, Input::NeighborDown(gone), &mut rng());
        let later = T + TimeDelta::from_secs(17);
        for x in m.iter_mut() {
            StateMachine::handle_timeout(x, later, &mut rng());
        }
        settle(&mut m, later);
        assert!(
            m.iter().all(|x| x.root() == id(2)),
            "{:?}",
            m.iter().map(|x| x.root()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_tree_links_come_once_after_the_beacons_queued_with_them() {
        let r = &mut rng();
        let mut x = RootTree::new(Config::default(), id(5), T, T);
        StateMachine::handle(&mut x, T, Input::NeighborUp(id(7)), r);
        StateMachine::handle(&mut x, T, Input::NeighborUp(id(3)), r);
        let beacon = RootBeacon {
            root: id(1),
            seq: 1,
            dist: 2,
            parent: Some(id(2)),
        };
        StateMachine::handle(
            &mut x,
            T,
            Input::Beacon {
                from: id(3),
                beacon,
            },
            r,
        );
        let child = RootBeacon {
            root: id(1),
            seq: 1,
            dist: 4,
            parent: Some(id(5)),
        };
        let input = Input::Beacon {
            from: id(7),
            beacon: child,
        };
        StateMachine::handle(&mut x, T, input, r);
        let out: Vec<Output> = core::iter::from_fn(|| StateMachine::poll(&mut x)).collect();
        let sends = out
            .iter()
            .take_while(|o| matches!(o, Output::Send { .. }))
            .count();
        // Two NeighborUp beacons, one flood of the adopted root to both neighbours.
        assert_eq!(sends, 4);
        assert_eq!(
            out[sends..],
            [Output::Tree {
                links: vec![id(3), id(7)]
            }]
        );
        assert_eq!(x.poll_timeout(), Some(T + Config::default().timeout));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After `handle_timeout(t)`, `poll_timeout()` is never at or before `t`; exactly one
        /// timer is set: the next beacon while root, the root's silence otherwise.
        #[test]
        fn timers_move_forward_under_random_inputs(
            steps in prop::collection::vec(
                (0u8..4, 0u8..6, 0u8..12, 0u64..8, 1u8..40, 0u32..20_000),
                1..60,
            ),
        ) {
            let r = &mut rng();
            let me = id(6);
            let mut x = RootTree::new(Config::default(), me, T, T);
            let mut now = T;
            for (kind, n, root, seq, dist, wait) in steps {
                let peer = id(n + 2);
                let input = match kind {
                    0 => Input::NeighborUp(peer),
                    1 => Input::NeighborDown(peer),
                    _ => Input::Beacon {
                        from: peer,
                        beacon: RootBeacon {
                            root: id(root),
                            seq,
                            dist,
                            parent: (kind == 3).then_some(me),
                        },
                    },
                };
                StateMachine::handle(&mut x, now, input, r);
                prop_assert_eq!(x.deadlines.len(), 1);
                let until = now + TimeDelta::from_millis(u64::from(wait));
                timers_move_forward(&mut x, r, now, until, 100, |_, _, _| {});
                prop_assert_eq!(x.deadlines.len(), 1);
                let (at, timer) = x.deadlines.clone().pop_due(Timestamp::MAX).unwrap();
                prop_assert_eq!(timer == Timer::Emit, x.is_root());
                prop_assert!(at > until);
                now = until;
            }
        }
    }
}
