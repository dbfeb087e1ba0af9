//! A crypto provider wrapper that memoises verification across all simulated nodes.
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
