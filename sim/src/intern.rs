//! One store of immutable byte strings for all simulated nodes.
//!
//! Every node decodes the same peer records (each 6.5 KB, mostly keys and a signature) and the
//! same published messages (the author's signature and verifying key travel with each copy).
//! Decoded alone, each node would keep its own copy of every one of them; with this interner
//! installed as `Config::interner`, the nodes of a world share one copy of each distinct byte
//! string. Decoded values are byte-for-byte the same, so nothing the nodes do changes: only the
//! simulator's memory does (as `MemoProvider` shares verification work across nodes).

use bytes::Bytes;
use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// Byte strings shorter than this are not worth a table entry (addresses, small payloads).
pub const MIN_INTERNED_LEN: usize = 64;

/// Most hashes of byte strings seen once that are remembered (the set is cleared when full).
const MAX_SEEN_ONCE: usize = 1 << 20;

/// The interner: a set of buffers, looked up by content.
#[derive(Debug, Default)]
pub struct Interner {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    set: HashSet<Bytes, BuildHasherDefault<WordHasher>>,
    /// Hashes of byte strings decoded once and not (yet) kept.
    once: HashSet<u64, BuildHasherDefault<WordHasher>>,
    /// The set's size at which buffers no node holds any more are dropped.
    sweep_at: usize,
    hits: u64,
    misses: u64,
}

/// How the interner was used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InternerStats {
    /// Distinct byte strings held.
    pub entries: usize,
    /// Bytes held.
    pub bytes: usize,
    /// Decoded byte strings that were already held.
    pub hits: u64,
    /// Decoded byte strings held from then on (seen for the second time).
    pub misses: u64,
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` (a buffer some node already keeps, such as its own keys), so that what other
    /// nodes decode equal to it shares that buffer instead of a new one.
    pub fn register(&self, bytes: Bytes) {
        if bytes.len() < MIN_INTERNED_LEN {
            return;
        }
        if let Ok(mut inner) = self.inner.lock()
            && !inner.set.contains(bytes.as_ref())
        {
            inner.insert(bytes);
        }
    }

    /// What the interner holds and how often it was asked.
    pub fn stats(&self) -> InternerStats {
        self.inner
            .lock()
            .map(|inner| InternerStats {
                entries: inner.set.len(),
                bytes: inner.set.iter().map(Bytes::len).sum(),
                hits: inner.hits,
                misses: inner.misses,
            })
            .unwrap_or_default()
    }
}

impl Inner {
    fn insert(&mut self, bytes: Bytes) {
        if self.set.len() >= self.sweep_at {
            // Drop what only this table still holds; the next sweep waits until the set has
            // doubled again, so sweeping costs O(1) per insertion.
            self.set.retain(|b| !b.is_unique());
            self.sweep_at = (self.set.len() * 2).max(4096);
        }
        self.set.insert(bytes);
    }
}

impl hearsay_proto::wire::Interner for Interner {
    fn intern(&self, bytes: &[u8]) -> Option<Bytes> {
        if bytes.len() < MIN_INTERNED_LEN {
            return None;
        }
        let mut inner = self.inner.lock().ok()?;
        if let Some(held) = inner.set.get(bytes) {
            let held = held.clone();
            inner.hits += 1;
            return Some(held);
        }
        // Only what is decoded a second time is kept: keys, signatures and payloads reach many
        // nodes, while one-off strings (a reconciliation sketch) would only fill the table.
        let hash = inner.set.hasher().hash_one(bytes);
        if !inner.once.remove(&hash) {
            if inner.once.len() >= MAX_SEEN_ONCE {
                inner.once.clear();
            }
            inner.once.insert(hash);
            return None;
        }
        inner.misses += 1;
        let copy = Bytes::copy_from_slice(bytes);
        inner.insert(copy.clone());
        Some(copy)
    }
}

/// A fast, fixed (so deterministic) hash for the interner's table: keys are mostly random
/// bytes (keys, signatures, payloads), so mixing eight bytes at a time is enough.
#[derive(Debug, Default)]
struct WordHasher(u64);

impl WordHasher {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_proto::wire::Interner as _;

    #[test]
    fn equal_bytes_share_one_buffer() {
        let i = Interner::new();
        assert!(i.intern(&[7u8; 100]).is_none(), "seen once: not kept yet");
        let a = i.intern(&[7u8; 100]).expect("interned");
        let b = i.intern(&[7u8; 100]).expect("interned");
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(a, Bytes::from(vec![7u8; 100]));
        assert!(
            i.intern(&[7u8; 10]).is_none(),
            "short strings are not interned"
        );
        let s = i.stats();
        assert_eq!((s.entries, s.bytes, s.hits, s.misses), (1, 100, 1, 1));
    }

    #[test]
    fn registered_buffers_are_reused() {
        let i = Interner::new();
        let own = Bytes::from(vec![3u8; 2000]);
        i.register(own.clone());
        let decoded = i.intern(&[3u8; 2000]).expect("interned");
        assert_eq!(decoded.as_ptr(), own.as_ptr());
    }

    #[test]
    fn buffers_nobody_holds_are_swept() {
        let i = Interner::new();
        let _ = i.intern(&[1u8; 64]);
        let kept = i.intern(&[1u8; 64]).expect("interned");
        for n in 0..10_000u32 {
            let mut v = vec![0u8; 64];
            v[..4].copy_from_slice(&n.to_le_bytes());
            v[4] = 9;
            assert!(i.intern(&v).is_none());
            drop(i.intern(&v));
        }
        let s = i.stats();
        assert!(s.entries < 10_000, "{} entries kept", s.entries);
        assert_eq!(
            i.intern(&[1u8; 64]).expect("interned").as_ptr(),
            kept.as_ptr()
        );
    }
}
