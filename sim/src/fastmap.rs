//! Hash maps for the simulator's hot lookups (peer id → node, node pair → connection), with a
//! cheap deterministic hasher instead of SipHash with a random key.
//!
//! The simulator never iterates these maps in an order that reaches the trace (that would
//! already have been non-deterministic under `RandomState`), so the hasher changes speed only.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Multiply-and-rotate word hashing (as rustc's `FxHasher`), finished with a full avalanche so
/// that both the low bits (bucket) and the high bits (control byte) of the hash are mixed.
/// Keys here are ids (already uniformly random) and small integers; not for untrusted keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // MurmurHash3's 64-bit finaliser.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: &T) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(t)
    }

    #[test]
    fn spreads_small_integers_and_pairs() {
        let mut seen = std::collections::HashSet::new();
        for a in 0..200usize {
            for b in 0..200usize {
                assert!(seen.insert(hash(&(a, b))), "collision at ({a}, {b})");
            }
        }
        // Low bits (the bucket) differ for consecutive keys.
        let low: std::collections::HashSet<u64> = (0..1024u64).map(|i| hash(&i) & 1023).collect();
        assert!(low.len() > 600, "{}", low.len());
    }

    #[test]
    fn is_a_working_map() {
        let mut m: FastMap<[u8; 32], usize> = FastMap::default();
        for i in 0..1000usize {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            m.insert(k, i);
        }
        assert_eq!(m.len(), 1000);
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&777u64.to_le_bytes());
        assert_eq!(m.get(&k), Some(&777));
    }
}
