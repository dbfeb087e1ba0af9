//! The node's persistent state: `<home>/state.redb`, an embedded transactional store (redb),
//! mode 0600. It also locks the home directory: a second `hearsay run` on it is refused.
//!
//! Tables:
//!
//! - `peers_v2`: peer id (hex) → (last address it was reached at, Unix seconds last seen,
//!   seconds it was seen as a neighbour in good standing); the peer cache a restarted node
//!   rejoins through when it has no `--bootstrap`, longest good standing first. (The first
//!   `peers` table kept no standing: it is ignored.)
//! - `meta`: `starts` → how many times `run` has opened this store.
//! - `state`: `node` → the core's persistent state (boot count, remembered records), saved right
//!   after start and every 2 s, restored by the next `run`.
//! - `mailbox_v2` (anchor role): topic id ‖ expiry (µs, big-endian) ‖ message id → author id ‖
//!   the message with its author's key as the core encodes it; at most `--mailbox` per topic,
//!   expired ones dropped at every write; over the limit, the author holding the most entries of
//!   the topic loses its oldest, and this node's own messages go only when nothing else is left
//!   (one author's flood evicts its own, never the others' nor ours: SPEC.md §15.3); given back
//!   to the core at the next start. (The first `mailbox` table kept no author: it is ignored.)

use crate::{Error, failed};
use hearsay_proto::{MessageId, PeerId, TopicId};
use hearsay_tokio::BootstrapPeer;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The store's file in the home directory.
pub const STATE_FILE: &str = "state.redb";
/// Most peers kept in the cache (the longest in good standing win, then the most recently
/// seen).
pub const MAX_CACHED_PEERS: usize = 64;

const PEERS: TableDefinition<'_, &str, (&str, u64, u64)> = TableDefinition::new("peers_v2");
/// Longest gap between two saves that still counts as time in good standing: a peer seen
/// before and after a node was stopped for a day did not stand by it meanwhile.
const MAX_STANDING_STEP: u64 = 60;
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The core's persistent state (boot count, remembered records), encoded by the core.
const STATE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("state");
/// An anchor's mailbox: `topic ‖ expires_us (BE) ‖ id` → archived message record.
const MAILBOX: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("mailbox_v2");

/// One message for the mailbox.
#[derive(Debug, Clone)]
pub struct MailboxEntry {
    /// Its topic.
    pub topic: TopicId,
    /// Its id.
    pub id: MessageId,
    /// Its author.
    pub author: PeerId,
    /// When it leaves the retention window, in µs since the Unix epoch.
    pub expires_us: u64,
    /// The record the core archived.
    pub record: Vec<u8>,
}

/// Of one topic's entries (`(key, author)`, oldest first), removes and returns the keys to
/// drop so that at most `max` stay: each time, the oldest entry of the author holding the most
/// (ties: the smaller id), where entries of `own` count only once nobody else holds any.
fn fair_share_evictions(
    entries: &mut Vec<(Vec<u8>, [u8; 32])>,
    max: usize,
    own: &[u8; 32],
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while entries.len() > max {
        let mut held: std::collections::BTreeMap<&[u8; 32], usize> = Default::default();
        for (_, author) in entries.iter().filter(|(_, a)| a != own) {
            *held.entry(author).or_default() += 1;
        }
        let victim = held
            .iter()
            .max_by_key(|(author, n)| (**n, std::cmp::Reverse(**author)))
            .map_or(*own, |(author, _)| **author);
        let Some(at) = entries.iter().position(|(_, a)| *a == victim) else {
            break;
        };
        out.push(entries.remove(at).0);
    }
    out
}

fn mailbox_key(topic: &TopicId, expires_us: u64, id: &MessageId) -> [u8; 72] {
    let mut key = [0u8; 72];
    key[..32].copy_from_slice(topic.as_bytes());
    key[32..40].copy_from_slice(&expires_us.to_be_bytes());
    key[40..].copy_from_slice(id.as_bytes());
    key
}

/// The first and last possible keys of `topic`'s mailbox entries expiring in `[from, to]`.
fn mailbox_range(topic: &TopicId, from: u64, to: u64) -> ([u8; 72], [u8; 72]) {
    let low = mailbox_key(topic, from, &MessageId::from_bytes([0; 32]));
    let high = mailbox_key(topic, to, &MessageId::from_bytes([0xff; 32]));
    (low, high)
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    db: Database,
}

