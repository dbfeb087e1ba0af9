//! Root beacons for one topic overlay: the member with the smallest id is the overlay's *root*
//! and floods numbered beacons; every member keeps the root it heard, its distance in hops, and
//! a *parent*: the neighbour closest to the root in hops (ties keep the current parent, so the
//! choice does not flap with latency). Each member passes every new beacon to all its
//! neighbours, naming its parent, so a member knows its *children* too. Parents and children
//! form a breadth-first spanning tree of the overlay, which Plumtree uses as its eager tree
//! (§15.4): its depth is the root's eccentricity, whoever publishes.
//!
//! A stable tree is nearly silent: the root's pause between beacons starts at `interval` and
//! grows fourfold after each beacon up to `interval_max`; each beacon announces the pause, and members
//! time the root's silence from it. Changes do not wait for the next beacon. A member whose
//! parent goes takes another neighbour that reported the root's latest number from fewer hops,
//! or else takes over as root at once (its children see their parent follow another root and
//! do the same). A member that hears a neighbour follow a worse root asks the root, hop by hop
//! up the tree, for a fresh beacon, and so does a member that lost its parent with no other
//! neighbour nearer the root; the root answers with one beacon within `min_gap`. Only a member
//! whose parent gave the root up, or one whose request went unanswered for `orphan_wait`,
//! takes over as root.
//!
//! Two parts of a topic's overlay that formed apart, or were cut apart, have different roots;
//! a merge walk that reaches a member of another part sees it and links the two (§15.2). A
//! member that hears nothing from its root for the silence the root's last beacon implies takes
//! over as its own root; the smallest id wins again within one flood.
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
    /// Milliseconds from this beacon to the root's next one, as the root announced it: members
    /// time the root's silence from it (clamped to their own `interval`..`interval_max`).
    #[n(4)]
    pub interval_ms: u32,
    /// The sender asks for a fresh beacon of this root: its parent passes the request on
    /// towards the root (once per number), and the root sends its next beacon soon.
    #[n(5)]
    pub ask: bool,
}

/// Parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Pause after a new root's first beacon. The pause grows fourfold after each beacon up to
    /// `interval_max`. Default 5 s.
    pub interval: TimeDelta,
    /// Longest pause between two beacons of a root. Default 320 s.
    pub interval_max: TimeDelta,
    /// How long a member whose parent went, with no other way up, waits for the fresh beacon
    /// it asked for before it takes over as root. Default 3 s.
    pub orphan_wait: TimeDelta,
    /// Shortest pause between two beacons of a root, however often a fresh one is asked for.
    /// Default 1 s.
    pub min_gap: TimeDelta,
    /// Silence after which a member takes over as root when the root announced `interval`;
    /// longer announced pauses scale it (`timeout × announced / interval`). Default 16 s.
    pub timeout: TimeDelta,
    /// RootTree farther than this many hops are ignored. Default 32.
    pub max_dist: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            interval: TimeDelta::from_secs(5),
            interval_max: TimeDelta::from_secs(320),
            orphan_wait: TimeDelta::from_secs(3),
            min_gap: TimeDelta::from_secs(1),
            timeout: TimeDelta::from_secs(16),
            max_dist: 32,
        }
    }
}

impl Config {
    /// How long a member waits for the next beacon of a root that announced `interval_ms`.
    fn silence(&self, interval_ms: u32) -> TimeDelta {
        let announced = TimeDelta::from_millis(u64::from(interval_ms))
            .min(self.interval_max)
            .max(self.interval);
        let scaled = u128::from(self.timeout.as_micros()) * u128::from(announced.as_micros())
            / u128::from(self.interval.as_micros().max(1));
        TimeDelta::from_micros(u64::try_from(scaled).unwrap_or(u64::MAX))
    }
}

