//! The node's subscribed topics, with the bookkeeping that keeps an idle topic free.
//!
//! A node in hundreds of topics must not look at every topic on every input: most of them are
//! idle. The table remembers which topics were handed out mutably since the last
//! [`TopicTable::settle`] (only those can have outputs waiting or a changed timer) and keeps
//! every other topic's earliest timer in an ordered index, so that draining outputs, finding
//! the next wake-up and finding the topics due are proportional to the topics that moved, not
//! to the topics held (SPEC.md §15.5).

use crate::broadcast::topic::Topic;
use crate::id::{PeerId, TopicId};
use crate::time::Timestamp;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

/// One subscribed topic and its bookkeeping.
struct Entry {
    topic: Box<Topic>,
    /// In `dirty` (handed out mutably since the last settle).
    dirty: bool,
    /// The earliest timer recorded in `deadlines` at the last settle.
    deadline: Option<Timestamp>,
    /// The peers whose connection this topic's overlay wanted at the last settle (sorted,
    /// counted in `wanted`).
    linked: Vec<PeerId>,
}

/// Subscribed topics by id (at most `MAX_SUBSCRIPTIONS`).
#[derive(Default)]
pub(super) struct TopicTable {
    map: BTreeMap<TopicId, Entry>,
    /// Topics handed out mutably since the last settle.
    dirty: BTreeSet<TopicId>,
    /// The recorded earliest timer of every topic that has one (not yet settled topics may
    /// be stale here: see `poll_timeout`).
    deadlines: BTreeSet<(Timestamp, TopicId)>,
    /// For each peer, the topics whose recorded `linked` name it (in id order).
    wanted: BTreeMap<PeerId, Vec<TopicId>>,
}

impl TopicTable {
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn contains_key(&self, id: &TopicId) -> bool {
        self.map.contains_key(id)
    }

    pub(super) fn get(&self, id: &TopicId) -> Option<&Topic> {
        self.map.get(id).map(|e| &*e.topic)
    }

    /// The topic, marked as possibly changed (outputs to drain, timers to re-read).
    pub(super) fn get_mut(&mut self, id: &TopicId) -> Option<&mut Topic> {
        let e = self.map.get_mut(id)?;
        if !e.dirty {
            e.dirty = true;
            self.dirty.insert(*id);
        }
        Some(&mut *e.topic)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &TopicId> {
        self.map.keys()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&TopicId, &Topic)> {
        self.map.iter().map(|(id, e)| (id, &*e.topic))
    }

    /// Every topic, each marked as possibly changed (an input for all of them).
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Topic> {
        let dirty = &mut self.dirty;
        self.map.iter_mut().map(move |(id, e)| {
            if !e.dirty {
                e.dirty = true;
                dirty.insert(*id);
            }
            &mut *e.topic
        })
    }

    pub(super) fn insert(&mut self, id: TopicId, topic: Box<Topic>) {
        self.remove(&id);
        let entry = Entry {
            topic,
            dirty: true,
            deadline: None,
            linked: Vec::new(),
        };
        self.map.insert(id, entry);
        self.dirty.insert(id);
    }

    pub(super) fn remove(&mut self, id: &TopicId) -> Option<Box<Topic>> {
        let e = self.map.remove(id)?;
        if let Some(at) = e.deadline {
            self.deadlines.remove(&(at, *id));
        }
        for p in &e.linked {
            unlink(&mut self.wanted, p, id);
        }
        self.dirty.remove(id);
        Some(e.topic)
    }

    /// The smallest topic id after `last` among those handed out mutably since the last
    /// settle.
    pub(super) fn next_dirty_after(&self, last: Option<TopicId>) -> Option<TopicId> {
        match last {
            None => self.dirty.first().copied(),
            Some(l) => self
                .dirty
                .range((core::ops::Bound::Excluded(l), core::ops::Bound::Unbounded))
                .next()
                .copied(),
        }
    }

    /// Records the earliest timer (`deadline`) and the wanted connections (`linked`) of every
    /// topic that changed.
    pub(super) fn settle(
        &mut self,
        deadline: impl Fn(&Topic) -> Option<Timestamp>,
        linked: impl Fn(&Topic) -> Vec<PeerId>,
    ) {
        for id in core::mem::take(&mut self.dirty) {
            let Some(e) = self.map.get_mut(&id) else {
                continue;
            };
            e.dirty = false;
            let now = deadline(&e.topic);
            if now != e.deadline {
                if let Some(at) = e.deadline {
                    self.deadlines.remove(&(at, id));
                }
                if let Some(at) = now {
                    self.deadlines.insert((at, id));
                }
                e.deadline = now;
            }
            let mut peers = linked(&e.topic);
            peers.sort_unstable();
            peers.dedup();
            if peers != e.linked {
                for p in &e.linked {
                    unlink(&mut self.wanted, p, &id);
                }
                for p in &peers {
                    let topics = self.wanted.entry(*p).or_default();
                    if let Err(at) = topics.binary_search(&id) {
                        topics.insert(at, id);
                    }
                }
                e.linked = peers;
            }
        }
    }

    /// Whether some topic's overlay wants the connection to `peer`: recorded for the topics
    /// settled, asked afresh (`wants`) of those changed since.
    pub(super) fn wants_link(&self, peer: &PeerId, wants: impl Fn(&Topic) -> bool) -> bool {
        let mut stale = 0;
        for e in self.dirty.iter().filter_map(|id| self.map.get(id)) {
            if wants(&e.topic) {
                return true;
            }
            if e.linked.binary_search(peer).is_ok() {
                stale += 1;
            }
        }
        self.wanted.get(peer).is_some_and(|t| t.len() > stale)
    }

    /// The topics that may link `peer`: those recorded, and those changed since (in id order,
    /// perhaps with some that no longer do).
    pub(super) fn linking(&self, peer: &PeerId) -> Vec<TopicId> {
        let mut ids: BTreeSet<TopicId> = self.dirty.clone();
        ids.extend(self.wanted.get(peer).into_iter().flatten().copied());
        ids.into_iter().collect()
    }

    /// The earliest timer of any topic. Never later than the true one: a topic changed since
    /// the last settle is read afresh, and its recorded timer (perhaps stale, perhaps earlier)
    /// can only make the answer earlier — a spurious wake-up, never a missed one.
    pub(super) fn poll_timeout(
        &self,
        deadline: impl Fn(&Topic) -> Option<Timestamp>,
    ) -> Option<Timestamp> {
        let recorded = self.deadlines.first().map(|(at, _)| *at);
        self.dirty
            .iter()
            .filter_map(|id| self.map.get(id))
            .filter_map(|e| deadline(&e.topic))
            .chain(recorded)
            .min()
    }

    /// The topics whose timer may be due at `now` (recorded due, or changed since the last
    /// settle), in id order.
    pub(super) fn maybe_due(&self, now: Timestamp) -> Vec<TopicId> {
        let mut due: BTreeSet<TopicId> = self.dirty.clone();
        due.extend(
            self.deadlines
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, id)| *id),
        );
        due.into_iter().collect()
    }
}

/// Topic `id` no longer names `peer`.
fn unlink(wanted: &mut BTreeMap<PeerId, Vec<TopicId>>, peer: &PeerId, id: &TopicId) {
    if let Some(topics) = wanted.get_mut(peer) {
        topics.retain(|t| t != id);
        if topics.is_empty() {
            wanted.remove(peer);
        }
    }
}
