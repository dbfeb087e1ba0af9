//! [`AwsLcProvider`]: hearsay's [`CryptoProvider`] with the hot paths on aws-lc-rs.
//!
//! What goes through aws-lc-rs and what does not, and why:
//!
//! | operation | implementation | why |
//! |---|---|---|
//! | ML-DSA-65 verify | aws-lc-rs | the hot path (records, messages, ALIVE claims, identity proofs); ≈ 2× faster |
//! | ML-KEM-768 decapsulate | aws-lc-rs, with the key expanded by the pure-Rust crate | aws-lc-rs cannot expand an ML-KEM key from its 64-byte seed; it imports the expanded key (FIPS 203 `dk`) the pure-Rust crate derives from the seed |
//! | ML-DSA-65 key expansion and signing | pure Rust (`ml-dsa`) | SPEC.md §3 fixes the *deterministic* variant, and the core's determinism (§11) depends on it; aws-lc-rs signs hedged (randomised) only |
//! | ML-KEM-768 key expansion and encapsulation | pure Rust (`ml-kem`) | the core supplies the encapsulation entropy from its seeded RNG; aws-lc-rs draws its own |
//!
//! Every result is bit-compatible with [`PureRustProvider`]: the same seeds give the same keys,
//! signatures verify across both, and a ciphertext encapsulated by one decapsulates with the
//! other (tests in this module).

use aws_lc_rs::kem::{DecapsulationKey, ML_KEM_768};
use aws_lc_rs::signature::{ML_DSA_65, UnparsedPublicKey};
use hearsay_proto::crypto::{
    CryptoError, Decapsulator, EncapsulationKeyBytes, KEM_ENCAPSULATION_KEY_LEN, KEM_SEED_LEN,
    KEM_SHARED_SECRET_LEN, KemCiphertext, SIG_SEED_LEN, SharedSecret, SignatureBytes, Signer,
    VerifyingKeyBytes,
};
use hearsay_proto::{CryptoProvider, PureRustProvider};
use std::fmt;
use zeroize::Zeroizing;

/// A [`CryptoProvider`] that verifies ML-DSA-65 signatures and decapsulates ML-KEM-768
/// ciphertexts with aws-lc-rs, and does the rest with the pure-Rust crates (see the module
/// documentation for the split and its reasons). Bit-compatible with [`PureRustProvider`].
///
/// ```
/// use hearsay_proto::{Config, CryptoProvider};
/// use hearsay_tokio::AwsLcProvider;
/// use std::sync::Arc;
///
/// let config = Config { crypto: Arc::new(AwsLcProvider), ..Config::default() };
/// assert_eq!(config.crypto.name(), "aws-lc-rs");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLcProvider;

/// An ML-KEM-768 decapsulation key held by aws-lc-rs, expanded from its seed by the pure-Rust
/// crate.
struct AwsLcDecapsulator {
    key: DecapsulationKey,
    encapsulation_key: EncapsulationKeyBytes,
}

impl Decapsulator for AwsLcDecapsulator {
    fn encapsulation_key(&self) -> &EncapsulationKeyBytes {
        &self.encapsulation_key
    }

    fn decapsulate(&self, ciphertext: &KemCiphertext) -> Result<SharedSecret, CryptoError> {
        let ss = self
            .key
            .decapsulate(ciphertext.as_bytes().into())
            .map_err(|_| CryptoError::InvalidCiphertext)?;
        let mut out = Zeroizing::new([0u8; KEM_SHARED_SECRET_LEN]);
        if ss.as_ref().len() != KEM_SHARED_SECRET_LEN {
            return Err(CryptoError::InvalidCiphertext);
        }
        out.copy_from_slice(ss.as_ref());
        Ok(out)
    }
}

