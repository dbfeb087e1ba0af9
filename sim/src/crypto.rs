//! Crypto provider wrappers: one memoises verification across all simulated nodes, one counts
//! each key's signatures.
//!
//! Verification is a pure function of (key, message, signature), so a run with many nodes that
//! each check the same record needs the arithmetic only once per distinct triple.

use hearsay_proto::CryptoProvider;
use hearsay_proto::crypto::{
    CryptoError, Decapsulator, EncapsulationKeyBytes, KemCiphertext, SharedSecret, SignatureBytes,
    Signer, VerifyingKeyBytes,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The KEM half of a provider wrapper with an `inner` provider: passed through unchanged.
macro_rules! delegate_kem {
    () => {
        fn decapsulator_from_seed(&self, seed: &[u8; 64]) -> Box<dyn Decapsulator> {
            self.inner.decapsulator_from_seed(seed)
        }
        fn encapsulate(
            &self,
            ek: &EncapsulationKeyBytes,
            entropy: &[u8; 32],
        ) -> Result<(KemCiphertext, SharedSecret), CryptoError> {
            self.inner.encapsulate(ek, entropy)
        }
    };
}

/// Wraps a provider, caching `verify` results by BLAKE3(key ‖ message ‖ signature).
#[derive(Debug)]
pub struct MemoProvider<P> {
    inner: P,
    cache: Mutex<HashMap<[u8; 32], bool>>,
}

impl<P> MemoProvider<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Self {
            inner,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Distinct verifications computed so far.
    pub fn computed(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

impl<P: CryptoProvider> CryptoProvider for MemoProvider<P> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn signer_from_seed(&self, seed: &[u8; 32]) -> Box<dyn Signer> {
        self.inner.signer_from_seed(seed)
    }
    fn verify(&self, vk: &VerifyingKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
        let mut h = blake3::Hasher::new();
        h.update(vk);
        h.update(&(message.len() as u64).to_le_bytes());
        h.update(message);
        h.update(signature);
        let key = *h.finalize().as_bytes();
        if let Some(&hit) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&key).copied())
            .as_ref()
        {
            return hit;
        }
        let ok = self.inner.verify(vk, message, signature);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(key, ok);
        }
        ok
    }
    delegate_kem!();
}

/// Wraps a provider and counts every signature made with each key it expands (by verifying
/// key), for the contract's `signatures_per_node_per_s`: whatever path in the node signs, the
/// count sees it.
pub struct CountingProvider {
    inner: std::sync::Arc<dyn CryptoProvider>,
    counts: Mutex<HashMap<VerifyingKeyBytes, std::sync::Arc<AtomicU64>>>,
}

impl std::fmt::Debug for CountingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingProvider")
            .field("inner", &self.inner.name())
            .finish()
    }
}

impl CountingProvider {
    /// Wraps `inner`.
    pub fn new(inner: std::sync::Arc<dyn CryptoProvider>) -> Self {
        Self {
            inner,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Signatures made so far with the key whose verifying key is `vk`.
    pub fn signatures(&self, vk: &VerifyingKeyBytes) -> u64 {
        self.counts
            .lock()
            .ok()
            .and_then(|c| c.get(vk).map(|n| n.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }
}

struct CountingSigner {
    inner: Box<dyn Signer>,
    count: std::sync::Arc<AtomicU64>,
}

impl Signer for CountingSigner {
    fn verifying_key(&self) -> &VerifyingKeyBytes {
        self.inner.verifying_key()
    }
    fn sign(&self, message: &[u8]) -> Result<SignatureBytes, CryptoError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.sign(message)
    }
}

impl CryptoProvider for CountingProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn signer_from_seed(&self, seed: &[u8; 32]) -> Box<dyn Signer> {
        let inner = self.inner.signer_from_seed(seed);
        let count = self
            .counts
            .lock()
            .map(|mut c| c.entry(inner.verifying_key().clone()).or_default().clone())
            .unwrap_or_default();
        Box::new(CountingSigner { inner, count })
    }
    fn verify(&self, vk: &VerifyingKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
        self.inner.verify(vk, message, signature)
    }
    delegate_kem!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_proto::crypto::InsecureTestProvider;

    #[test]
    fn memoises_both_outcomes() {
        let p = MemoProvider::new(InsecureTestProvider);
        let s = p.signer_from_seed(&[1; 32]);
        let sig = s.sign(b"m").unwrap();
        assert!(p.verify(s.verifying_key(), b"m", &sig));
        assert!(p.verify(s.verifying_key(), b"m", &sig));
        assert!(!p.verify(s.verifying_key(), b"x", &sig));
        assert_eq!(p.computed(), 2);
    }
}
