//! The contract's `root` behaviour (version 4): an attacker that grinds identities until it
//! holds the smallest `PeerId` it can find, rejoins with it and so becomes the root of every
//! topic tree it joins, or the parent of many (SPEC.md §15.6: each topic's root is the member
//! with the smallest id; a member's parent is the neighbour reporting the root with the fewest
//! hops), then forwards nothing.
//!
//! **Grinding.** When a node turns `root`, its attacker tries [`GRIND_TRIES`] (2^16) signing
//! seeds, each derived from the run's seed, the attacker's node number and a counter, and keeps
//! the one whose `PeerId` (the hash of the verifying key, SPEC.md §2) is smallest. Only what the
//! id needs is computed per try: the signing seed, the verifying key the run's crypto provider
//! expands from it (uncounted: these keys never sign), and its hash; the KEM seed is derived
//! once, for the winner. The tries are split over the machine's cores (the winner does not
//! depend on the split). Measured on the 2-core machine: with the default fast crypto a try
//! costs about 5 µs of CPU (a BLAKE3 expansion of the 1,952-byte key and its hash), 0.32 s per
//! attacker on one core and 0.2 s of wall time on two: about 2 s of `tree-capture`'s ~6 s for
//! its 10 attackers. With `--crypto real` a try is an ML-DSA-65 key generation, about 0.66 ms:
//! some 43 s of CPU per attacker.
//!
//! **Rejoining as the best.** The attacker's node stops as a crash does (its peers hear
//! silence; it is Byzantine, so no detection clock starts and no metric counts it, and no
//! `restart` brings it back). A new simulated node is appended to the world with the ground
//! identity: a real `hearsay_proto::Node` with the run's configuration, an address like every
//! node's (`sim:N`), in its attacker's address group, registered in the world's index. It joins
//! through as many live honest nodes as its attacker joined through (at least one, drawn by the
//! world's random generator, as a `join` picks contacts), and subscribes to the topics its
//! attacker was subscribed to. Its driver is an [`Adversary::root`] plug-in (see
//! `crate::byzantine`): no payload out (no GOSSIP or REPAIR, so no answer to GRAFT or IWANT),
//! zero hops claimed to any root other than itself, everything else honest. It is never honest
//! and never live: no metric counts it; a partition puts it with its attacker.

use super::{NodeState, SimNode, World, address_of, register_keys};
use crate::byzantine::Adversary;
use chacha20::ChaCha8Rng;
use hearsay_proto::{CryptoProvider, Identity, IdentitySeeds, Node, PeerId, Timestamp, TopicId};
use rand_core::SeedableRng;

/// Identities a `root` attacker tries (the contract's "up to 2^16").
pub const GRIND_TRIES: u64 = 1 << 16;

/// The signing seed of try `k` of `root` attacker `attacker` in a run with `seed`.
fn signing_seed(seed: u64, attacker: usize, k: u64) -> [u8; 32] {
    let mut m = [0u8; 24];
    m[..8].copy_from_slice(&seed.to_le_bytes());
    m[8..16].copy_from_slice(&(attacker as u64).to_le_bytes());
    m[16..].copy_from_slice(&k.to_le_bytes());
    blake3::derive_key("hearsay-sim root grind v1", &m)
}

/// The identity `root` attacker `attacker` rejoins with in a run with `seed`: of `tries`
/// signing seeds, the one whose `PeerId` under `provider` is smallest, with a KEM seed derived
/// for it. Deterministic; computes per try only the verifying key and its hash. The tries are
/// split over the machine's cores; the result does not depend on how (the smallest id wins,
/// then the earlier try, should two ever be equal).
pub fn grind_root_identity(
    provider: &dyn CryptoProvider,
    seed: u64,
    attacker: usize,
    tries: u64,
) -> (IdentitySeeds, PeerId) {
    let tries = tries.max(1);
    let best_of = |from: u64, to: u64| {
        (from..to)
            .map(|k| {
                let s = signing_seed(seed, attacker, k);
                let vk = provider.signer_from_seed(&s);
                (PeerId::from_verifying_key(vk.verifying_key()), k)
            })
            .min()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 8) as u64;
    let per = tries.div_ceil(threads);
    let best = std::thread::scope(|scope| {
        let parts: Vec<_> = (0..threads)
            .map(|t| (t * per, ((t + 1) * per).min(tries)))
            .filter(|(from, to)| from < to)
            .map(|(from, to)| scope.spawn(move || best_of(from, to)))
            .collect();
        parts
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .min()
    });
    // A thread cannot fail short of the provider panicking; then grind here.
    let (peer, k) = best
        .or_else(|| best_of(0, tries))
        .unwrap_or_else(|| unreachable!("at least one try"));
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&seed.to_le_bytes());
    m[8..].copy_from_slice(&(attacker as u64).to_le_bytes());
    let rest = blake3::derive_key("hearsay-sim root identity v1", &m);
    let mut seeds = IdentitySeeds::generate(&mut ChaCha8Rng::from_seed(rest));
    seeds
        .signing
        .copy_from_slice(&signing_seed(seed, attacker, k));
    (seeds, peer)
}

