//! The eager set in tree mode (SPEC.md §15.4, §15.8): the owner's tree links, plus *bypass
//! links* where the tree failed, minus parents *demoted* for forwarding nothing.
//!
//! - **Bypass links.** When the parent missed a message (`watch.rs`: it came first from
//!   another peer, and the parent's own copy did not follow within `parent_watch`), the peer
//!   that served it becomes a bypass link for `bypass_for`: eager, kept through tree updates,
//!   and not pruned for duplicates. The node tells the peer with an empty GRAFT, which in
//!   tree mode means "keep pushing to me": the peer keeps it eager, through its own tree
//!   updates and duplicates, until it sends PRUNE (when the link ends) or stops being a
//!   neighbour. At most `max_bypass` links; a new one replaces the oldest. Honest trees
//!   rarely miss anything, so they rarely have one.
//! - **Demotion.** A parent that missed `parent_misses` messages in a row is removed from the
//!   eager set for `distrust_for`: it gets IHAVE only, its pushes are still accepted, and the
//!   owner's tree is left as it is (its root and shape do not change). Any payload it sends
//!   ends the demotion: it forwards after all.

use super::*;

/// Most demoted peers remembered (the one demoted longest ago is forgotten first).
pub(super) const MAX_DISTRUSTED: usize = 8;

impl Plumtree {
    /// See [`Input::SetTree`]: the tree's links, the bypass links and the peers kept at their
    /// request are eager, every other neighbour (and a demoted parent) lazy.
    pub(super) fn follow_tree(&mut self, links: &[PeerId]) {
        self.tree_mode = true;
        self.tree = links.iter().copied().collect();
        let all: Vec<PeerId> = self
            .eager_peers
            .iter()
            .chain(self.lazy_peers.iter())
            .copied()
            .collect();
        self.eager_peers.clear();
        self.lazy_peers.clear();
        for p in all {
            if self.wants_eager(&p) {
                self.eager_peers.insert(p);
            } else {
                self.lazy_peers.insert(p);
            }
        }
    }

    /// Whether `peer` belongs in the eager set at a tree update.
    fn wants_eager(&self, peer: &PeerId) -> bool {
        !self.is_distrusted(peer) && (self.tree.contains(peer) || self.keeps_link(peer))
    }

    /// Whether duplicates from `peer` leave its link alone: in tree mode, a tree link, a bypass
    /// link or a peer kept at its request.
    pub(super) fn keeps_link(&self, peer: &PeerId) -> bool {
        self.tree_mode
            && (self.tree.contains(peer) || self.is_bypass(peer) || self.kept.contains(peer))
    }

    pub(super) fn is_bypass(&self, peer: &PeerId) -> bool {
        self.bypass.iter().any(|(p, _)| p == peer)
    }

    pub(super) fn is_distrusted(&self, peer: &PeerId) -> bool {
        self.distrusted.iter().any(|(p, _)| p == peer)
    }

    /// A GRAFT from neighbour `from` (`empty`: it names no message): it becomes eager, and in
    /// tree mode an empty one keeps it so until it sends PRUNE. A demoted peer is served but
    /// stays lazy.
    pub(super) fn grafted_by(&mut self, from: PeerId, empty: bool) {
        if self.is_distrusted(&from) {
            return;
        }
        self.lazy_peers.remove(&from);
        self.eager_peers.insert(from);
        if empty && self.tree_mode {
            self.kept.insert(from);
        }
    }

    /// A PRUNE from neighbour `from`: no more pushes to it, and it is no longer kept. A bypass
    /// link stays (its pushes to us are still welcome) until it ends.
    pub(super) fn pruned_by(&mut self, from: &PeerId) {
        self.kept.remove(from);
        if self.eager_peers.remove(from) {
            self.lazy_peers.insert(*from);
        }
    }

