//! The retained messages (SPEC.md §15.4): what IWANT, GRAFT and reconciliation are served from,
//! until each message leaves the retention window, within `cache_messages` and `cache_bytes`.
//!
//! When the cache is full, room is made from the author holding the most (bytes when bytes are
//! short, else messages), its earliest-expiring message first: one author publishing far more
//! than the rest evicts its own messages, not theirs, and a topic with one author keeps the
//! paper's oldest-first order. A node's own messages go only when it holds the most itself.

use super::*;

impl Plumtree {
    /// Retains `id` until `expires`, making room first.
    pub(super) fn retain(
        &mut self,
        id: MessageId,
        payload: Payload,
        parent: Option<PeerId>,
        own: bool,
        expires: Timestamp,
    ) {
        let len = payload.message.payload.len();
        while !self.cache_order.is_empty()
            && (self.cache.len() >= self.config.cache_messages
                || self.cache_bytes + len > self.config.cache_bytes)
        {
            let bytes_short = self.cache_bytes + len > self.config.cache_bytes;
            self.evict_for_room(bytes_short);
        }
        let author = payload.message.author;
        self.cache.insert(
            id,
            Box::new(Retained {
                payload,
                parent,
                own,
                len,
            }),
        );
        self.cache_bytes += len;
        let held = self.retained_by.entry(author).or_default();
        held.0 += 1;
        held.1 += len;
        crate::broadcast::message::insert_by_expiry(&mut self.cache_order, expires, id);
        self.retention_timer();
    }

    /// Retains a new message and, for an archiving owner, hands it out to be stored.
    pub(super) fn retain_new(
        &mut self,
        id: MessageId,
        payload: Payload,
        parent: Option<PeerId>,
        own: bool,
        expires: Timestamp,
    ) {
        if self.config.archive {
            self.out.push_back(Output::Archive {
                payload: payload.clone(),
                id,
                expires,
            });
        }
        self.retain(id, payload, parent, own, expires);
    }

    /// Evicts the earliest-expiring message of the author holding the most bytes
    /// (`bytes_short`) or messages (ties: the smallest author id), counted when that is not
    /// the oldest message retained.
    fn evict_for_room(&mut self, bytes_short: bool) {
        let heaviest = self
            .retained_by
            .iter()
            .max_by_key(|(a, (n, b))| (if bytes_short { *b } else { *n }, core::cmp::Reverse(**a)))
            .map(|(a, _)| *a);
        let at = heaviest
            .and_then(|a| {
                self.cache_order.iter().position(|(_, id)| {
                    self.cache
                        .get(id)
                        .is_some_and(|r| r.payload.message.author == a)
                })
            })
            .unwrap_or(0);
        if at > 0 {
            self.counters.evicted_for_share += 1;
        }
        if let Some((_, id)) = self.cache_order.remove(at) {
            self.forget_retained(&id);
        }
    }

    /// Evicts the earliest-expiring message.
    pub(super) fn evict_oldest(&mut self) {
        if let Some((_, id)) = self.cache_order.pop_front() {
            self.forget_retained(&id);
        }
    }

    fn forget_retained(&mut self, id: &MessageId) {
        let Some(r) = self.cache.remove(id) else {
            return;
        };
        self.cache_bytes -= r.len;
        let author = r.payload.message.author;
        if let Some(held) = self.retained_by.get_mut(&author) {
            held.0 -= 1;
            held.1 -= r.len;
            if held.0 == 0 {
                self.retained_by.remove(&author);
            }
        }
    }
}