/// Expands an ML-KEM-768 seed with the pure-Rust crate into (expanded decapsulation key,
/// encapsulation key). The expanded form is FIPS 203's `dk` encoding, which aws-lc-rs imports.
fn expand_kem_seed(
    seed: &[u8; KEM_SEED_LEN],
) -> (Zeroizing<Vec<u8>>, [u8; KEM_ENCAPSULATION_KEY_LEN]) {
    #[allow(deprecated)]
    // the expanded form is deprecated in ml-kem, and the only one aws-lc-rs takes
    use ml_kem::ExpandedKeyEncoding;
    use ml_kem::KeyExport;
    let key = ml_kem::DecapsulationKey768::from_seed(ml_kem::Seed::from(*seed));
    let encapsulation_key: [u8; KEM_ENCAPSULATION_KEY_LEN] =
        key.encapsulation_key().to_bytes().into();
    #[allow(deprecated)]
    let expanded = Zeroizing::new(key.to_expanded_bytes().to_vec());
    (expanded, encapsulation_key)
}

impl CryptoProvider for AwsLcProvider {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn signer_from_seed(&self, seed: &[u8; SIG_SEED_LEN]) -> Box<dyn Signer> {
        // Deterministic signing (SPEC.md §3) is only available in the pure-Rust crate.
        PureRustProvider.signer_from_seed(seed)
    }

    fn verify(
        &self,
        verifying_key: &VerifyingKeyBytes,
        message: &[u8],
        signature: &SignatureBytes,
    ) -> bool {
        UnparsedPublicKey::new(&ML_DSA_65, verifying_key.as_bytes())
            .verify(message, signature.as_bytes())
            .is_ok()
    }

    fn decapsulator_from_seed(&self, seed: &[u8; KEM_SEED_LEN]) -> Box<dyn Decapsulator> {
        let (expanded, encapsulation_key) = expand_kem_seed(seed);
        match DecapsulationKey::new(&ML_KEM_768, &expanded) {
            Ok(key) => Box::new(AwsLcDecapsulator {
                key,
                encapsulation_key: EncapsulationKeyBytes::from_array(encapsulation_key),
            }),
            // aws-lc-rs refused a key the pure-Rust crate derived: stay correct, if slower.
            Err(_) => PureRustProvider.decapsulator_from_seed(seed),
        }
    }

    fn encapsulate(
        &self,
        encapsulation_key: &EncapsulationKeyBytes,
        entropy: &[u8; 32],
    ) -> Result<(KemCiphertext, SharedSecret), CryptoError> {
        // The caller's entropy must be used (determinism): aws-lc-rs draws its own.
        PureRustProvider.encapsulate(encapsulation_key, entropy)
    }
}