    /// `peer` served a message the parent missed: it becomes (or stays) a bypass link.
    pub(super) fn add_bypass(&mut self, now: Timestamp, peer: PeerId) {
        if !self.tree_mode
            || self.config.max_bypass == 0
            || !self.is_neighbor(&peer)
            || self.tree.contains(&peer)
            || self.is_distrusted(&peer)
        {
            return;
        }
        let until = now + self.config.bypass_for;
        if let Some(e) = self.bypass.iter_mut().find(|(p, _)| *p == peer) {
            e.1 = until;
        } else {
            while self.bypass.len() >= self.config.max_bypass {
                if let Some((old, _)) = self.bypass.pop_front() {
                    self.end_bypass(old);
                }
            }
            self.bypass.push_back((peer, until));
            self.counters.bypasses += 1;
            self.lazy_peers.remove(&peer);
            self.eager_peers.insert(peer);
            self.out.push_back(Output::Send {
                to: peer,
                message: Message::Graft(BoundedVec::default()),
            });
        }
        self.links_timer();
    }

    /// A bypass link to `peer` ended: unless the tree links it (or it asked to be kept) it goes
    /// lazy, and unless the tree links it, it is told to stop pushing.
    fn end_bypass(&mut self, peer: PeerId) {
        if self.tree.contains(&peer) || !self.is_neighbor(&peer) {
            return;
        }
        if !self.kept.contains(&peer) && self.eager_peers.remove(&peer) {
            self.lazy_peers.insert(peer);
        }
        self.out.push_back(Output::Send {
            to: peer,
            message: Message::Prune,
        });
    }

    /// The parent missed `parent_misses` messages in a row: it is demoted.
    pub(super) fn distrust(&mut self, now: Timestamp, peer: PeerId) {
        self.counters.parents_distrusted += 1;
        self.distrusted.retain(|(p, _)| *p != peer);
        if self.distrusted.len() >= MAX_DISTRUSTED {
            self.distrusted.pop_front();
        }
        self.distrusted
            .push_back((peer, now + self.config.distrust_for));
        self.kept.remove(&peer);
        if self.eager_peers.remove(&peer) {
            self.lazy_peers.insert(peer);
        }
        self.links_timer();
    }

    /// A payload from `peer`: a demoted peer forwards after all, and is promoted back.
    pub(super) fn trust_again(&mut self, peer: &PeerId) {
        let Some(i) = self.distrusted.iter().position(|(p, _)| p == peer) else {
            return;
        };
        self.distrusted.remove(i);
        if self.lazy_peers.contains(peer) && self.wants_eager(peer) {
            self.lazy_peers.remove(peer);
            self.eager_peers.insert(*peer);
        }
        self.links_timer();
    }

    /// `peer` is no longer a neighbour: its bypass link, or its request to be kept, ends.
    pub(super) fn forget_links(&mut self, peer: &PeerId) {
        self.kept.remove(peer);
        let before = self.bypass.len();
        self.bypass.retain(|(p, _)| p != peer);
        if self.bypass.len() != before {
            self.links_timer();
        }
    }

    /// [`Timer::Links`]: bypass links and demotions whose time is over end.
    pub(super) fn links_due(&mut self, now: Timestamp) {
        while let Some(i) = self.bypass.iter().position(|(_, t)| *t <= now) {
            if let Some((peer, _)) = self.bypass.remove(i) {
                self.end_bypass(peer);
            }
        }
        while let Some(i) = self.distrusted.iter().position(|(_, t)| *t <= now) {
            if let Some((peer, _)) = self.distrusted.remove(i)
                && self.lazy_peers.contains(&peer)
                && self.wants_eager(&peer)
            {
                self.lazy_peers.remove(&peer);
                self.eager_peers.insert(peer);
            }
        }
        self.links_timer();
    }

    /// Sets [`Timer::Links`] to the earliest end of a bypass link or a demotion.
    fn links_timer(&mut self) {
        let next = self
            .bypass
            .iter()
            .chain(self.distrusted.iter())
            .map(|(_, t)| *t)
            .min();
        match next {
            Some(at) => self.deadlines.set(Timer::Links, at),
            None => {
                self.deadlines.cancel(&Timer::Links);
            }
        }
    }
}