fn db_error(e: impl std::fmt::Display) -> Error {
    failed(format!("the state store failed: {e}"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Opens (or creates) the store of `home` and counts this start.
    pub fn open(home: &Path) -> Result<Self, Error> {
        let path = home.join(STATE_FILE);
        // Created empty with mode 0600 first; redb initialises an empty file.
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| failed(format!("cannot create {}: {e}", path.display())))?;
        let db = Database::create(&path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => failed(format!(
                "another `hearsay run` is using {}: stop it first, or give this node its own \
                 --home",
                home.display()
            )),
            other => failed(format!("cannot open {}: {other}", path.display())),
        })?;
        let txn = db.begin_write().map_err(db_error)?;
        {
            txn.open_table(PEERS).map_err(db_error)?;
            txn.open_table(STATE).map_err(db_error)?;
            txn.open_table(MAILBOX).map_err(db_error)?;
            let mut meta = txn.open_table(META).map_err(db_error)?;
            let starts = meta
                .get("starts")
                .map_err(db_error)?
                .map_or(0, |v| v.value());
            meta.insert("starts", starts.saturating_add(1))
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        Ok(Self { db })
    }

    /// How many times `run` has opened this store, this time included.
    pub fn starts(&self) -> Result<u64, Error> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let meta = txn.open_table(META).map_err(db_error)?;
        Ok(meta
            .get("starts")
            .map_err(db_error)?
            .map_or(0, |v| v.value()))
    }

    /// Records `peers` (neighbours in good standing) as seen now: each one seen at the
    /// previous save too gains the time since (at most [`MAX_STANDING_STEP`]) as standing.
    /// Keeps the [`MAX_CACHED_PEERS`] of longest standing (then the most recently seen), so a
    /// cache holds the peers that stood by this node, not whoever was there at shutdown.
    pub fn save_peers(&self, peers: &[(PeerId, SocketAddr)]) -> Result<(), Error> {
        self.save_peers_at(peers, unix_now())
    }

    fn save_peers_at(&self, peers: &[(PeerId, SocketAddr)], now: u64) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(PEERS).map_err(db_error)?;
            for (peer, addr) in peers {
                let key = peer.to_string();
                let standing = match table.get(key.as_str()).map_err(db_error)? {
                    Some(v) => {
                        let (_, seen, standing) = v.value();
                        standing + now.saturating_sub(seen).min(MAX_STANDING_STEP)
                    }
                    None => 0,
                };
                table
                    .insert(key.as_str(), (addr.to_string().as_str(), now, standing))
                    .map_err(db_error)?;
            }
            let mut ranks: Vec<(u64, u64)> = Vec::new();
            for entry in table.iter().map_err(db_error)? {
                let (_, v) = entry.map_err(db_error)?;
                let (_, seen, standing) = v.value();
                ranks.push((standing, seen));
            }
            if ranks.len() > MAX_CACHED_PEERS {
                ranks.sort_unstable_by_key(|r| std::cmp::Reverse(*r));
                let cutoff = ranks[MAX_CACHED_PEERS - 1];
                table
                    .retain(|_, v| (v.2, v.1) >= cutoff)
                    .map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)
    }

    /// Saves the core's persistent state (replacing the previous one) in one transaction.
    pub fn save_state(&self, bytes: &[u8]) -> Result<(), Error> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(STATE).map_err(db_error)?;
            table.insert("node", bytes).map_err(db_error)?;
        }
        txn.commit().map_err(db_error)
    }

    /// The core's persistent state saved last, if any.
    pub fn state(&self) -> Result<Option<Vec<u8>>, Error> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(STATE).map_err(db_error)?;
        Ok(table
            .get("node")
            .map_err(db_error)?
            .map(|v| v.value().to_vec()))
    }

    /// Stores `entries` in the mailbox in one transaction (durable when this returns), then
    /// drops every entry of their topics that expired by `now_us` and, per topic beyond
    /// `max_per_topic`, the oldest entry of the author holding the most (ties: the smaller id),
    /// never one of `own` while another author's is left. Returns how many entries were
    /// dropped.
    pub fn archive(
        &self,
        entries: &[MailboxEntry],
        max_per_topic: usize,
        now_us: u64,
        own: &PeerId,
    ) -> Result<usize, Error> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let mut dropped = 0;
        {
            let mut table = txn.open_table(MAILBOX).map_err(db_error)?;
            let mut topics = std::collections::BTreeSet::new();
            for e in entries {
                let key = mailbox_key(&e.topic, e.expires_us, &e.id);
                let mut value = Vec::with_capacity(32 + e.record.len());
                value.extend_from_slice(e.author.as_bytes());
                value.extend_from_slice(&e.record);
                table
                    .insert(key.as_slice(), value.as_slice())
                    .map_err(db_error)?;
                topics.insert(e.topic);
            }
            for topic in topics {
                let (low, high) = mailbox_range(&topic, 0, u64::MAX);
                // Keys sort by expiry within a topic: the expired and the oldest come first.
                let mut kept: Vec<(Vec<u8>, [u8; 32])> = Vec::new();
                let mut expired = Vec::new();
                for entry in table
                    .range(low.as_slice()..=high.as_slice())
                    .map_err(db_error)?
                {
                    let (k, v) = entry.map_err(db_error)?;
                    let key = k.value().to_vec();
                    let expires = key
                        .get(32..40)
                        .and_then(|b| <[u8; 8]>::try_from(b).ok())
                        .map_or(0, u64::from_be_bytes);
                    let author = v
                        .value()
                        .get(..32)
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .unwrap_or([0; 32]);
                    if expires <= now_us {
                        expired.push(key);
                    } else {
                        kept.push((key, author));
                    }
                }
                for key in fair_share_evictions(&mut kept, max_per_topic, own.as_bytes())
                    .into_iter()
                    .chain(expired)
                {
                    table.remove(key.as_slice()).map_err(db_error)?;
                    dropped += 1;
                }
            }
        }
        txn.commit().map_err(db_error)?;
        Ok(dropped)
    }

    /// The mailbox records of `topic` that have not expired by `now_us`, oldest first.
    pub fn mailbox(&self, topic: &TopicId, now_us: u64) -> Result<Vec<Vec<u8>>, Error> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(MAILBOX).map_err(db_error)?;
        let (low, high) = mailbox_range(topic, now_us.saturating_add(1), u64::MAX);
        let mut out = Vec::new();
        for entry in table
            .range(low.as_slice()..=high.as_slice())
            .map_err(db_error)?
        {
            let (_, v) = entry.map_err(db_error)?;
            out.push(v.value().get(32..).unwrap_or_default().to_vec());
        }
        Ok(out)
    }

    /// How many mailbox entries are stored (all topics, expired ones not yet dropped included).
    pub fn mailbox_len(&self) -> Result<u64, Error> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(MAILBOX).map_err(db_error)?;
        table.len().map_err(db_error)
    }

    /// Up to `max` cached peers, longest in good standing first (then the most recently seen),
    /// as pinned bootstrap peers.
    pub fn cached_peers(&self, max: usize) -> Result<Vec<BootstrapPeer>, Error> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PEERS).map_err(db_error)?;
        let mut peers = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            let (addr, seen, standing) = v.value();
            if let (Ok(peer), Ok(addr)) = (k.value().parse::<PeerId>(), addr.parse()) {
                peers.push(((standing, seen), BootstrapPeer::pinned(peer, addr)));
            }
        }
        peers.sort_by_key(|p| std::cmp::Reverse(p.0));
        Ok(peers.into_iter().take(max).map(|(_, p)| p).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_survive_reopening_and_the_home_is_locked() {
        let home = std::env::temp_dir().join(format!("hearsay-store-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let peer: PeerId = "ab".repeat(32).parse().unwrap();
        let addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        {
            let store = Store::open(&home).unwrap();
            assert!(Store::open(&home).is_err(), "a second open must be refused");
            store.save_peers(&[(peer, addr)]).unwrap();
            assert_eq!(store.starts().unwrap(), 1);
        }
        let store = Store::open(&home).unwrap();
        assert_eq!(store.starts().unwrap(), 2);
        let cached = store.cached_peers(8).unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&home);
        assert_eq!(cached, vec![BootstrapPeer::pinned(peer, addr)]);
    }

    #[test]
    fn the_mailbox_is_bounded_per_topic_drops_expired_and_survives_reopening() {
        let home = std::env::temp_dir().join(format!("hearsay-mailbox-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let a = TopicId::from_name("a");
        let b = TopicId::from_name("b");
        let me = PeerId::from_bytes([0xee; 32]);
        let entry = |topic: TopicId, n: u8, expires_us: u64| MailboxEntry {
            topic,
            id: MessageId::from_bytes([n; 32]),
            author: PeerId::from_bytes([n; 32]),
            expires_us,
            record: vec![n; 10],
        };
        {
            let store = Store::open(&home).unwrap();
            // Five for a (expiring at 100..=500), two for b; at most 3 per topic.
            let batch: Vec<MailboxEntry> = (1..=5u8)
                .map(|n| entry(a, n, u64::from(n) * 100))
                .chain([entry(b, 6, 1_000), entry(b, 7, 50)])
                .collect();
            assert_eq!(store.archive(&batch, 3, 0, &me).unwrap(), 2);
            // a keeps its three latest expiries, oldest first; b keeps both.
            assert_eq!(
                store.mailbox(&a, 0).unwrap(),
                vec![vec![3; 10], vec![4; 10], vec![5; 10]]
            );
            assert_eq!(
                store.mailbox(&b, 0).unwrap(),
                vec![vec![7; 10], vec![6; 10]]
            );
            // Reading skips what expired; the next write drops it.
            assert_eq!(store.mailbox(&a, 400).unwrap(), vec![vec![5; 10]]);
            assert_eq!(store.archive(&[entry(a, 8, 900)], 3, 400, &me).unwrap(), 2);
            assert_eq!(store.mailbox_len().unwrap(), 4);
        }
        let store = Store::open(&home).unwrap();
        let kept = store.mailbox(&a, 0).unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&home);
        assert_eq!(kept, vec![vec![5; 10], vec![8; 10]]);
    }

    #[test]
    fn a_flooding_author_evicts_its_own_mailbox_entries_never_ours_nor_others() {
        let home = std::env::temp_dir().join(format!("hearsay-fair-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let t = TopicId::from_name("t");
        let me = PeerId::from_bytes([0xee; 32]);
        let (bob, flooder) = (
            PeerId::from_bytes([0xb0; 32]),
            PeerId::from_bytes([0x01; 32]),
        );
        let entry = |author: PeerId, n: u8, expires_us: u64| MailboxEntry {
            topic: t,
            id: MessageId::from_bytes([n; 32]),
            author,
            expires_us,
            record: vec![n; 4],
        };
        let store = Store::open(&home).unwrap();
        // Ours and Bob's expire first: an eviction by age alone would take them.
        let mut batch = vec![entry(me, 1, 100), entry(bob, 2, 200)];
        batch.extend((10..40u8).map(|n| entry(flooder, n, 1_000 + u64::from(n))));
        assert_eq!(store.archive(&batch, 5, 0, &me).unwrap(), 27);
        // Another flood, one message at a time, and Bob's second message.
        for n in 40..60u8 {
            store
                .archive(&[entry(flooder, n, 2_000 + u64::from(n))], 5, 0, &me)
                .unwrap();
        }
        store.archive(&[entry(bob, 3, 300)], 5, 0, &me).unwrap();
        let kept = store.mailbox(&t, 0).unwrap();
        // Only our own messages left over the limit: the oldest of ours goes.
        let ours: Vec<MailboxEntry> = (100..110u8)
            .map(|n| entry(me, n, 5_000 + u64::from(n)))
            .collect();
        let other = TopicId::from_name("u");
        let ours: Vec<MailboxEntry> = ours
            .into_iter()
            .map(|e| MailboxEntry { topic: other, ..e })
            .collect();
        assert_eq!(store.archive(&ours, 5, 0, &me).unwrap(), 5);
        let ours_kept = store.mailbox(&other, 0).unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&home);
        assert_eq!(
            kept,
            vec![vec![1; 4], vec![2; 4], vec![3; 4], vec![58; 4], vec![59; 4]],
            "ours and both of Bob's stay; the flooder keeps its two newest"
        );
        assert_eq!(
            ours_kept,
            (105..110u8).map(|n| vec![n; 4]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_peer_cache_keeps_the_peers_of_longest_good_standing() {
        let home = std::env::temp_dir().join(format!("hearsay-standing-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let peer = |n: u8| PeerId::from_bytes([n; 32]);
        let store = Store::open(&home).unwrap();
        // Two peers stand by the node for ten minutes (a save every 2 s)...
        let mut t = 1_000_000;
        for _ in 0..300 {
            store
                .save_peers_at(&[(peer(1), addr), (peer(2), addr)], t)
                .unwrap();
            t += 2;
        }
        // ... then a crowd of newcomers is all the node sees just before it stops.
        let crowd: Vec<(PeerId, SocketAddr)> = (10..10 + MAX_CACHED_PEERS as u8)
            .map(|n| (peer(n), addr))
            .collect();
        store.save_peers_at(&crowd, t).unwrap();
        store.save_peers_at(&crowd, t + 2).unwrap();
        let cached = store.cached_peers(4).unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(&home);
        let stood = [
            BootstrapPeer::pinned(peer(1), addr),
            BootstrapPeer::pinned(peer(2), addr),
        ];
        assert_eq!(cached[..2], stood, "{cached:?}");
        assert_eq!(cached.len(), 4);
    }
}