/// A pause in whole milliseconds, as a beacon carries it.
fn millis(d: TimeDelta) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
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
    /// Not root: the root's silence has lasted its timeout, this member takes over.
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
        /// While root: the pause after the next beacon (×4 up to `interval_max`; a new root
        /// starts from `interval`).
        gap: TimeDelta,
        /// While root: when the last beacon went.
        last_emit: Option<Timestamp>,
        /// Not root: when the current root's latest number arrived.
        heard: Timestamp,
        /// The number of the current root for which a request for a fresh beacon was passed
        /// on, and to whom (one per number and parent).
        asked: Option<(u64, Option<PeerId>)>,
        /// [`Timer::Emit`] while root, else [`Timer::Silence`] (the root last heard from plus
        /// its silence timeout).
        deadlines: Deadlines<Timer>,
        neighbors: Vec<PeerId>,
        /// The latest beacon each neighbour passed on, for the current root.
        reports: BTreeMap<PeerId, RootBeacon>,
        out: VecDeque<Output>,
        /// Roots adopted (for inspection).
        adopted: u64,
        /// Beacons this member sent as root (for inspection).
        emitted: u64,
        /// Whether the tree links may have changed since the last [`Output::Tree`].
        tree_changed: bool,
        /// Roots this member gave up on, with the last number heard: copies of those beacons still
        /// travelling are refused, so a dead root cannot come back from them.
        /// Oldest first: when full, the root given up longest ago is forgotten.
        expired: VecDeque<(PeerId, u64)>,
        /// The given-up (root, number, neighbour) refusals answered with `ask`, the latest
        /// [`MAX_REFUSED`]: each neighbour is asked once per given-up number (with one slot,
        /// two neighbours passing the same given-up beacon made the member ask them in turn
        /// for ever).
        refused: VecDeque<(PeerId, u64, PeerId)>,
    }
}

