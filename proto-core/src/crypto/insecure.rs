//! [`InsecureTestProvider`]: BLAKE3 stand-ins for ML-DSA-65 and ML-KEM-768 with the real sizes.
//!
//! **Not secure.** Anyone who knows a verifying key can compute valid signatures, and anyone who
//! sees a ciphertext can compute its shared secret. It exists so that simulations of tens of
//! thousands of nodes, fuzzers and benchmarks of non-crypto paths are not bound by post-quantum
//! arithmetic, while frames keep their real sizes and every check keeps its real outcome for
//! honest and corrupted inputs alike (a flipped bit in a key, message or signature still fails).

use super::{
    CryptoError, CryptoProvider, Decapsulator, EncapsulationKeyBytes, KEM_CIPHERTEXT_LEN,
    KEM_ENCAPSULATION_KEY_LEN, KEM_SEED_LEN, KEM_SHARED_SECRET_LEN, KemCiphertext, SIG_SEED_LEN,
    SIG_VERIFYING_KEY_LEN, SIGNATURE_LEN, SharedSecret, SignatureBytes, Signer, VerifyingKeyBytes,
};
use alloc::boxed::Box;
use zeroize::Zeroizing;

/// The insecure, fast test provider (feature `insecure-test-crypto`).
#[derive(Debug, Clone, Copy, Default)]
pub struct InsecureTestProvider;

fn expand(context: &str, parts: &[&[u8]], out: &mut [u8]) {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize_xof().fill(out);
}

fn signature_for(verifying_key: &[u8], message: &[u8]) -> SignatureBytes {
    let mut sig = [0u8; SIGNATURE_LEN];
    expand(
        "hearsay insecure-test signature",
        &[verifying_key, message],
        &mut sig,
    );
    SignatureBytes::from_array(sig)
}

struct TestSigner {
    verifying_key: VerifyingKeyBytes,
}

impl Signer for TestSigner {
    fn verifying_key(&self) -> &VerifyingKeyBytes {
        &self.verifying_key
    }
    fn sign(&self, message: &[u8]) -> Result<SignatureBytes, CryptoError> {
        Ok(signature_for(&self.verifying_key, message))
    }
}

struct TestDecapsulator {
    encapsulation_key: EncapsulationKeyBytes,
}

fn shared_secret(encapsulation_key: &[u8], ciphertext: &[u8]) -> SharedSecret {
    let mut ss = Zeroizing::new([0u8; KEM_SHARED_SECRET_LEN]);
    expand(
        "hearsay insecure-test kem secret",
        &[encapsulation_key, ciphertext],
        ss.as_mut(),
    );
    ss
}

impl Decapsulator for TestDecapsulator {
    fn encapsulation_key(&self) -> &EncapsulationKeyBytes {
        &self.encapsulation_key
    }
    fn decapsulate(&self, ciphertext: &KemCiphertext) -> Result<SharedSecret, CryptoError> {
        Ok(shared_secret(&self.encapsulation_key, ciphertext))
    }
}

impl CryptoProvider for InsecureTestProvider {
    fn name(&self) -> &'static str {
        "insecure-test"
    }

    fn signer_from_seed(&self, seed: &[u8; SIG_SEED_LEN]) -> Box<dyn Signer> {
        let mut vk = [0u8; SIG_VERIFYING_KEY_LEN];
        expand("hearsay insecure-test verifying key", &[seed], &mut vk);
        let verifying_key = VerifyingKeyBytes::from_array(vk);
        Box::new(TestSigner { verifying_key })
    }

    fn verify(
        &self,
        verifying_key: &VerifyingKeyBytes,
        message: &[u8],
        signature: &SignatureBytes,
    ) -> bool {
        signature_for(verifying_key, message) == *signature
    }

    fn decapsulator_from_seed(&self, seed: &[u8; KEM_SEED_LEN]) -> Box<dyn Decapsulator> {
        let mut ek = [0u8; KEM_ENCAPSULATION_KEY_LEN];
        expand("hearsay insecure-test encapsulation key", &[seed], &mut ek);
        let encapsulation_key = EncapsulationKeyBytes::from_array(ek);
        Box::new(TestDecapsulator { encapsulation_key })
    }

    fn encapsulate(
        &self,
        encapsulation_key: &EncapsulationKeyBytes,
        entropy: &[u8; 32],
    ) -> Result<(KemCiphertext, SharedSecret), CryptoError> {
        let mut ct = [0u8; KEM_CIPHERTEXT_LEN];
        expand(
            "hearsay insecure-test kem ciphertext",
            &[encapsulation_key, entropy],
            &mut ct,
        );
        let ct = KemCiphertext::from_array(ct);
        let ss = shared_secret(encapsulation_key, &ct);
        Ok((ct, ss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_signature_scheme_for_honest_and_corrupted_inputs() {
        let p = InsecureTestProvider;
        let s = p.signer_from_seed(&[1; 32]);
        let sig = s.sign(b"msg").unwrap();
        assert_eq!(sig.len(), SIGNATURE_LEN);
        assert!(p.verify(s.verifying_key(), b"msg", &sig));
        assert!(!p.verify(s.verifying_key(), b"msh", &sig));
        let other = p.signer_from_seed(&[2; 32]);
        assert!(!p.verify(other.verifying_key(), b"msg", &sig));
        let mut bad = sig.to_vec();
        bad[100] ^= 1;
        assert!(!p.verify(
            s.verifying_key(),
            b"msg",
            &SignatureBytes::new(bad).unwrap()
        ));
    }

    #[test]
    fn kem_round_trips() {
        let p = InsecureTestProvider;
        let d = p.decapsulator_from_seed(&[3; 64]);
        let (ct, ss) = p.encapsulate(d.encapsulation_key(), &[4; 32]).unwrap();
        assert_eq!(*d.decapsulate(&ct).unwrap(), *ss);
        let other = p.decapsulator_from_seed(&[5; 64]);
        assert_ne!(*other.decapsulate(&ct).unwrap(), *ss);
    }
}
