//! Deterministic identities, nodes, records and ids, picked by number.

use super::time::T0;
use crate::crypto::CryptoProvider;
use crate::identity::record::Addresses;
use crate::{Config, Identity, MessageId, Node, PeerId, PeerRecord, TimeDelta, Timestamp};
use chacha20::ChaCha8Rng;
use rand_core::SeedableRng;

/// A seeded rng: ChaCha8 keyed by `seed` (through `SeedableRng::seed_from_u64`). Identities are
/// drawn from it, and tests use it wherever a protocol asks for randomness.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Identity number `n` with the default (pure-Rust) provider: its seeds are drawn from
/// [`rng`]`(n)`, so the same `n` gives the same keys in every run and every process.
///
/// ```
/// use hearsay_proto::testing::identity;
/// assert_eq!(identity(1).peer_id(), identity(1).peer_id());
/// assert_ne!(identity(1).peer_id(), identity(2).peer_id());
/// ```
pub fn identity(n: u64) -> Identity {
    identity_with(&*crate::default_provider(), n)
}

/// Identity number `n` with `provider`'s keys: the same seeds as [`identity`]`(n)`. Providers
/// that implement ML-DSA and ML-KEM (pure Rust, aws-lc-rs) give the same keys; the insecure test
/// provider gives other ones, so a node's identity must come from its own provider.
pub fn identity_with(provider: &dyn CryptoProvider, n: u64) -> Identity {
    Identity::generate(provider, &mut rng(n))
}

/// Identity number `n` under the insecure test provider (fast, real sizes, NOT secure).
#[cfg(feature = "insecure-test-crypto")]
pub fn insecure_identity(n: u64) -> Identity {
    identity_with(&crate::crypto::InsecureTestProvider, n)
}

/// The default configuration with the insecure test provider: for tests that sign and verify
/// thousands of messages. Pair it with [`insecure_identity`] (or [`node_with`], which picks the
/// identity from the configuration's provider).
#[cfg(feature = "insecure-test-crypto")]
pub fn insecure_config() -> Config {
    Config {
        crypto: alloc::sync::Arc::new(crate::crypto::InsecureTestProvider),
        ..Config::default()
    }
}

/// Node number `n`: [`identity`]`(n)`, the default configuration, rng seed `n`, started at
/// [`T0`].
pub fn node(n: u64) -> Node {
    node_with(n, Config::default())
}

/// Node number `n` with `config`: the identity is [`identity_with`]`(config.crypto, n)`, the
/// node's rng seed is `n`, it starts at [`T0`].
///
/// ```
/// use hearsay_proto::testing::{identity, node_with};
/// use hearsay_proto::Config;
/// let n = node_with(3, Config::default());
/// assert_eq!(n.peer_id(), identity(3).peer_id());
/// ```
pub fn node_with(n: u64, config: Config) -> Node {
    let identity = identity_with(&*config.crypto, n);
    Node::new(config, identity, n, T0).expect("the test node builds")
}

/// A record of `identity` with no address, issued at `at` for `lifetime`.
pub fn record(identity: &Identity, at: Timestamp, lifetime: TimeDelta) -> PeerRecord {
    PeerRecord::issue(identity, Addresses::empty(), at, lifetime).expect("the test record signs")
}

/// Peer id number `n` that nobody holds a key for: what a hostile peer advertises. The first
/// four bytes are `n` (little-endian), the rest `0xfa`.
pub fn fake_peer(n: u32) -> PeerId {
    let mut b = [0xfa; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    PeerId::from_bytes(b)
}

/// Message id number `n` of no message: the first four bytes are `n` (little-endian), the rest
/// `0x1d`.
pub fn fake_id(n: u32) -> MessageId {
    let mut b = [0x1d; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    MessageId::from_bytes(b)
}
