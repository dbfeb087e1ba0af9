//! Island merging (SPEC.md §13.6). HyParView repairs an overlay that *lost* something; islands
//! that formed apart while everyone joined at once lost nothing, so nothing repairs them. With
//! [`Config::merge`] set (the node-level overlay), each node follows its *component's root*: the
//! smallest id its component floods, with the same beacons a topic's overlay uses
//! ([`RootTree`]: silent while stable, a crashed root is replaced within its silence timeout).
//! Now and then a node *probes* one peer it knows but is not linked to (its passive view or its
//! join contacts): PROBE names the prober's root; a peer that follows another root is in another
//! island and accepts the prober as an active neighbour (NEIGHBOR_REPLY accepted), so the two
//! islands fuse and the smaller root floods through both. A peer with the same root refuses and
//! the connection closes.
//!
//! The pause between probes starts at `probe_interval` and grows fourfold after each probe up to
//! `probe_interval_max`; it drops back whenever the node's root changes (a merge or a lost root:
//! more islands may be near) or a probe of its own made a bridge. A stable single overlay thus
//! pays one probe per node per `probe_interval_max` and one beacon flood per `interval_max`.

use super::*;
use crate::membership::tree::{self, RootTree};

/// Island-merging parameters (SPEC.md §13.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeConfig {
    /// The component root's beacons (the same parameters as a topic's root beacons).
    pub beacon: tree::Config,
    /// First pause before a merge probe, and the pause again after the node's root changed or
    /// one of its probes made a bridge. Default 5 s.
    pub probe_interval: TimeDelta,
    /// While nothing changes, the pause grows fourfold after each probe up to this (a probe
    /// to a peer not yet met costs two full Hellos, ~13 KB). Default 30 min.
    pub probe_interval_max: TimeDelta,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            beacon: tree::Config::default(),
            probe_interval: TimeDelta::from_secs(5),
            probe_interval_max: TimeDelta::from_secs(1800),
        }
    }
}

/// A node's component identity and probe pacing.
#[derive(Debug)]
pub(super) struct Component {
    tree: RootTree,
    next_probe: Timestamp,
    pause: TimeDelta,
    /// The root when the pacing was last looked at: a change restarts it.
    root: PeerId,
    interval: TimeDelta,
    interval_max: TimeDelta,
}

impl Component {
    /// A node `me` that starts as its own root at `now`.
    pub(super) fn new(
        config: &MergeConfig,
        me: PeerId,
        now: Timestamp,
        rng: &mut machine::Rng,
    ) -> Self {
        let first_beacon = now + jitter(rng, config.beacon.interval);
        let interval = config.probe_interval.max(TimeDelta::from_millis(1));
        Self {
            tree: RootTree::new(config.beacon.clone(), me, now, first_beacon),
            next_probe: now + jitter(rng, interval),
            pause: interval,
            root: me,
            interval,
            interval_max: config.probe_interval_max.max(interval),
        }
    }

