//! Where the node dials (SPEC.md §20.1, "Dialling"). Addresses reach a node from records (signed
//! by the peer they name) and from walks, shuffles and introductions (a third party's claim).
//! Either way they are claims an attacker can choose: one SHUFFLE could name thirty-two
//! identities at a victim's address and make honest nodes dial it. So:
//! - a peer whose record is held is dialled at the record's addresses only;
//! - at most [`MAX_DIAL_ADDRESSES`] addresses per dial;
//! - each target address has its own budget (`dial_rate_per_address` per second) for dials
//!   for an identity other than the one it was last dialled for (a redial is free);
//! - a loopback or private address is dialled only by a node that advertises one of the same
//!   scope itself (or none at all), unless `dial_private_addresses` says otherwise.

use super::*;
use crate::identity::record::Address;
use crate::membership::group::AddressScope;

/// Most addresses one dial tries.
pub const MAX_DIAL_ADDRESSES: usize = 4;
/// Most target addresses whose dial budgets are remembered.
pub const MAX_DIAL_TARGETS: usize = 4096;

/// The key of a target address in the per-address budgets.
fn address_key(address: &Address) -> [u8; 16] {
    let hash = blake3::hash(address.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash.as_bytes()[..16]);
    key
}

impl Node {
    /// The addresses to dial `peer` at, given `claimed` ones: the held record's instead when
    /// there is one, filtered by scope, capped, and each within its budget. Dropped ones are
    /// counted (`dial_addresses_refused`).
    pub(super) fn dial_addresses(
        &mut self,
        now: Timestamp,
        peer: &PeerId,
        claimed: Addresses,
    ) -> Vec<Address> {
        let source: Vec<Address> = match self.records.get(peer) {
            Some(r) if r.expires_at > now => r.addresses.as_slice().to_vec(),
            _ => claimed.into_vec(),
        };
        let mut out = Vec::new();
        for address in source {
            let allowed = out.len() < MAX_DIAL_ADDRESSES
                && AddressScope::of_address(address.as_bytes()).is_none_or(|s| self.may_dial(s));
            if !allowed {
                self.counters.dial_addresses_refused += 1;
                continue;
            }
            // Dialling the peer this address was last dialled for again is free: a redial is
            // no amplification. Another identity at the address spends its budget.
            let key = address_key(&address);
            if self.dial_peers.get(&key) != Some(peer) {
                if !self.dial_limits.take(now, key) {
                    self.counters.dial_addresses_over_budget += 1;
                    continue;
                }
                if self.dial_peers.len() >= MAX_DIAL_TARGETS && !self.dial_peers.contains_key(&key)
                {
                    self.dial_peers.pop_first();
                }
                self.dial_peers.insert(key, *peer);
            }
            out.push(address);
        }
        out
    }

    /// Whether an address of `scope` may be dialled from here.
    fn may_dial(&self, scope: AddressScope) -> bool {
        if scope == AddressScope::Public {
            return true;
        }
        if let Some(allowed) = self.config.dial_private_addresses {
            return allowed;
        }
        let own: Vec<AddressScope> = self
            .config
            .addresses
            .iter()
            .filter_map(|a| AddressScope::of_address(a.as_bytes()))
            .collect();
        own.is_empty() || own.contains(&scope)
    }
}

#[cfg(all(test, feature = "insecure-test-crypto"))]
mod tests {
    use super::*;
    use crate::crypto::InsecureTestProvider;
    use crate::identity::IdentitySeeds;
    use alloc::sync::Arc;
    use alloc::vec;

    const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

    fn identity(n: u32) -> Identity {
        let mut seeds = [0x3d; 96];
        seeds[..4].copy_from_slice(&n.to_le_bytes());
        Identity::from_seeds(&InsecureTestProvider, IdentitySeeds::from_bytes(&seeds))
    }

    fn address(text: &str) -> Address {
        Address::new(text.as_bytes().to_vec()).unwrap()
    }

    fn addresses(texts: &[&str]) -> Addresses {
        Addresses::new(texts.iter().map(|t| address(t)).collect()).unwrap()
    }

    fn node(own: &[&str], private: Option<bool>) -> Node {
        let config = Config {
            crypto: Arc::new(InsecureTestProvider),
            addresses: own.iter().map(|t| address(t)).collect(),
            dial_private_addresses: private,
            ..Config::default()
        };
        Node::new(config, identity(0), 1u64, T0).unwrap()
    }

    /// The addresses of every Connect the node asked for, by peer.
    fn connects(node: &mut Node) -> Vec<(PeerId, Vec<Address>)> {
        core::iter::from_fn(|| node.poll_transmit())
            .filter_map(|t| match t {
                Transmit::Connect { peer, addresses } => Some((peer, addresses)),
                _ => None,
            })
            .collect()
    }

