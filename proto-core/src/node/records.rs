//! The node's cache of verified peer records: one copy per peer, bounded, verified once.

use crate::id::PeerId;
use crate::identity::record::PeerRecord;
use crate::time::Timestamp;
use alloc::boxed::Box;
use foldhash::fast::FixedState;
use hashbrown::HashMap;

/// A fixed-seed hasher: iteration order depends only on the inserted keys, never on the process,
/// so anything that walks a map reaches outputs in the same order in every run.
pub(crate) type FixedHashMap<K, V> = HashMap<K, V, FixedState>;

/// What happened when a record was offered to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    /// The identical record is already held: nothing to verify.
    Known,
    /// Newer than what is held (or the first): verify it, then [`RecordCache::insert`].
    New,
    /// Older than what is held.
    Stale,
}

pub(crate) struct RecordCache {
    /// Boxed: a record is 168 bytes and the table keeps up to half its slots empty.
    records: FixedHashMap<PeerId, Box<PeerRecord>>,
    capacity: usize,
}

impl RecordCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            records: FixedHashMap::with_hasher(FixedState::with_seed(0)),
            capacity,
        }
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&PeerRecord> {
        self.records.get(peer).map(|r| &**r)
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn offer(&self, record: &PeerRecord) -> Offer {
        match self.records.get(&record.peer_id) {
            Some(held) if **held == *record => Offer::Known,
            Some(held) if held.issued_at >= record.issued_at => Offer::Stale,
            _ => Offer::New,
        }
    }

    /// Inserts a verified record. When full, evicts the record expiring first among those that
    /// `keep` does not protect (current neighbours); if all are protected, the new record is
    /// not kept.
    pub(crate) fn insert(&mut self, record: PeerRecord, keep: impl Fn(&PeerId) -> bool) {
        if !self.records.contains_key(&record.peer_id) && self.records.len() >= self.capacity {
            let victim = self
                .records
                .values()
                .filter(|r| !keep(&r.peer_id))
                .min_by_key(|r| (r.expires_at, r.peer_id))
                .map(|r| r.peer_id);
            match victim {
                Some(v) => {
                    self.records.remove(&v);
                }
                None => return,
            }
        }
        self.records.insert(record.peer_id, Box::new(record));
    }

    /// Drops every record that has expired by `now`.
    pub(crate) fn sweep(&mut self, now: Timestamp) {
        self.records.retain(|_, r| r.expires_at > now);
    }

    /// All records, in peer-id order (for persistence).
    pub(crate) fn sorted(&self) -> alloc::vec::Vec<&PeerRecord> {
        let mut all: alloc::vec::Vec<&PeerRecord> = self.records.values().map(|r| &**r).collect();
        all.sort_by_key(|r| r.peer_id);
        all
    }
}
