//! The narrow crypto interface the protocols use, and the default pure-Rust provider.
//!
//! Like rustls' `CryptoProvider`, everything post-quantum goes through [`CryptoProvider`], so a
//! runtime can plug in a faster implementation (aws-lc-rs, hardware) without touching protocol
//! code, and a simulator can wrap one to memoise verification. Sizes are fixed by FIPS 204 and
//! FIPS 203; every provider must produce exactly these lengths.
//!
//! Signatures use ML-DSA-65's deterministic variant with an empty context string; protocols
//! separate domains by prefixing the signed bytes (see [`signing_input`]), so any conforming
//! ML-DSA-65 implementation interoperates.

#[cfg(feature = "insecure-test-crypto")]
mod insecure;
#[cfg(feature = "insecure-test-crypto")]
pub use insecure::InsecureTestProvider;

use crate::wire::codec::FixedBytes;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use zeroize::Zeroizing;

/// Length of an encoded ML-DSA-65 verifying key.
pub const SIG_VERIFYING_KEY_LEN: usize = 1952;
/// Length of an ML-DSA-65 signature.
pub const SIGNATURE_LEN: usize = 3309;
/// Length of an ML-DSA-65 key-generation seed.
pub const SIG_SEED_LEN: usize = 32;
/// Length of an encoded ML-KEM-768 encapsulation key.
pub const KEM_ENCAPSULATION_KEY_LEN: usize = 1184;
/// Length of an ML-KEM-768 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1088;
/// Length of an ML-KEM-768 key-generation seed (d ‖ z).
pub const KEM_SEED_LEN: usize = 64;
/// Length of an ML-KEM shared secret.
pub const KEM_SHARED_SECRET_LEN: usize = 32;

/// An encoded ML-DSA-65 verifying key.
pub type VerifyingKeyBytes = FixedBytes<SIG_VERIFYING_KEY_LEN>;
/// An ML-DSA-65 signature.
pub type SignatureBytes = FixedBytes<SIGNATURE_LEN>;
/// An encoded ML-KEM-768 encapsulation key.
pub type EncapsulationKeyBytes = FixedBytes<KEM_ENCAPSULATION_KEY_LEN>;
/// An ML-KEM-768 ciphertext.
pub type KemCiphertext = FixedBytes<KEM_CIPHERTEXT_LEN>;
/// An ML-KEM-768 shared secret, wiped when dropped.
pub type SharedSecret = Zeroizing<[u8; KEM_SHARED_SECRET_LEN]>;

/// What went wrong inside a crypto operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// A public key's bytes do not decode to a valid key.
    InvalidKey,
    /// The signer could not produce a signature (astronomically rare for ML-DSA).
    SigningFailed,
    /// A ciphertext could not be decapsulated.
    InvalidCiphertext,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CryptoError::InvalidKey => "invalid public key",
            CryptoError::SigningFailed => "signing failed",
            CryptoError::InvalidCiphertext => "invalid ciphertext",
        })
    }
}

impl core::error::Error for CryptoError {}

/// An ML-DSA-65 signing key, expanded by a provider from its seed.
pub trait Signer: Send + Sync {
    /// The encoded verifying key matching this signing key.
    fn verifying_key(&self) -> &VerifyingKeyBytes;
    /// Signs `message` (deterministic variant, empty context).
    fn sign(&self, message: &[u8]) -> Result<SignatureBytes, CryptoError>;
}

/// An ML-KEM-768 decapsulation key, expanded by a provider from its seed.
pub trait Decapsulator: Send + Sync {
    /// The encoded encapsulation key matching this decapsulation key.
    fn encapsulation_key(&self) -> &EncapsulationKeyBytes;
    /// Recovers the shared secret from `ciphertext`. ML-KEM decapsulation is implicitly
    /// rejecting: a tampered ciphertext yields an unrelated secret, not an error.
    fn decapsulate(&self, ciphertext: &KemCiphertext) -> Result<SharedSecret, CryptoError>;
}

/// The post-quantum primitives hearsay needs, behind one narrow interface.
pub trait CryptoProvider: Send + Sync + 'static {
    /// A short name for logs and reports ("pure-rust", "aws-lc-rs", ...).
    fn name(&self) -> &'static str;
    /// Expands an ML-DSA-65 key pair from its 32-byte seed (FIPS 204 KeyGen_internal).
    fn signer_from_seed(&self, seed: &[u8; SIG_SEED_LEN]) -> Box<dyn Signer>;
    /// Verifies an ML-DSA-65 signature (empty context). Any malformed input is `false`.
    fn verify(
        &self,
        verifying_key: &VerifyingKeyBytes,
        message: &[u8],
        signature: &SignatureBytes,
    ) -> bool;
    /// Expands an ML-KEM-768 key pair from its 64-byte seed (FIPS 203 KeyGen_internal).
    fn decapsulator_from_seed(&self, seed: &[u8; KEM_SEED_LEN]) -> Box<dyn Decapsulator>;
    /// Encapsulates to `encapsulation_key` using the 32 bytes of caller-supplied `entropy`
    /// (which must be fresh and uniformly random: it comes from the node's seeded RNG).
    fn encapsulate(
        &self,
        encapsulation_key: &EncapsulationKeyBytes,
        entropy: &[u8; 32],
    ) -> Result<(KemCiphertext, SharedSecret), CryptoError>;
}