/// Most given-up roots remembered.
const MAX_EXPIRED: usize = 8;
/// Most refusals remembered (one per neighbour and given-up number; a member has a few dozen
/// neighbours at most).
const MAX_REFUSED: usize = 32;

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl RootTree {
    /// A member that starts as its own root; its first beacon goes at `first` (`now` is
    /// unused: a root hears from no root).
    pub fn new(config: Config, me: PeerId, _now: Timestamp, first: Timestamp) -> Self {
        let mut deadlines = Deadlines::new();
        deadlines.set(Timer::Emit, first);
        Self {
            current: RootBeacon {
                root: me,
                seq: 0,
                dist: 0,
                parent: None,
                interval_ms: millis(config.interval),
                ask: false,
            },
            gap: config.interval,
            config,
            me,
            parent: None,
            reports: BTreeMap::new(),
            own_seq: 0,
            last_emit: None,
            heard: first,
            asked: None,
            deadlines,
            neighbors: Vec::new(),
            out: VecDeque::new(),
            adopted: 0,
            emitted: 0,
            tree_changed: false,
            expired: VecDeque::new(),
            refused: VecDeque::new(),
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

    /// The neighbour this member's tree link towards the root goes to.
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

    /// Beacons this member sent as root so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
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

    /// See [`Input::NeighborDown`]: a member that lost its parent re-parents at once, or asks
    /// for a fresh beacon (even when the parent was the root: a link that flapped must not
    /// make the root's part of the tree take over).
    fn neighbor_left(&mut self, now: Timestamp, peer: &PeerId) {
        self.tree_changed = true;
        self.neighbors.retain(|p| p != peer);
        self.reports.remove(peer);
        if !self.is_root() && self.parent == Some(*peer) {
            self.parent_lost(now, false);
        }
    }

    /// The parent is gone (down, or it follows another root now). Another neighbour that
    /// reported the current root's latest number from strictly fewer hops than this member
    /// becomes parent (it cannot be below this member, and this member's hops stay the same,
    /// so no loop forms and the children keep theirs). Without one, a member whose parent
    /// `gave_up` the root takes over as root at once, so its part of the
    /// tree learns of the loss from its beacon; any other asks every neighbour for a fresh
    /// beacon and takes over if none comes within `orphan_wait`.
    fn parent_lost(&mut self, now: Timestamp, gave_up: bool) {
        self.parent = None;
        self.tree_changed = true;
        let (me, cur) = (self.me, self.current);
        let best = self
            .reports
            .iter()
            .filter(|(_, r)| r.root == cur.root && r.seq >= cur.seq && r.dist < cur.dist)
            .filter(|(_, r)| r.parent != Some(me))
            .min_by_key(|(p, r)| (r.dist, **p))
            .map(|(p, r)| (*p, r.dist));
        match best {
            Some((p, dist)) => {
                let (old_parent, old_dist) = (cur.parent, cur.dist);
                self.parent = Some(p);
                self.current.parent = Some(p);
                self.current.dist = dist.saturating_add(1);
                self.announce_parent(old_parent, old_dist);
            }
            None if gave_up => self.become_root(now),
            None => {
                self.current.parent = None;
                self.asked = Some((self.current.seq, None));
                let beacon = RootBeacon {
                    ask: true,
                    ..self.current
                };
                let sends = self.neighbors.iter().map(|&to| Output::Send { to, beacon });
                self.out.extend(sends);
                let at = now + self.config.orphan_wait;
                self.deadlines.set_earlier(Timer::Silence, at);
            }
        }
    }

    /// Asks for a fresh beacon of the current root: the root sends its next one soon; a
    /// member passes the request to its parent, once per number of the root and parent.
    fn ask_root(&mut self, now: Timestamp) {
        if self.is_root() {
            self.wake(now);
            return;
        }
        let Some(to) = self.parent else { return };
        if self.asked == Some((self.current.seq, Some(to))) {
            return;
        }
        self.asked = Some((self.current.seq, Some(to)));
        let beacon = RootBeacon {
            ask: true,
            ..self.current
        };
        self.out.push_back(Output::Send { to, beacon });
    }

    /// As root, a fresh beacon was asked for: the next one goes as soon as `min_gap` after
    /// the last allows. The pauses keep growing: the request is what repairs, and a link that
    /// flaps must not bring back frequent beacons.
    fn wake(&mut self, now: Timestamp) {
        let at = self
            .last_emit
            .map_or(now, |t| t + self.config.min_gap)
            .max(now);
        self.deadlines.set_earlier(Timer::Emit, at);
    }

    /// See [`Input::Beacon`].
    fn on_beacon(&mut self, now: Timestamp, from: PeerId, b: RootBeacon) {
        if b.root == self.me {
            // Our own beacon passed back by a neighbour: it says whether we are its parent.
            if self.is_root() {
                self.reports.insert(from, b);
                self.tree_changed = true;
                if b.ask {
                    self.wake(now);
                }
            }
            return;
        }
        if b.dist >= self.config.max_dist {
            return;
        }
        if let Some(&(root, seq)) = self
            .expired
            .iter()
            .find(|(root, s)| *root == b.root && b.seq <= *s)
        {
            // Refused: this member gave that root up. If the root is better than ours, the
            // sender asks it for a fresh number (which we would take) when we tell it so, once
            // per given-up number and sender.
            if root < self.current.root && !self.refused.contains(&(root, seq, from)) {
                if self.refused.len() >= MAX_REFUSED {
                    self.refused.pop_front();
                }
                self.refused.push_back((root, seq, from));
                self.out.push_back(Output::Send {
                    to: from,
                    beacon: RootBeacon {
                        ask: true,
                        ..self.current
                    },
                });
            }
            return;
        }
        if b.root > self.current.root {
            if self.reports.remove(&from).is_some() {
                self.tree_changed = true;
            }
            let was_root = self.is_root();
            if self.parent == Some(from) {
                // The parent gave up the root (it lost its own way up).
                self.parent_lost(now, true);
            }
            if b.root > self.current.root {
                // The neighbour follows a worse root: tell it about ours now. If it says it
                // gave ours up (`ask`), ask the root for a fresh number, which it will take (a
                // member that just took over sent a fresh one already).
                self.send(from);
                if b.ask && (was_root || !self.is_root()) {
                    self.ask_root(now);
                }
                return;
            }
        }
        if b.root < self.current.root {
            self.reports.clear();
        }
        self.reports.insert(from, b);
        self.tree_changed = true;
        let fresh = b.root < self.current.root || b.seq > self.current.seq;
        if b.ask && !fresh {
            if b.seq < self.current.seq {
                self.send(from);
            } else {
                self.ask_root(now);
            }
        }
        let old_parent = self.parent;
        self.choose_parent();
        if fresh {
            self.current.root = b.root;
            self.current.seq = b.seq;
            self.current.interval_ms = b.interval_ms;
            self.adopted += 1;
            self.heard = now;
            // Another root's (this member is no longer root, if it was): silence is counted
            // from now.
            self.deadlines.cancel(&Timer::Emit);
            let silence = self.config.silence(b.interval_ms);
            self.deadlines.set(Timer::Silence, now + silence);
        } else if old_parent.is_none() && self.parent.is_some() && !self.is_root() {
            // A way up again without a new number (an orphan's neighbour nearer the root
            // answered): the silence is the root's again, not the orphan's wait.
            let silence = self.config.silence(self.current.interval_ms);
            self.deadlines.set(Timer::Silence, self.heard + silence);
        }
        if fresh || self.parent != old_parent {
            let old_dist = self.current.dist;
            self.current.dist = self
                .parent
                .and_then(|p| self.reports.get(&p))
                .map_or(b.dist, |r| r.dist)
                .saturating_add(1);
            self.current.parent = self.parent;
            if fresh {
                self.flood();
            } else {
                self.announce_parent(old_parent, old_dist);
            }
        }
    }

    /// A new parent for the same root and number: every neighbour hears of it if this member's
    /// hops changed (one may find a shorter way up through it now), else only the old parent
    /// and the new one, the two whose children changed (the others' view of this member is
    /// still right: not their child, as many hops).
    fn announce_parent(&mut self, old_parent: Option<PeerId>, old_dist: u8) {
        if self.current.dist != old_dist {
            self.flood();
            return;
        }
        for p in [old_parent, self.parent].into_iter().flatten() {
            if self.neighbors.contains(&p) {
                self.send(p);
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
        let cur = self.current;
        // Only a way up that cannot lead back through this member (the feasibility condition
        // of distance-vector routing with sequence numbers): a number newer than ours (it came
        // from the root), or ours from fewer hops than ours; the current parent may stay. A
        // member with the same number and as many hops or more may be below this member, and
        // taking it would close a loop that keeps a root alive after it is gone.
        let fresh = best_root < cur.root || newest > cur.seq;
        self.parent = self
            .reports
            .iter()
            .filter(|(_, b)| b.root == best_root)
            .filter(|(p, b)| {
                if fresh {
                    b.seq == newest
                } else {
                    b.seq == cur.seq && (b.dist < cur.dist || Some(**p) == current)
                }
            })
            // A neighbour whose parent is this member is below it, not a way up.
            .filter(|(_, b)| b.parent != Some(me))
            .min_by_key(|(p, b)| (b.dist, Some(**p) != current, **p))
            .map(|(p, _)| *p);
    }

    /// This member takes over as its own root (its root went silent, or its way up is gone)
    /// and remembers the old root as given up; its first beacon goes at once.
    fn become_root(&mut self, now: Timestamp) {
        let root = self.current.root;
        if root != self.me {
            self.expired.retain(|(r, _)| *r != root);
            if self.expired.len() >= MAX_EXPIRED {
                self.expired.pop_front();
            }
            self.expired.push_back((root, self.current.seq));
        }
        self.current = RootBeacon {
            root: self.me,
            seq: self.own_seq,
            dist: 0,
            parent: None,
            interval_ms: millis(self.config.interval),
            ask: false,
        };
        self.parent = None;
        self.reports.clear();
        self.tree_changed = true;
        self.deadlines.cancel(&Timer::Silence);
        self.gap = self.config.interval;
        self.emit(now);
    }

    /// As root: the next beacon goes to every neighbour, announcing the pause until the one
    /// after; that pause grows fourfold for the next time, up to `interval_max`.
    fn emit(&mut self, now: Timestamp) {
        self.own_seq += 1;
        self.emitted += 1;
        self.current.seq = self.own_seq;
        let gap = self.gap;
        self.current.interval_ms = millis(gap);
        self.deadlines.set(Timer::Emit, now + gap);
        self.gap = gap
            .saturating_mul(4)
            .min(self.config.interval_max.max(self.config.interval));
        self.last_emit = Some(now);
        self.flood();
    }

    /// Runs the beacon timer or the root's silence.
    fn run_timers(&mut self, now: Timestamp) {
        // One timer at a time: a take-over sends the new root's first beacon at once.
        if let Some((_, timer)) = self.deadlines.pop_due(now) {
            match timer {
                Timer::Silence => self.become_root(now),
                Timer::Emit => self.emit(now),
            }
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

    /// Shorthand for `handle(now, Input::NeighborDown(peer))`.
    pub fn neighbor_down(&mut self, now: Timestamp, peer: PeerId) {
        self.neighbor_left(now, &peer);
    }

    /// The neighbours this member passes beacons to, in the order they came.
    pub fn neighbors(&self) -> &[PeerId] {
        &self.neighbors
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
            Input::NeighborDown(peer) => self.neighbor_left(now, &peer),
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
            interval_ms: 5_000,
            ask: false,
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
            interval_ms: 5_000,
            ask: false,
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

    /// Members with ids `1..=n` linked by `edges` (pairs of ids), all starting as roots at `T`.
    fn mesh(n: u8, edges: &[(u8, u8)]) -> Vec<RootTree> {
        let r = &mut rng();
        let mut m: Vec<RootTree> = (1..=n)
            .map(|i| RootTree::new(Config::default(), id(i), T, T))
            .collect();
        for &(a, b) in edges {
            let (ia, ib) = (usize::from(a - 1), usize::from(b - 1));
            StateMachine::handle(&mut m[ia], T, Input::NeighborUp(id(b)), r);
            StateMachine::handle(&mut m[ib], T, Input::NeighborUp(id(a)), r);
        }
        m
    }

    /// Runs every member's timers and delivers beacons instantly until `until`; returns the
    /// time of the last timer run.
    fn run(members: &mut [RootTree], from: Timestamp, until: Timestamp) -> Timestamp {
        let mut now = from;
        loop {
            for x in members.iter_mut() {
                while x.poll_timeout().is_some_and(|t| t <= now) {
                    StateMachine::handle_timeout(x, now, &mut rng());
                }
            }
            settle(members, now);
            match members.iter().filter_map(|x| x.poll_timeout()).min() {
                Some(next) if next <= until => now = next.max(now),
                _ => return now,
            }
        }
    }

    /// Both ends of the link `a`–`b` see it go.
    fn cut(members: &mut [RootTree], now: Timestamp, a: u8, b: u8) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(m) = members.iter_mut().find(|m| m.me == id(x)) {
                StateMachine::handle(m, now, Input::NeighborDown(id(y)), &mut rng());
            }
        }
    }

    /// Every member follows `root`, its hops are its breadth-first distance from `root` over
    /// `edges`, and parents and children agree.
    fn assert_full_tree(members: &[RootTree], edges: &[(u8, u8)], root: u8) {
        let alive: Vec<u8> = members.iter().map(|m| m.me.as_bytes()[0]).collect();
        let mut dist: BTreeMap<u8, u8> = BTreeMap::from([(root, 0)]);
        let mut queue = VecDeque::from([root]);
        while let Some(x) = queue.pop_front() {
            let d = dist[&x];
            for &(a, b) in edges {
                for (p, q) in [(a, b), (b, a)] {
                    if p == x && alive.contains(&q) && !dist.contains_key(&q) {
                        dist.insert(q, d + 1);
                        queue.push_back(q);
                    }
                }
            }
        }
        for m in members {
            let me = m.me.as_bytes()[0];
            assert_eq!(m.root(), id(root), "member {me}");
            assert_eq!(m.dist(), dist[&me], "member {me}");
            match m.parent() {
                None => assert_eq!(me, root),
                Some(p) => {
                    let parent = members.iter().find(|x| x.me == p).unwrap();
                    assert!(parent.children().any(|c| *c == m.me), "member {me}");
                }
            }
        }
    }

    /// A 3 × 4 grid: 1 2 3 4 / 5 6 7 8 / 9 10 11 12.
    const GRID: [(u8, u8); 17] = [
        (1, 2),
        (2, 3),
        (3, 4),
        (5, 6),
        (6, 7),
        (7, 8),
        (9, 10),
        (10, 11),
        (11, 12),
        (1, 5),
        (2, 6),
        (3, 7),
        (4, 8),
        (5, 9),
        (6, 10),
        (7, 11),
        (8, 12),
    ];

    #[test]
    fn a_stable_tree_goes_quiet_at_the_longest_pause() {
        let mut m = mesh(12, &GRID);
        let hour = T + TimeDelta::from_secs(3_600);
        let now = run(&mut m, T, hour);
        assert_full_tree(&m, &GRID, 1);
        let before = m[0].emitted();
        let others: u64 = m[1..].iter().map(|x| x.emitted()).sum();
        let later = run(&mut m, now, hour + TimeDelta::from_secs(3_200));
        // Ten minutes' worth of `interval_max` pauses: 10 beacons in 3,200 s, not 640.
        let beacons = m[0].emitted() - before;
        assert!((9..=11).contains(&beacons), "{beacons} beacons");
        let still: u64 = m[1..].iter().map(|x| x.emitted()).sum();
        assert_eq!(others, still, "nobody timed out the root");
        assert_full_tree(&m, &GRID, 1);
        // Each beacon announces the pause to the next; members time the silence from it.
        assert_eq!(m[0].current.interval_ms, 320_000);
        let silence = m[11].poll_timeout().unwrap();
        assert!(silence > later + TimeDelta::from_secs(320), "{silence:?}");
    }

    #[test]
    fn a_root_crash_is_followed_by_a_new_root_and_a_full_tree_within_the_orphan_wait() {
        let mut m = mesh(12, &GRID);
        let now = run(&mut m, T, T + TimeDelta::from_secs(3_600));
        assert_full_tree(&m, &GRID, 1);
        // Member 1 crashes; its neighbours 2 and 5 see it go. They ask for a fresh beacon,
        // none comes, and within `orphan_wait` (3 s) the tree is whole again: nobody waits for
        // the silence (1,024 s by now).
        m.remove(0);
        cut(&mut m, now, 2, 1);
        cut(&mut m, now, 5, 1);
        let wait = Config::default().orphan_wait;
        let after = run(&mut m, now, now + wait);
        assert_eq!(after, now + wait);
        let edges: Vec<(u8, u8)> = GRID.iter().copied().filter(|e| e.0 != 1).collect();
        assert_full_tree(&m, &edges, 2);
        // The new root beacons often again, and then backs off.
        assert_eq!(m[0].current.interval_ms, 5_000);
    }

    #[test]
    fn a_lost_parent_is_replaced_at_once_without_a_new_root() {
        let mut m = mesh(12, &GRID);
        let now = run(&mut m, T, T + TimeDelta::from_secs(3_600));
        // Member 6 (2 hops) has two neighbours 1 hop from the root: 2 and 5.
        let six = &m[5];
        let (parent, dist) = (six.parent().unwrap(), six.dist());
        assert_eq!(dist, 2);
        let other = if parent == id(2) { 5 } else { 2 };
        let adopted: Vec<u64> = m.iter().map(|x| x.adopted()).collect();
        cut(&mut m, now, 6, parent.as_bytes()[0]);
        // At once, before any beacon travels.
        assert_eq!(m[5].parent(), Some(id(other)));
        assert_eq!(m[5].dist(), 2);
        assert!(!m[5].is_root());
        run(&mut m, now, now);
        let edges: Vec<(u8, u8)> = GRID
            .iter()
            .copied()
            .filter(|&e| e != (6, parent.as_bytes()[0]) && e != (parent.as_bytes()[0], 6))
            .collect();
        assert_full_tree(&m, &edges, 1);
        let now_adopted: Vec<u64> = m.iter().map(|x| x.adopted()).collect();
        assert_eq!(adopted, now_adopted, "nobody followed another root");
    }

    #[test]
    fn a_member_cut_off_below_the_root_rejoins_through_a_fresh_beacon() {
        let mut m = mesh(12, &GRID);
        let now = run(&mut m, T, T + TimeDelta::from_secs(3_600));
        // 2 (1 hop) loses the root but not the others. Its neighbours 3 and 6 are its
        // children here, so its request goes nowhere: after `orphan_wait` it takes over, its
        // children follow, a neighbour of theirs that still follows 1 asks the root for a
        // fresh beacon, and everyone follows 1 again within `orphan_wait` + `min_gap`, not
        // after the root's pause (320 s by now).
        cut(&mut m, now, 1, 2);
        let c = Config::default();
        run(&mut m, now, now + c.orphan_wait + c.min_gap);
        let edges: Vec<(u8, u8)> = GRID.iter().copied().filter(|&e| e != (1, 2)).collect();
        assert_full_tree(&m, &edges, 1);
    }

    #[test]
    fn an_orphan_asks_its_neighbours_and_follows_the_root_again_without_taking_over() {
        // 1 - 2 - 3 and 1 - 4 - 5 - 3: 3 (2 hops, parent 2) loses 2; its other neighbour, 5,
        // is as far from the root as 3 is, so not a safe parent until a fresh beacon says so.
        let edges = [(1, 2), (2, 3), (1, 4), (4, 5), (5, 3)];
        let mut m = mesh(5, &edges);
        let now = run(&mut m, T, T + TimeDelta::from_secs(3_600));
        assert_full_tree(&m, &edges, 1);
        assert_eq!(m[2].parent(), Some(id(2)));
        let emitted: Vec<u64> = m.iter().map(|x| x.emitted()).collect();
        cut(&mut m, now, 2, 3);
        // The request goes 3 - 5 - 4 - 1 at once; the root's fresh beacon comes back as soon
        // as `min_gap` after its last allows (this run ends just after a beacon of the root).
        let back = run(&mut m, now, now + Config::default().min_gap);
        assert_eq!(back, now + Config::default().min_gap);
        let remaining: Vec<(u8, u8)> = edges.iter().copied().filter(|&e| e != (2, 3)).collect();
        assert_full_tree(&m, &remaining, 1);
        assert_eq!(m[2].parent(), Some(id(5)));
        let after: Vec<u64> = m.iter().map(|x| x.emitted()).collect();
        assert_eq!(after[0], emitted[0] + 1, "one fresh beacon of the root");
        assert_eq!(after[1..], emitted[1..], "nobody took over");
        // And the silence is the root's again, not the orphan's wait.
        assert!(m[2].poll_timeout().unwrap() > now + TimeDelta::from_secs(16));
    }

    #[test]
    fn an_orphan_never_takes_a_parent_from_its_own_subtree() {
        // 1 - 2 - 3 - 4: 2 loses the root; while it waits, a link 2 - 4 comes up and 4 (still
        // following 1 through 3, and through 2) sends its beacon, three hops from the root.
        // Taking 4 as parent would close the loop 2 - 4 - 3 - 2 and keep a dead root alive
        // (found in a 12-node run whose topic split in two parts that both followed one root
        // and so never merged). 2 refuses it: same number, not fewer hops than its own.
        let edges = [(1, 2), (2, 3), (3, 4)];
        let mut m = mesh(4, &edges);
        let now = run(&mut m, T, T + TimeDelta::from_secs(3_600));
        cut(&mut m, now, 1, 2);
        let r = &mut rng();
        StateMachine::handle(&mut m[1], now, Input::NeighborUp(id(4)), r);
        StateMachine::handle(&mut m[3], now, Input::NeighborUp(id(2)), r);
        settle(&mut m, now);
        assert_eq!(m[1].parent(), None, "2 took a parent below itself");
        let wait = Config::default().orphan_wait;
        run(&mut m, now, now + wait);
        assert_full_tree(&m[1..], &[(2, 3), (3, 4), (2, 4)], 2);
    }

    #[test]
    fn an_orphan_that_hears_nothing_takes_over_after_its_wait() {
        // 1 - 2 - 3 - 4: 3 loses 2 and has no other way up; 4 is its child.
        let edges = [(1, 2), (2, 3), (3, 4)];
        let mut m = mesh(4, &edges);
        let now = run(&mut m, T, T + TimeDelta::from_secs(3_600));
        cut(&mut m, now, 2, 3);
        let wait = Config::default().orphan_wait;
        run(&mut m, now, now + wait - TimeDelta::from_millis(1));
        assert_eq!(m[2].root(), id(1));
        run(&mut m, now, now + wait);
        assert_eq!(m[2].root(), id(3));
        assert_eq!(m[3].root(), id(3));
        assert_eq!(m[3].parent(), Some(id(3)));
    }

    #[test]
    fn an_announced_pause_cannot_stretch_the_silence_beyond_the_longest() {
        let r = &mut rng();
        let mut x = RootTree::new(Config::default(), id(5), T, T);
        StateMachine::handle(&mut x, T, Input::NeighborUp(id(3)), r);
        let beacon = RootBeacon {
            root: id(1),
            seq: 1,
            dist: 1,
            parent: Some(id(1)),
            interval_ms: u32::MAX,
            ask: false,
        };
        let input = Input::Beacon {
            from: id(3),
            beacon,
        };
        StateMachine::handle(&mut x, T, input, r);
        // 16 s × 320 s / 5 s.
        assert_eq!(x.poll_timeout(), Some(T + TimeDelta::from_secs(1_024)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// After `handle_timeout(t)`, `poll_timeout()` is never at or before `t`; exactly one
        /// timer is set: the next beacon while root, the root's silence otherwise.
        #[test]
        fn timers_move_forward_under_random_inputs(
            steps in prop::collection::vec(
                (0u8..4, 0u8..6, 0u8..12, 0u64..8, 1u8..40, 0u32..20_000, any::<u32>()),
                1..60,
            ),
        ) {
            let r = &mut rng();
            let me = id(6);
            let mut x = RootTree::new(Config::default(), me, T, T);
            let mut now = T;
            for (kind, n, root, seq, dist, wait, interval_ms) in steps {
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
                            interval_ms,
                            ask: interval_ms % 3 == 0,
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
                prop_assert!(at <= until + Config::default().silence(u32::MAX));
                now = until;
            }
        }
    }

    /// Two neighbours that keep passing a beacon this member gave up are each answered with
    /// `ask` once: with one remembered refusal they were asked in turn for ever (an instant
    /// network never went quiet).
    #[test]
    fn each_neighbour_passing_a_given_up_beacon_is_asked_once() {
        let r = &mut rng();
        let mut x = RootTree::new(Config::default(), id(12), T, T);
        for n in [11, 14] {
            StateMachine::handle(&mut x, T, Input::NeighborUp(id(n)), r);
        }
        x.expired.push_back((id(1), 2));
        while StateMachine::poll(&mut x).is_some() {}
        let stale = RootBeacon {
            root: id(1),
            seq: 2,
            dist: 3,
            parent: Some(id(13)),
            interval_ms: 20_000,
            ask: false,
        };
        let mut asks = 0;
        for round in 0..20 {
            let from = id(if round % 2 == 0 { 11 } else { 14 });
            let input = Input::Beacon {
                from,
                beacon: stale,
            };
            StateMachine::handle(&mut x, T, input, r);
            while let Some(o) = StateMachine::poll(&mut x) {
                if let Output::Send { beacon, .. } = o {
                    asks += usize::from(beacon.ask);
                }
            }
        }
        assert_eq!(asks, 2);
    }

    /// A neighbour that follows a worse root is told about ours and nothing more: asking the
    /// root for a fresh number each time made every root re-flood once per `min_gap` through a
    /// join storm (10,000 nodes: 1.65 M topic beacons in the first 30 s, 0.95 M without).
    /// Only a neighbour that refuses our root because it gave it up asks for a fresh number.
    #[test]
    fn only_a_neighbour_that_gave_our_root_up_makes_us_ask_for_a_fresh_number() {
        let r = &mut rng();
        // 3 follows root 1 through its parent 2 (seq 4); 9 is a new neighbour, its own root.
        let mut x = RootTree::new(Config::default(), id(3), T, T);
        StateMachine::handle(&mut x, T, Input::NeighborUp(id(2)), r);
        let from_parent = RootBeacon {
            root: id(1),
            seq: 4,
            dist: 1,
            parent: Some(id(1)),
            interval_ms: 5_000,
            ask: false,
        };
        let input = Input::Beacon {
            from: id(2),
            beacon: from_parent,
        };
        StateMachine::handle(&mut x, T, input, r);
        StateMachine::handle(&mut x, T, Input::NeighborUp(id(9)), r);
        while StateMachine::poll(&mut x).is_some() {}
        let nine = RootBeacon {
            root: id(9),
            seq: 0,
            dist: 0,
            parent: None,
            interval_ms: 5_000,
            ask: false,
        };
        let sends = |x: &mut RootTree| -> Vec<(PeerId, RootBeacon)> {
            core::iter::from_fn(|| StateMachine::poll(x))
                .filter_map(|o| match o {
                    Output::Send { to, beacon } => Some((to, beacon)),
                    _ => None,
                })
                .collect()
        };
        let input = Input::Beacon {
            from: id(9),
            beacon: nine,
        };
        StateMachine::handle(&mut x, T, input, r);
        let out = sends(&mut x);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].0, out[0].1.root, out[0].1.ask),
            (id(9), id(1), false)
        );
        // 9 gave root 1 up at seq 4 and says so: now 3 asks its parent for a fresh number.
        let refusal = RootBeacon { ask: true, ..nine };
        let input = Input::Beacon {
            from: id(9),
            beacon: refusal,
        };
        StateMachine::handle(&mut x, T, input, r);
        let out = sends(&mut x);
        assert!(
            out.iter()
                .any(|(to, b)| *to == id(2) && b.ask && b.root == id(1)),
            "{out:?}"
        );
    }

    #[test]
    fn a_member_refusing_a_given_up_root_says_so_once_to_the_sender() {
        let r = &mut rng();
        let mut m = line(3); // 3 - 2 - 1
        for x in m.iter_mut() {
            StateMachine::handle_timeout(x, T, r);
        }
        settle(&mut m, T);
        // 3 hears nothing from root 1 for the silence and takes over, giving 1's seq up.
        let later = T + TimeDelta::from_secs(17);
        StateMachine::handle_timeout(&mut m[0], later, r);
        assert_eq!(m[0].root(), id(3));
        while StateMachine::poll(&mut m[0]).is_some() {}
        let stale = RootBeacon {
            root: id(1),
            seq: m[1].current.seq,
            dist: 1,
            parent: Some(id(1)),
            interval_ms: 5_000,
            ask: false,
        };
        for _ in 0..2 {
            let input = Input::Beacon {
                from: id(2),
                beacon: stale,
            };
            StateMachine::handle(&mut m[0], later, input, r);
        }
        let out: Vec<Output> = core::iter::from_fn(|| StateMachine::poll(&mut m[0])).collect();
        let asks: Vec<&Output> = out
            .iter()
            .filter(|o| matches!(o, Output::Send { to, beacon } if *to == id(2) && beacon.ask))
            .collect();
        assert_eq!(asks.len(), 1, "{out:?}");
        assert_eq!(m[0].root(), id(3));
    }

    /// A member that takes another parent from as many hops tells only the parents concerned;
    /// in a 2,000-node join storm such floods were a fifth of all beacons.
    #[test]
    fn a_new_parent_at_the_same_distance_is_told_only_to_the_parents() {
        let r = &mut rng();
        let mut x = RootTree::new(Config::default(), id(5), T, T);
        for n in [2, 3, 7, 8] {
            StateMachine::handle(&mut x, T, Input::NeighborUp(id(n)), r);
        }
        for from in [2, 3] {
            let beacon = RootBeacon {
                root: id(1),
                seq: 1,
                dist: 1,
                parent: Some(id(1)),
                interval_ms: 5_000,
                ask: false,
            };
            let input = Input::Beacon {
                from: id(from),
                beacon,
            };
            StateMachine::handle(&mut x, T, input, r);
        }
        assert_eq!((x.parent(), x.dist()), (Some(id(2)), 2));
        while StateMachine::poll(&mut x).is_some() {}
        StateMachine::handle(&mut x, T, Input::NeighborDown(id(2)), r);
        assert_eq!((x.parent(), x.dist()), (Some(id(3)), 2));
        let to: Vec<PeerId> = core::iter::from_fn(|| StateMachine::poll(&mut x))
            .filter_map(|o| match o {
                Output::Send { to, .. } => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(to, vec![id(3)]);
    }
}
