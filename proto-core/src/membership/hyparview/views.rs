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
}