    /// Probes go soon again (after `probe_interval`, unless one is due sooner).
    fn restart(&mut self, now: Timestamp) {
        self.pause = self.interval;
        self.next_probe = self.next_probe.min(now + self.interval);
    }
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl HyParView {
    /// The root of this node's component, when island merging is on.
    pub fn component_root(&self) -> Option<PeerId> {
        self.component.as_ref().map(|c| c.tree.root())
    }

    /// The request an attempt sends (and sends again until answered).
    pub(super) fn request(&self, purpose: &Purpose) -> Message {
        match purpose {
            Purpose::Join => Message::Join,
            Purpose::Neighbor(priority) => Message::Neighbor {
                priority: *priority,
            },
            Purpose::Probe => Message::Probe {
                root: self.component_root().unwrap_or(self.me),
            },
        }
    }

    /// A component beacon from `from` (taken from active neighbours only).
    pub(super) fn component_beacon(
        &mut self,
        now: Timestamp,
        from: PeerId,
        beacon: tree::RootBeacon,
    ) {
        match self.component.as_mut() {
            Some(c) if self.active.contains_key(&from) => c.tree.handle(now, from, beacon),
            Some(_) => {}
            None => self.counters.unexpected += 1,
        }
    }

    /// A PROBE from `from`, whose root is `root`: link it if it is in another component.
    pub(super) fn probed(
        &mut self,
        now: Timestamp,
        from: PeerId,
        root: PeerId,
        addresses: Option<Addresses>,
        rng: &mut machine::Rng,
    ) {
        let Some(c) = self.component.as_mut() else {
            self.counters.unexpected += 1;
            return;
        };
        let known = self.active.contains_key(&from);
        let accept = known || root != c.tree.root();
        let link = accept && !known;
        if link {
            c.restart(now);
            self.counters.merge_links += 1;
        }
        self.answer_neighbor(from, addresses, accept, link, rng);
    }

    /// The answer to this node's PROBE: a bridge to another component, or the same one.
    pub(super) fn probe_answered(
        &mut self,
        now: Timestamp,
        from: PeerId,
        addresses: Addresses,
        accepted: bool,
        rng: &mut machine::Rng,
    ) {
        if accepted {
            self.counters.merge_links += 1;
            if let Some(c) = self.component.as_mut() {
                c.restart(now);
            }
            self.add_active(from, addresses, false, rng);
        } else if !self.active.contains_key(&from) {
            self.out.push_back(Output::Disconnect { peer: from });
        }
    }

    /// The component's timers: its tree's, and the next probe.
    pub(super) fn merge_timers(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        let Some(c) = self.component.as_mut() else {
            return;
        };
        if c.tree.poll_timeout().is_some_and(|due| due <= now) {
            c.tree.handle_timeout(now);
        }
        if now < c.next_probe {
            return;
        }
        c.next_probe = now + jitter(rng, c.pause);
        c.pause = c.pause.saturating_mul(4).min(c.interval_max);
        self.probe(now, rng);
    }

    /// Sends one PROBE to a peer this node knows but is not linked to: a passive entry or a
    /// join contact. A node without an active peer does not probe (repair and rejoin bring it
    /// in).
    ///
    /// Every other probe (the second, the fourth, ...: not the first, which all the nodes of a
    /// join storm send within seconds, and would all send to the same bootstrap node) goes to a
    /// join contact that is not an active neighbour, if there is one. The passive view of a node in an island holds peers of that island (its walks and
    /// shuffles stay inside), but the join contacts link every node to one that joined before
    /// it, so some member of any island has a contact outside it: with one candidate among ~30,
    /// that member rarely probed it before its pause grew to minutes (1,000 nodes joining at
    /// once, one trajectory of seed 3: 40 nodes apart to the end of the run).
    fn probe(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        if self.active.is_empty() {
            return;
        }
        let eligible = |i: &PeerInfo| {
            i.peer != self.me
                && !self.active.contains_key(&i.peer)
                && !self.attempts.contains_key(&i.peer)
        };
        let contacts: Vec<PeerInfo> = self
            .contacts
            .iter()
            .filter(|i| eligible(i))
            .cloned()
            .collect();
        let candidates: Vec<PeerInfo> =
            if self.counters.merge_probes % 2 == 1 && !contacts.is_empty() {
                contacts
            } else {
                self.passive
                    .iter()
                    .map(|(p, a)| PeerInfo {
                        peer: *p,
                        addresses: a.clone(),
                    })
                    .chain(contacts)
                    .filter(|i| eligible(i))
                    .collect()
            };
        let Some(target) = sample(candidates, 1, rng).pop() else {
            return;
        };
        if self.attempt(
            now,
            target.peer,
            target.addresses,
            Purpose::Probe,
            Origin::Invited,
            false,
        ) {
            self.counters.merge_probes += 1;
        }
    }

    /// Keeps the component's tree in step with the active view, sends what it queued, notices a
    /// new root, and sets the component's timers. Runs from [`Self::arm_timers`].
    pub(super) fn arm_component(&mut self) {
        let now = self.clock;
        let Some(c) = self.component.as_mut() else {
            return;
        };
        let gone: Vec<PeerId> = c
            .tree
            .neighbors()
            .iter()
            .filter(|p| !self.active.contains_key(p))
            .copied()
            .collect();
        for p in gone {
            c.tree.neighbor_down(now, p);
        }
        let new: Vec<PeerId> = self
            .active
            .keys()
            .filter(|p| !c.tree.neighbors().contains(p))
            .copied()
            .collect();
        for p in new {
            c.tree.neighbor_up(p);
        }
        while let Some(out) = c.tree.poll() {
            if let tree::Output::Send { to, beacon } = out {
                let message = Message::Beacon { beacon };
                self.out.push_back(Output::Send { to, message });
            }
        }
        if c.tree.root() != c.root {
            c.root = c.tree.root();
            c.restart(now);
        }
        match c.tree.poll_timeout() {
            Some(at) => self.deadlines.set(Timer::Component, at),
            None => {
                self.deadlines.cancel(&Timer::Component);
            }
        }
        self.deadlines.set(Timer::Probe, c.next_probe);
    }
}
