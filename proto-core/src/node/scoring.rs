//! The node's part in peer scores (SPEC.md §13.8): evidence from every protocol goes into one
//! table, the overlays get the scores they need before a message that may admit or evict, and
//! a peer scoring below the graylist threshold is cut off.

use super::*;
use crate::score::{Evidence, Standing};

impl Node {
    /// What the node knows of `peer` besides its evidence: how long its link has been up, and
    /// how many links share its address group.
    pub(super) fn standing(&self, peer: &PeerId) -> Standing {
        let Some(link) = self.links.get(peer) else {
            return Standing::default();
        };
        let colocated = link.group.map_or(1, |g| {
            let n = self.links.values().filter(|l| l.group == Some(g)).count();
            u32::try_from(n).unwrap_or(u32::MAX)
        });
        Standing {
            connected_for: self.now.saturating_since(link.created),
            colocated,
        }
    }

    /// `peer`'s score now.
    pub(super) fn score_of(&self, peer: &PeerId) -> i32 {
        self.scores.score(self.now, peer, self.standing(peer))
    }

    /// Whether `peer`, unconnected, still scores below the graylist threshold: a connection
    /// from or to it is refused until its evidence has decayed (§13.8), so that a peer cut off
    /// cannot come straight back and start again.
    pub(super) fn graylisted(&self, peer: &PeerId) -> bool {
        self.scores.score(self.now, peer, Standing::default())
            < self.scores.config().graylist_threshold
    }

    /// Records what `peer` did; a peer whose score falls below the graylist threshold is cut
    /// off (every overlay drops it with reason `Misbehaved`, the link is closed).
    pub(super) fn note_evidence(&mut self, now: Timestamp, peer: PeerId, evidence: Evidence) {
        if peer == self.identity.peer_id() {
            return;
        }
        self.scores.note(now, peer, evidence);
        if evidence != Evidence::FirstDelivery
            && self.links.contains_key(&peer)
            && self.score_of(&peer) < self.scores.config().graylist_threshold
        {
            self.counters.peers_graylisted += 1;
            self.cut_off(now, peer);
        }
    }

    /// `peer` misbehaved past what is tolerated: every overlay forgets it (§13.7) and the link
    /// closes. Its evidence is kept (it decays), so coming back it is still refused a place
    /// in a full view.
    pub(super) fn cut_off(&mut self, now: Timestamp, peer: PeerId) {
        self.peer_misbehaved(now, peer);
        if self.links.remove(&peer).is_some() {
            self.push_transmit(super::Transmit::Disconnect { peer });
        }
        self.link_down(now, peer);
    }

    /// The scores an overlay needs before `message` from `from`: its active neighbours', the
    /// sender's, and for a FORWARD_JOIN the joiner's. Only a message that may admit or evict
    /// needs them, and only when views use scores (`None` otherwise).
    pub(super) fn scores_for(
        &self,
        from: PeerId,
        message: &hyparview::Message,
        active: impl Iterator<Item = PeerId>,
    ) -> Option<Vec<(PeerId, i32)>> {
        if !self.scores.config().in_views {
            return None;
        }
        let named = match message {
            hyparview::Message::ForwardJoin { node, .. } => Some(node.peer),
            hyparview::Message::Join
            | hyparview::Message::Neighbor { .. }
            | hyparview::Message::NeighborReply { .. }
            | hyparview::Message::Probe { .. } => None,
            _ => return None,
        };
        let mut out: Vec<(PeerId, i32)> = active
            .chain(core::iter::once(from))
            .chain(named)
            .map(|p| (p, self.score_of(&p)))
            .collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}
