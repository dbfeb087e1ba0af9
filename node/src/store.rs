//! The node's persistent state: `<home>/state.redb`, an embedded transactional store (redb),
//! mode 0600. It also locks the home directory: a second `hearsay run` on it is refused.
//!
//! Tables:
//!
//! - `peers`: peer id (hex) → (last address it was reached at, Unix seconds last seen); the
//!   peer cache a restarted node rejoins through when it has no `--bootstrap`.
//! - `meta`: `starts` → how many times `run` has opened this store.
//! - `state`: `node` → the core's persistent state (boot count, remembered records), saved right
//!   after start and every 2 s, restored by the next `run`.

use crate::{Error, failed};
use hearsay_proto::PeerId;
use hearsay_tokio::BootstrapPeer;
use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition};
use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The store's file in the home directory.
pub const STATE_FILE: &str = "state.redb";
/// Most peers kept in the cache (the most recently seen win).
pub const MAX_CACHED_PEERS: usize = 64;

const PEERS: TableDefinition<'_, &str, (&str, u64)> = TableDefinition::new("peers");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// The core's persistent state (boot count, remembered records), encoded by the core.
const STATE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("state");

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

    /// Records `peers` as seen now, and keeps only the [`MAX_CACHED_PEERS`] most recent.
    pub fn save_peers(&self, peers: &[(PeerId, SocketAddr)]) -> Result<(), Error> {
        let now = unix_now();
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(PEERS).map_err(db_error)?;
            for (peer, addr) in peers {
                table
                    .insert(peer.to_string().as_str(), (addr.to_string().as_str(), now))
                    .map_err(db_error)?;
            }
            let mut seen: Vec<u64> = Vec::new();
            for entry in table.iter().map_err(db_error)? {
                let (_, v) = entry.map_err(db_error)?;
                seen.push(v.value().1);
            }
            if seen.len() > MAX_CACHED_PEERS {
                seen.sort_unstable_by_key(|s| std::cmp::Reverse(*s));
                let cutoff = seen.get(MAX_CACHED_PEERS - 1).copied().unwrap_or(0);
                table.retain(|_, v| v.1 >= cutoff).map_err(db_error)?;
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

    /// Up to `max` cached peers, most recently seen first, as pinned bootstrap peers.
    pub fn cached_peers(&self, max: usize) -> Result<Vec<BootstrapPeer>, Error> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(PEERS).map_err(db_error)?;
        let mut peers = Vec::new();
        for entry in table.iter().map_err(db_error)? {
            let (k, v) = entry.map_err(db_error)?;
            let (addr, seen) = v.value();
            if let (Ok(peer), Ok(addr)) = (k.value().parse::<PeerId>(), addr.parse()) {
                peers.push((seen, BootstrapPeer::pinned(peer, addr)));
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
}