    /// A node that advertises a public address dials no loopback or private address another
    /// peer names (counted); one that advertises one of that scope, or is configured to, does.
    /// (The addresses only travel in the `Connect` transmits the test reads back: no driver
    /// runs here and nothing is dialled.)
    #[test]
    fn loopback_and_private_addresses_are_dialled_only_from_their_scope() {
        let claimed = addresses(&[
            "127.0.0.1:7000",
            "10.0.0.5:7000",
            "[fd00:0:1::1]:7000",
            "198.18.0.9:7000",
        ]);
        let mut public = node(&["198.18.0.1:7000"], None);
        public.dial(T0, identity(1).peer_id(), claimed.clone());
        assert_eq!(
            connects(&mut public),
            [(identity(1).peer_id(), vec![address("198.18.0.9:7000")])]
        );
        assert_eq!(public.counters.dial_addresses_refused, 3);
        let mut public = node(&["198.18.0.1:7000"], None);
        public.dial(T0, identity(1).peer_id(), addresses(&["127.0.0.1:7000"]));
        assert!(connects(&mut public).is_empty(), "nothing left to dial");
        assert_eq!(public.counters.dials_refused, 1);
        let mut local = node(&["127.0.0.1:6000"], None);
        local.dial(T0, identity(1).peer_id(), claimed.clone());
        assert_eq!(
            connects(&mut local),
            [(
                identity(1).peer_id(),
                vec![address("127.0.0.1:7000"), address("198.18.0.9:7000")]
            )]
        );
        // Advertising nothing (the node does not know where it is), or configured: all four.
        for mut n in [node(&[], None), node(&["198.18.0.1:7000"], Some(true))] {
            n.dial(T0, identity(1).peer_id(), claimed.clone());
            assert_eq!(connects(&mut n)[0].1.len(), 4);
        }
    }

    /// A peer whose record the node holds is dialled at the record's addresses, not at what a
    /// third party claimed; and a dial tries at most four addresses.
    #[test]
    fn a_held_record_decides_where_its_peer_is_dialled() {
        let mut n = node(&[], None);
        let h = identity(2);
        let record = PeerRecord::issue(
            &h,
            addresses(&["198.18.0.2:7000"]),
            T0,
            TimeDelta::from_secs(3600),
        )
        .unwrap();
        n.records.insert(record, |_| false);
        n.dial(T0, h.peer_id(), addresses(&["198.18.6.6:7000"]));
        assert_eq!(
            connects(&mut n),
            [(h.peer_id(), vec![address("198.18.0.2:7000")])]
        );
        let eight: Vec<alloc::string::String> = (0..8)
            .map(|i| alloc::format!("198.18.1.{i}:7000"))
            .collect();
        let eight: Vec<&str> = eight.iter().map(|s| s.as_str()).collect();
        n.dial(T0, identity(3).peer_id(), addresses(&eight));
        assert_eq!(connects(&mut n)[0].1.len(), MAX_DIAL_ADDRESSES);
        assert_eq!(n.counters.dial_addresses_refused, 4);
    }

    /// Forty identities claimed at one address: within a second the address is dialled at
    /// most its budget (2) times, whatever identity each dial is for; the rest are counted.
    /// Redialling the identity it was last dialled for costs nothing.
    #[test]
    fn one_target_address_gets_its_dial_budget_whatever_the_identity() {
        let mut n = node(&[], None);
        for i in 0..40 {
            n.dial(
                T0,
                identity(100 + i).peer_id(),
                addresses(&["198.18.7.7:7000"]),
            );
        }
        assert_eq!(connects(&mut n).len(), 2);
        assert_eq!(n.counters.dial_addresses_over_budget, 38);
        assert_eq!(n.counters.dials_refused, 38);
        // Another address has its own budget; a second later this one has its budget again.
        n.dial(T0, identity(200).peer_id(), addresses(&["198.18.7.8:7000"]));
        assert_eq!(connects(&mut n).len(), 1);
        let later = T0 + TimeDelta::from_secs(1);
        for i in 0..40 {
            n.dial(
                later,
                identity(300 + i).peer_id(),
                addresses(&["198.18.7.7:7000"]),
            );
        }
        assert_eq!(connects(&mut n).len(), 2);
        // The last identity dialled there, redialled ten times (its dial timed out each time):
        // ten dials, none over budget.
        let last = identity(301).peer_id();
        let over = n.counters.dial_addresses_over_budget;
        for k in 0..10 {
            let at = later + TimeDelta::from_millis(k);
            n.dialing.clear();
            n.dial(at, last, addresses(&["198.18.7.7:7000"]));
        }
        assert_eq!(connects(&mut n).len(), 10);
        assert_eq!(n.counters.dial_addresses_over_budget, over);
    }
}
