//! Feeding the views from outside the protocol's own messages: peers the node met, and
//! neighbours the failure detector asks to keep (SPEC.md §13.3).
use super::*;

impl HyParView {
    /// A peer this node met (a verified connection) becomes a passive entry if the passive
    /// view has room: it never displaces one. Without this, in a small overlay where nearly
    /// everyone is active, the passive view stays empty, and a node whose active neighbours
    /// all crash has nobody to repair from or to probe (a 12-node run lost its first node,
    /// which has no join contact, for good). Replies whether it was added.
    pub fn offer_passive(&mut self, info: PeerInfo) -> bool {
        if self.left
            || info.peer == self.me
            || self.passive.len() >= self.config.passive_view
            || self.active.contains_key(&info.peer)
            || self.passive.contains_key(&info.peer)
        {
            return false;
        }
        self.with_timers(|hv| hv.passive_insert_evicting(info.peer, info.addresses, None));
        true
    }

    /// Active neighbours not to evict for a newcomer while another can be: the ones the
    /// node's failure detector suspects. Their verdict is a few seconds away, and evicting one
    /// would drop it from the active view without one, so that the neighbour never learns it
    /// failed (membership-crash, one trajectory: two such pairs counted as missed
    /// detections). Replaces the previous set.
    pub fn spare(&mut self, peers: impl IntoIterator<Item = PeerId>) {
        self.spared.clear();
        self.spared
            .extend(peers.into_iter().filter(|p| self.active.contains_key(p)));
    }

    /// Adds `peer` to the active view, `chosen` if this node picked it itself (§13.7). A full
    /// view first evicts a random neighbour that is not protected, one the failure detector
    /// suspects last (and, only where every neighbour is protected, a random one).
    pub(super) fn add_active(
        &mut self,
        peer: PeerId,
        addresses: Addresses,
        chosen: bool,
        rng: &mut machine::Rng,
    ) {
        if peer == self.me {
            return;
        }
        if let Some(a) = self.active.get_mut(&peer) {
            if !addresses.is_empty() {
                *a = addresses;
            }
            return;
        }
        if self.active.len() >= self.config.active_view {
            let victim = self
                .eviction_victim(self.groups.get(&peer).copied(), rng)
                .or_else(|| self.random_active_except(&[], rng));
            // A neighbour evicted before it stood `tried_after` (one invited newcomer making
            // room for the next) is not kept as a passive entry: a flood of identities would
            // otherwise pour through the active view into the passive one (§13.7).
            let settled = victim.is_some_and(|v| self.chosen.contains(&v) || self.has_stood(&v));
            if let Some(victim) = victim
                && let Some(va) = self.remove_active(&victim, false)
            {
                if !chosen {
                    self.pressure_until = self.clock + admission::PRESSURE_WINDOW;
                }
                self.out.push_back(Output::Send {
                    to: victim,
                    message: Message::Disconnect,
                });
                self.out.push_back(Output::Disconnect { peer: victim });
                self.out.push_back(Output::NeighborDown {
                    peer: victim,
                    reason: DownReason::Replaced,
                });
                if settled {
                    self.passive_insert_evicting(victim, va, None);
                }
            }
        }
        self.passive.remove(&peer);
        self.lost.remove(&peer);
        if self.active.is_empty() {
            let soon = self.clock + jitter(rng, self.config.first_shuffle);
            self.next_shuffle = self.next_shuffle.min(soon);
        }
        self.active.insert(peer, addresses);
        self.active_since.insert(peer, self.clock);
        if chosen {
            self.chosen.insert(peer);
        }
        self.arm_lost(peer);
        self.out.push_back(Output::NeighborUp { peer });
    }

    pub(super) fn add_passive(
        &mut self,
        peer: PeerId,
        addresses: Addresses,
        prefer_evict: &[PeerId],
        rng: &mut machine::Rng,
    ) {
        if peer == self.me
            || self.active.contains_key(&peer)
            || self.passive.contains_key(&peer)
            || self.config.passive_view == 0
        {
            return;
        }
        let pick = (rng.next_u64() as usize, prefer_evict);
        self.passive_insert_evicting(peer, addresses, Some(pick));
    }

    pub(super) fn passive_insert_evicting(
        &mut self,
        peer: PeerId,
        addresses: Addresses,
        pick: Option<(usize, &[PeerId])>,
    ) {
        let group = self.group_of_entry(&peer, &addresses);
        if self.passive_groups.len() > 2 * self.config.passive_view {
            let passive = &self.passive;
            self.passive_groups.retain(|p, _| passive.contains_key(p));
        }
        if let Some(g) = group {
            // A full group makes room within itself (§13.7): however many identities one
            // operator offers, they hold `passive_per_group` entries.
            let mut same: Vec<PeerId> = self
                .passive_groups
                .iter()
                .filter(|(p, pg)| **pg == g && self.passive.contains_key(p))
                .map(|(p, _)| *p)
                .collect();
            if same.len() >= self.config.passive_per_group.max(1) {
                let r = pick.map_or(0, |(r, _)| r);
                let victim = same.swap_remove(r % same.len());
                self.passive.remove(&victim);
                self.passive_groups.remove(&victim);
            }
            self.passive_groups.insert(peer, g);
        }
        if self.passive.len() >= self.config.passive_view {
            let victim = match pick {
                Some((r, prefer)) => prefer
                    .iter()
                    .find(|p| self.passive.contains_key(p))
                    .copied()
                    .or_else(|| self.passive.keys().nth(r % self.passive.len()).copied()),
                None => self.passive.keys().next().copied(),
            };
            if let Some(v) = victim {
                self.passive.remove(&v);
            }
        }
        if self.passive.len() < self.config.passive_view {
            self.passive.insert(peer, addresses);
            if self.passive_since.len() > 2 * self.config.passive_view {
                let passive = &self.passive;
                self.passive_since.retain(|p, _| passive.contains_key(p));
            }
            self.passive_inserts += 1;
            self.passive_since.insert(peer, self.passive_inserts);
        }
    }

    /// The address group of an entry: its first address's, else its link's.
    pub(super) fn group_of_entry(
        &self,
        peer: &PeerId,
        addresses: &Addresses,
    ) -> Option<AddressGroup> {
        addresses
            .iter()
            .find_map(|a| AddressGroup::of_address(a))
            .or_else(|| self.groups.get(peer).copied())
    }
}
