//! Broken promises of the tree parent (SPEC.md §15.8): a parent that takes eager pushes and
//! forwards nothing is found within a few messages and demoted (`bypass.rs`), and the peers
//! that served what it missed become bypass links.
//!
//! In tree mode a message from outside this node's subtree comes down from its parent. When
//! one had to be fetched with a GRAFT instead (announced by a lazy peer, never pushed), the
//! node waits `parent_watch` for the parent's own copy: an honest parent that lost the message
//! upstream fetches it too and then pushes it down, late (a duplicate, which is fine). A parent
//! that sent nothing within that time *missed* it: the peer that served it becomes a bypass
//! link, and `parent_misses` misses in a row, with no message from the parent between
//! them, demote the parent and start counting afresh. Any message the parent delivers, first
//! or not, ends a run of misses.

use super::*;

/// Most grafted messages watched at once (the oldest are dropped uncounted beyond it).
pub(super) const MAX_WATCHED: usize = 64;

impl Plumtree {
    /// See [`Input::Parent`]: a new parent starts with a clean record.
    pub(super) fn set_parent(&mut self, parent: Option<PeerId>) {
        if self.parent != parent {
            self.parent = parent;
            self.parent_missed = 0;
            self.watched.clear();
            self.deadlines.cancel(&Timer::ParentWatch);
        }
    }

    /// A payload with `id` came from `from`: if it is the parent's copy, the parent kept its
    /// promise for it (and for the run of misses so far); a demoted peer is promoted back.
    pub(super) fn payload_from(&mut self, from: &PeerId, id: &MessageId) {
        self.trust_again(from);
        if self.parent.as_ref() == Some(from) {
            self.parent_missed = 0;
            self.watched.retain(|(_, w, _)| w != id);
        }
    }

    /// `id` was just delivered for the first time, from `from`; `grafted` if this node had
    /// asked for it with a GRAFT. Such a message is watched (unless it came from a tree link:
    /// the parent, or a child, from below), while the parent is not demoted. Messages pushed
    /// along a bypass link are not: this node pushes them on to its parent at once, so an
    /// honest parent often has nothing to send back (watching them demoted honest parents by
    /// the dozen in `broadcast-drop`, and its p99 went from 0.6 s to 5.5 s).
    pub(super) fn watch_parent(
        &mut self,
        now: Timestamp,
        from: &PeerId,
        id: &MessageId,
        grafted: bool,
    ) {
        let Some(parent) = self.parent else { return };
        if !self.tree_mode
            || !grafted
            || parent == *from
            || self.tree.contains(from)
            || self.is_distrusted(&parent)
        {
            return;
        }
        if self.watched.len() >= MAX_WATCHED {
            self.watched.pop_front();
        }
        let until = now + self.config.parent_watch;
        self.watched.push_back((until, *id, *from));
        if self.deadlines.get(&Timer::ParentWatch).is_none() {
            self.deadlines.set(Timer::ParentWatch, until);
        }
    }

    /// [`Timer::ParentWatch`]: every watched message whose wait is over counts as missed by the
    /// parent, and its first sender becomes a bypass link; enough in a row demote the parent.
    pub(super) fn parent_watch_due(&mut self, now: Timestamp) {
        while let Some(&(until, _, from)) = self.watched.front() {
            if until > now {
                break;
            }
            self.watched.pop_front();
            self.parent_missed += 1;
            self.add_bypass(now, from);
            if let Some(parent) = self.parent {
                self.out.push_back(Output::Evidence {
                    peer: parent,
                    evidence: crate::score::Evidence::BrokenPromise,
                });
            }
            if self.parent_missed >= self.config.parent_misses.max(1)
                && let Some(peer) = self.parent
            {
                self.distrust(now, peer);
                self.parent_missed = 0;
                self.watched.clear();
            }
        }
        if let Some(&(until, _, _)) = self.watched.front() {
            self.deadlines.set(Timer::ParentWatch, until);
        }
    }
}