impl fmt::Display for AwsLcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::kem::EncapsulationKey;
    use aws_lc_rs::signature::{KeyPair, ML_DSA_65_SIGNING, PqdsaKeyPair};

    fn seeds(i: u8) -> ([u8; 32], [u8; 64]) {
        let sig: [u8; 32] = core::array::from_fn(|k| (k as u8).wrapping_mul(31) ^ i);
        let kem: [u8; 64] = core::array::from_fn(|k| (k as u8).wrapping_mul(7) ^ i);
        (sig, kem)
    }

    #[test]
    fn same_seeds_give_the_same_keys_in_both_providers_and_in_aws_lc_keygen() {
        for i in 0..4 {
            let (sig_seed, kem_seed) = seeds(i);
            let ours = AwsLcProvider.signer_from_seed(&sig_seed);
            let pure = PureRustProvider.signer_from_seed(&sig_seed);
            assert_eq!(ours.verifying_key(), pure.verifying_key());
            // aws-lc-rs' own seed-based keygen agrees too (we do not use it: see the module doc).
            let aws = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, &sig_seed).unwrap();
            assert_eq!(aws.public_key().as_ref(), pure.verifying_key().as_bytes());

            let ours = AwsLcProvider.decapsulator_from_seed(&kem_seed);
            let pure = PureRustProvider.decapsulator_from_seed(&kem_seed);
            assert_eq!(ours.encapsulation_key(), pure.encapsulation_key());
        }
    }

    #[test]
    fn signatures_verify_across_providers_and_forgeries_fail() {
        let (seed, _) = seeds(9);
        let pure_signer = PureRustProvider.signer_from_seed(&seed);
        let vk = pure_signer.verifying_key().clone();
        let msg = b"hearsay cross-provider";
        let sig = pure_signer.sign(msg).unwrap();
        assert!(AwsLcProvider.verify(&vk, msg, &sig));
        assert!(!AwsLcProvider.verify(&vk, b"hearsay cross-providex", &sig));
        let mut bad = sig.to_vec();
        bad[17] ^= 0x40;
        let bad = SignatureBytes::new(bad).unwrap();
        assert!(!AwsLcProvider.verify(&vk, msg, &bad));

        // Our signer is the deterministic one: identical to the pure-Rust provider's bytes.
        let ours = AwsLcProvider.signer_from_seed(&seed).sign(msg).unwrap();
        assert_eq!(ours, sig);

        // aws-lc-rs' (hedged) signatures verify under the pure-Rust provider.
        let aws = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, &seed).unwrap();
        let mut raw = vec![0u8; ML_DSA_65_SIGNING.signature_len()];
        aws.sign(msg, &mut raw).unwrap();
        let aws_sig = SignatureBytes::new(raw).unwrap();
        assert!(PureRustProvider.verify(&vk, msg, &aws_sig));
        assert!(AwsLcProvider.verify(&vk, msg, &aws_sig));
    }

    #[test]
    fn aws_lc_signing_is_hedged_which_is_why_it_is_not_used() {
        let (seed, _) = seeds(3);
        let aws = PqdsaKeyPair::from_seed(&ML_DSA_65_SIGNING, &seed).unwrap();
        let mut a = vec![0u8; ML_DSA_65_SIGNING.signature_len()];
        let mut b = a.clone();
        aws.sign(b"same message", &mut a).unwrap();
        aws.sign(b"same message", &mut b).unwrap();
        assert_ne!(
            a, b,
            "aws-lc-rs signed deterministically: it could take over signing"
        );
    }

    #[test]
    fn kem_interoperates_both_ways() {
        let (_, kem_seed) = seeds(5);
        let ours = AwsLcProvider.decapsulator_from_seed(&kem_seed);
        let pure = PureRustProvider.decapsulator_from_seed(&kem_seed);
        // Pure-Rust encapsulation, decapsulated by aws-lc-rs and by the pure-Rust key.
        let (ct, ss) = PureRustProvider
            .encapsulate(pure.encapsulation_key(), &[0x42; 32])
            .unwrap();
        assert_eq!(*ours.decapsulate(&ct).unwrap(), *ss);
        assert_eq!(*pure.decapsulate(&ct).unwrap(), *ss);
        // Our encapsulate is the pure-Rust one: same entropy, same bytes.
        let (ct2, ss2) = AwsLcProvider
            .encapsulate(ours.encapsulation_key(), &[0x42; 32])
            .unwrap();
        assert_eq!((ct2, *ss2), (ct.clone(), *ss));
        // aws-lc-rs' own (randomised) encapsulation decapsulates with both.
        let ek = EncapsulationKey::new(&ML_KEM_768, ours.encapsulation_key().as_bytes()).unwrap();
        let (aws_ct, aws_ss) = ek.encapsulate().unwrap();
        let aws_ct = KemCiphertext::new(aws_ct.as_ref().to_vec()).unwrap();
        assert_eq!(
            ours.decapsulate(&aws_ct).unwrap().as_slice(),
            aws_ss.as_ref()
        );
        assert_eq!(
            pure.decapsulate(&aws_ct).unwrap().as_slice(),
            aws_ss.as_ref()
        );
        // Implicit rejection: a tampered ciphertext gives the same unrelated secret in both.
        let mut bad = ct.to_vec();
        bad[3] ^= 1;
        let bad = KemCiphertext::new(bad).unwrap();
        let a = ours.decapsulate(&bad).unwrap();
        assert_ne!(*a, *ss);
        assert_eq!(*a, *pure.decapsulate(&bad).unwrap());
    }

    #[test]
    fn malformed_keys_and_signatures_are_false_not_panics() {
        let vk = VerifyingKeyBytes::from_array([0xff; 1952]);
        let sig = SignatureBytes::from_array([0; 3309]);
        assert!(!AwsLcProvider.verify(&vk, b"x", &sig));
    }
}
