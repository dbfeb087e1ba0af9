//! A node's long-term identity: an ML-DSA-65 signing key and an ML-KEM-768 decapsulation key,
//! both stored as their seeds.

pub mod record;

use crate::crypto::{
    CryptoProvider, Decapsulator, EncapsulationKeyBytes, KEM_SEED_LEN, SIG_SEED_LEN, Signer,
    VerifyingKeyBytes,
};
use crate::id::PeerId;
use alloc::boxed::Box;
use core::fmt;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

/// The secret half of an identity, as stored: two seeds (32 + 64 bytes). Wiped on drop; its
/// `Debug` output never shows the bytes.
#[derive(Clone)]
pub struct IdentitySeeds {
    /// ML-DSA-65 key-generation seed ξ.
    pub signing: Zeroizing<[u8; SIG_SEED_LEN]>,
    /// ML-KEM-768 key-generation seed d ‖ z.
    pub kem: Zeroizing<[u8; KEM_SEED_LEN]>,
}

impl IdentitySeeds {
    /// Draws fresh seeds from `rng` (the OS RNG in production, a seeded one in tests).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut signing = Zeroizing::new([0u8; SIG_SEED_LEN]);
        let mut kem = Zeroizing::new([0u8; KEM_SEED_LEN]);
        rng.fill_bytes(signing.as_mut());
        rng.fill_bytes(kem.as_mut());
        Self { signing, kem }
    }

    /// The 96 bytes `signing ‖ kem`, for a keystore to encrypt and write.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SIG_SEED_LEN + KEM_SEED_LEN]> {
        let mut out = Zeroizing::new([0u8; SIG_SEED_LEN + KEM_SEED_LEN]);
        let (a, b) = out.split_at_mut(SIG_SEED_LEN);
        a.copy_from_slice(self.signing.as_ref());
        b.copy_from_slice(self.kem.as_ref());
        out
    }

    /// Reads the 96 bytes written by [`IdentitySeeds::to_bytes`].
    pub fn from_bytes(bytes: &[u8; SIG_SEED_LEN + KEM_SEED_LEN]) -> Self {
        let mut signing = Zeroizing::new([0u8; SIG_SEED_LEN]);
        let mut kem = Zeroizing::new([0u8; KEM_SEED_LEN]);
        let (a, b) = bytes.split_at(SIG_SEED_LEN);
        signing.copy_from_slice(a);
        kem.copy_from_slice(b);
        Self { signing, kem }
    }
}

impl fmt::Debug for IdentitySeeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentitySeeds(<secret>)")
    }
}

/// A node's identity with its keys expanded, ready to sign and decapsulate.
pub struct Identity {
    peer_id: PeerId,
    seeds: IdentitySeeds,
    signer: Box<dyn Signer>,
    decapsulator: Box<dyn Decapsulator>,
}

impl Identity {
    /// Expands `seeds` with `provider`.
    pub fn from_seeds(provider: &dyn CryptoProvider, seeds: IdentitySeeds) -> Self {
        let signer = provider.signer_from_seed(&seeds.signing);
        let decapsulator = provider.decapsulator_from_seed(&seeds.kem);
        let peer_id = PeerId::from_verifying_key(signer.verifying_key());
        Self {
            peer_id,
            seeds,
            signer,
            decapsulator,
        }
    }

    /// Generates a new identity from `rng`.
    pub fn generate<R: CryptoRng + ?Sized>(provider: &dyn CryptoProvider, rng: &mut R) -> Self {
        Self::from_seeds(provider, IdentitySeeds::generate(rng))
    }

    /// This identity's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The encoded ML-DSA-65 verifying key.
    pub fn verifying_key(&self) -> &VerifyingKeyBytes {
        self.signer.verifying_key()
    }

    /// The encoded ML-KEM-768 encapsulation key.
    pub fn encapsulation_key(&self) -> &EncapsulationKeyBytes {
        self.decapsulator.encapsulation_key()
    }

    /// The signing key.
    pub fn signer(&self) -> &dyn Signer {
        &*self.signer
    }

    /// The decapsulation key.
    pub fn decapsulator(&self) -> &dyn Decapsulator {
        &*self.decapsulator
    }

    /// The seeds this identity was expanded from (secret: for keystores only).
    pub fn seeds(&self) -> &IdentitySeeds {
        &self.seeds
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PureRustProvider;
    use alloc::format;
    use rand_core::SeedableRng;

    #[test]
    fn same_rng_seed_gives_same_identity_and_debug_hides_secrets() {
        let mut r1 = chacha20::ChaCha8Rng::from_seed([7; 32]);
        let mut r2 = chacha20::ChaCha8Rng::from_seed([7; 32]);
        let a = Identity::generate(&PureRustProvider, &mut r1);
        let b = Identity::generate(&PureRustProvider, &mut r2);
        assert_eq!(a.peer_id(), b.peer_id());
        assert_eq!(a.encapsulation_key(), b.encapsulation_key());
        let c = Identity::generate(&PureRustProvider, &mut r1);
        assert_ne!(a.peer_id(), c.peer_id());

        let seed_hex: alloc::string::String = a
            .seeds()
            .signing
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let dbg = format!("{a:?} {:?}", a.seeds());
        assert!(
            !dbg.contains(&seed_hex),
            "secret seed leaked into Debug: {dbg}"
        );
        assert!(dbg.contains("<secret>"));
    }

    #[test]
    fn seeds_round_trip_through_bytes() {
        let mut rng = chacha20::ChaCha8Rng::from_seed([9; 32]);
        let seeds = IdentitySeeds::generate(&mut rng);
        let back = IdentitySeeds::from_bytes(&seeds.to_bytes());
        assert_eq!(*back.signing, *seeds.signing);
        assert_eq!(*back.kem, *seeds.kem);
    }
}