impl World {
    /// `root` attackers `chosen` (already Byzantine) grind an identity each, stop, and rejoin
    /// with it (see the module's notes).
    pub(super) fn start_root(&mut self, now: Timestamp, chosen: &[usize]) {
        let provider = self.crypto.provider();
        for &a in chosen {
            let (seeds, peer) = grind_root_identity(&*provider, self.seed, a, GRIND_TRIES);
            if self.index.contains_key(&peer) {
                continue; // cannot happen short of a hash collision
            }
            // The old identity stops, as a crash.
            let n = &mut self.nodes[a];
            n.node = None;
            n.state = NodeState::Crashed;
            n.armed = None;
            let (subnet, topics) = (n.subnet, n.subscriptions.clone());
            let wanted = n.contacts.len().max(1);
            self.refresh_health(now, Some(a));
            let honest: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_live(i)).collect();
            let contacts = self.pick_count(honest, wanted);
            let i = self.nodes.len();
            let mut config = self.config.clone();
            config.addresses = vec![address_of(i, subnet)];
            let identity = Identity::from_seeds(&*self.config.crypto, seeds.clone());
            let rng_seed = {
                let mut m = [0u8; 16];
                m[..8].copy_from_slice(&self.seed.to_le_bytes());
                m[8..].copy_from_slice(&(a as u64).to_le_bytes());
                blake3::derive_key("hearsay-sim root node rng v1", &m)
            };
            let node = match Node::new(config, identity, rng_seed, now) {
                Ok(node) => node,
                Err(e) => {
                    self.warn_once(format!("root: attacker {a} cannot rejoin: {e}"));
                    continue;
                }
            };
            register_keys(&self.interner, &node);
            self.index.insert(peer, i);
            self.nodes.push(SimNode {
                node: Some(node),
                seeds,
                peer,
                state: NodeState::Running,
                joined: true,
                contacts,
                persisted: None,
                adversary: Some(Adversary::root(a, peer)),
                armed: None,
                missed_disconnects: Vec::new(),
                boots: 1,
                frames_sent: 0,
                bytes_sent: 0,
                subscriptions: topics.clone(),
                began_joining: true,
                subnet,
            });
            self.rejoined.insert(a, i);
            self.send_join(now, i);
            for topic in topics {
                self.subscribe(now, i, topic, "(root attacker rejoining)");
            }
        }
    }

    /// The node number of the identity `root` attacker `a` rejoined with, if it did.
    pub fn root_identity(&self, a: usize) -> Option<usize> {
        self.rejoined.get(&a).copied()
    }

    /// Whether honest node `i` has, in `topic`, the identity a `root` attacker rejoined with as
    /// its root or its parent (as `inspect().topic_root` reports them; the attackers' old,
    /// stopped identities do not count).
    pub fn captured_by_root(&self, i: usize, topic: &TopicId) -> bool {
        let attacker = |p: &PeerId| self.rejoined.values().any(|&j| self.nodes[j].peer == *p);
        self.is_honest(i)
            && self.nodes[i]
                .node
                .as_ref()
                .and_then(|n| n.inspect().topic_root(topic))
                .is_some_and(|(root, _, parent)| {
                    attacker(&root) || parent.is_some_and(|p| attacker(&p))
                })
    }
}