/// The default provider.
pub fn default_provider() -> Arc<dyn CryptoProvider> {
    Arc::new(PureRustProvider)
}

/// Builds the bytes a signature covers: a length-prefixed domain string, then `body`.
///
/// Every signed object names its domain (SPEC.md §3), so a signature made for one purpose can
/// never be replayed as another.
pub fn signing_input(domain: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + domain.len() + body.len());
    // Domains are short constants; a length byte keeps "ab"+"c" apart from "a"+"bc".
    out.push(u8::try_from(domain.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(domain.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The RustCrypto `ml-dsa` and `ml-kem` crates: portable, no_std, constant-time.
#[derive(Debug, Clone, Copy, Default)]
pub struct PureRustProvider;

struct PureRustSigner {
    key: ml_dsa::ExpandedSigningKey<ml_dsa::MlDsa65>,
    verifying_key: VerifyingKeyBytes,
}

impl Signer for PureRustSigner {
    fn verifying_key(&self) -> &VerifyingKeyBytes {
        &self.verifying_key
    }

    fn sign(&self, message: &[u8]) -> Result<SignatureBytes, CryptoError> {
        let sig = self
            .key
            .sign_deterministic(message, &[])
            .map_err(|_| CryptoError::SigningFailed)?;
        let encoded: [u8; SIGNATURE_LEN] = sig.encode().into();
        Ok(SignatureBytes::from_array(encoded))
    }
}

struct PureRustDecapsulator {
    key: ml_kem::DecapsulationKey768,
    encapsulation_key: EncapsulationKeyBytes,
}

impl Decapsulator for PureRustDecapsulator {
    fn encapsulation_key(&self) -> &EncapsulationKeyBytes {
        &self.encapsulation_key
    }

    fn decapsulate(&self, ciphertext: &KemCiphertext) -> Result<SharedSecret, CryptoError> {
        use ml_kem::Decapsulate;
        let ss = self
            .key
            .decapsulate_slice(ciphertext.as_bytes())
            .map_err(|_| CryptoError::InvalidCiphertext)?;
        let mut out = Zeroizing::new([0u8; KEM_SHARED_SECRET_LEN]);
        out.copy_from_slice(ss.as_slice());
        Ok(out)
    }
}

impl CryptoProvider for PureRustProvider {
    fn name(&self) -> &'static str {
        "pure-rust"
    }

    fn signer_from_seed(&self, seed: &[u8; SIG_SEED_LEN]) -> Box<dyn Signer> {
        let seed = ml_dsa::Seed::from(*seed);
        let key = ml_dsa::ExpandedSigningKey::<ml_dsa::MlDsa65>::from_seed(&seed);
        let encoded = key.verifying_key().encode();
        // The encoding of an ML-DSA-65 key is always SIG_VERIFYING_KEY_LEN bytes.
        let encoded: [u8; SIG_VERIFYING_KEY_LEN] = encoded.into();
        let verifying_key = VerifyingKeyBytes::from_array(encoded);
        Box::new(PureRustSigner { key, verifying_key })
    }

    fn verify(
        &self,
        verifying_key: &VerifyingKeyBytes,
        message: &[u8],
        signature: &SignatureBytes,
    ) -> bool {
        let Ok(vk_enc) =
            ml_dsa::EncodedVerifyingKey::<ml_dsa::MlDsa65>::try_from(verifying_key.as_bytes())
        else {
            return false;
        };
        let Ok(sig) = ml_dsa::Signature::<ml_dsa::MlDsa65>::try_from(signature.as_bytes()) else {
            return false;
        };
        ml_dsa::VerifyingKey::<ml_dsa::MlDsa65>::decode(&vk_enc).verify_with_context(
            message,
            &[],
            &sig,
        )
    }

    fn decapsulator_from_seed(&self, seed: &[u8; KEM_SEED_LEN]) -> Box<dyn Decapsulator> {
        use ml_kem::KeyExport;
        let key = ml_kem::DecapsulationKey768::from_seed(ml_kem::Seed::from(*seed));
        let encoded = key.encapsulation_key().to_bytes();
        let encoded: [u8; KEM_ENCAPSULATION_KEY_LEN] = encoded.into();
        let encapsulation_key = EncapsulationKeyBytes::from_array(encoded);
        Box::new(PureRustDecapsulator {
            key,
            encapsulation_key,
        })
    }

    fn encapsulate(
        &self,
        encapsulation_key: &EncapsulationKeyBytes,
        entropy: &[u8; 32],
    ) -> Result<(KemCiphertext, SharedSecret), CryptoError> {
        let enc = ml_kem::array::Array::try_from(encapsulation_key.as_bytes())
            .map_err(|_| CryptoError::InvalidKey)?;
        let ek = ml_kem::EncapsulationKey768::new(&enc).map_err(|_| CryptoError::InvalidKey)?;
        let (ct, ss) = ek.encapsulate_deterministic(&ml_kem::B32::from(*entropy));
        let ct: [u8; KEM_CIPHERTEXT_LEN] = ct.into();
        let ct = KemCiphertext::from_array(ct);
        let mut out = Zeroizing::new([0u8; KEM_SHARED_SECRET_LEN]);
        out.copy_from_slice(ss.as_slice());
        Ok((ct, out))
    }
}
