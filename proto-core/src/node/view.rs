use super::*;
use crate::id::PeerId;
use crate::id::TopicId;
use crate::identity::record::PeerRecord;
use crate::membership::hyparview::{self};
use crate::membership::swim::{self};
use crate::time::Timestamp;
use alloc::vec::Vec;

/// A read-only view of a [`Node`] (see [`Node::inspect`]).
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    pub(super) node: &'a Node,
}

impl<'a> NodeView<'a> {
    /// The node's id.
    pub fn peer_id(&self) -> PeerId {
        self.node.identity.peer_id()
    }

    /// The node's current signed record.
    pub fn record(&self) -> &'a PeerRecord {
        &self.node.record
    }

    /// The active view (HyParView): this node's neighbours, in id order.
    pub fn neighbors(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node.hyparview.active().copied()
    }

    /// The passive view, in id order.
    pub fn passive(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node.hyparview.passive().copied()
    }

    /// Connections whose handshake completed (neighbours and short-lived ones), in id order.
    pub fn connections(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node
            .links
            .iter()
            .filter(|(_, l)| l.established)
            .map(|(p, _)| *p)
    }

    /// Peers the failure detector currently suspects.
    pub fn suspects(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node.swim.suspects().copied()
    }

    /// Lifeguard's local health multiplier (0 = healthy).
    pub fn health(&self) -> u32 {
        self.node.swim.health()
    }

    /// This node's SWIM incarnation.
    pub fn incarnation(&self) -> u64 {
        self.node.swim.incarnation()
    }

    /// The node-level tried peers (SPEC.md §13.7).
    pub fn tried(&self) -> impl Iterator<Item = PeerId> + 'a {
        self.node.hyparview.tried().copied()
    }

    /// The peers of long good standing a restart would ask first (SPEC.md §13.7): tried
    /// peers and chosen neighbours active for at least `tried_after`.
    pub fn long_standing(&self) -> Vec<PeerId> {
        self.node.hyparview.long_standing()
    }

    /// The node-level neighbours this node chose itself (SPEC.md §13.7), in id order.
    pub fn chosen(&self) -> Vec<PeerId> {
        self.node.hyparview.chosen().copied().collect()
    }

    /// `topic`'s neighbours this node chose itself (empty if not subscribed).
    pub fn topic_chosen(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.hyparview.chosen().copied().collect())
            .unwrap_or_default()
    }

    /// `topic`'s passive view (empty if not subscribed).
    pub fn topic_passive(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.hyparview.passive().copied().collect())
            .unwrap_or_default()
    }

    /// HyParView's running totals.
    pub fn membership_counters(&self) -> &'a hyparview::Counters {
        self.node.hyparview.counters()
    }

    /// `peer`'s score now, term by term (SPEC.md §13.8); a peer never seen scores 0.
    pub fn score(&self, peer: &PeerId) -> crate::score::Terms {
        self.node
            .scores
            .terms(self.node.now, peer, self.node.standing(peer))
    }

    /// SWIM's running totals.
    pub fn failure_detector_counters(&self) -> &'a swim::Counters {
        self.node.swim.counters()
    }

    /// Connections still waiting for the peer's `Hello`.
    pub fn pending_handshakes(&self) -> usize {
        self.node.links.values().filter(|l| !l.established).count()
    }

    /// Dials requested and not yet answered.
    pub fn pending_dials(&self) -> usize {
        self.node.dialing.len()
    }

    /// The verified record held for `peer`, if any.
    pub fn known_record(&self, peer: &PeerId) -> Option<&'a PeerRecord> {
        self.node.records.get(peer)
    }

    /// How many verified records are held.
    pub fn known_records(&self) -> usize {
        self.node.records.len()
    }

    /// Running totals.
    pub fn counters(&self) -> &'a Counters {
        &self.node.counters
    }

    /// How many times this identity has started (1 for a fresh node).
    pub fn boot_count(&self) -> u64 {
        self.node.boot_count
    }

    /// The latest `now` the node has seen.
    pub fn now(&self) -> Timestamp {
        self.node.now
    }

    /// Subscribed topics, in id order.
    pub fn subscriptions(&self) -> impl Iterator<Item = TopicId> + 'a {
        self.node.topics.keys().copied()
    }

    /// Whether the node subscribes to `topic`.
    pub fn is_subscribed(&self, topic: &TopicId) -> bool {
        self.node.topics.contains_key(topic)
    }

    /// The root of the node-level component this node follows (island merging, SPEC.md §13.6).
    pub fn component_root(&self) -> Option<PeerId> {
        self.node.hyparview.component_root()
    }

    /// The active view of `topic`'s overlay (empty if not subscribed).
    pub fn topic_neighbors(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.hyparview.active().copied().collect())
            .unwrap_or_default()
    }

    /// The root of `topic`'s broadcast tree as this node sees it, with its distance in hops and
    /// this node's parent in the tree (`None` if not subscribed).
    pub fn topic_root(&self, topic: &TopicId) -> Option<(PeerId, u8, Option<PeerId>)> {
        self.node
            .topics
            .get(topic)
            .map(|t| (t.beacons.root(), t.beacons.dist(), t.beacons.parent()))
    }

    /// Plumtree's eager peers in `topic` (empty if not subscribed).
    pub fn eager_peers(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.plumtree.eager_peers().copied().collect())
            .unwrap_or_default()
    }

    /// Plumtree's lazy peers in `topic` (empty if not subscribed).
    pub fn lazy_peers(&self, topic: &TopicId) -> Vec<PeerId> {
        self.node
            .topics
            .get(topic)
            .map(|t| t.plumtree.lazy_peers().copied().collect())
            .unwrap_or_default()
    }

    /// A retained message of `topic` encoded as [`Event::Archived`] carries it (for
    /// [`Node::restore_message`]), with when it leaves the retention window: how a driver
    /// makes one message durable, such as the node's own right after publishing it.
    pub fn retained_record(
        &self,
        topic: &TopicId,
        id: &crate::id::MessageId,
    ) -> Option<(alloc::vec::Vec<u8>, Timestamp)> {
        let (payload, expires) = self.node.topics.get(topic)?.plumtree.retained_payload(id)?;
        Some((crate::wire::codec::to_vec(payload).ok()?, expires))
    }

    /// How many messages of `topic` are retained.
    pub fn retained(&self, topic: &TopicId) -> usize {
        self.node
            .topics
            .get(topic)
            .map_or(0, |t| t.plumtree.retained_ids().count())
    }

    /// Plumtree's running totals for `topic`.
    pub fn broadcast_counters(
        &self,
        topic: &TopicId,
    ) -> Option<&'a crate::broadcast::plumtree::Counters> {
        self.node.topics.get(topic).map(|t| t.plumtree.counters())
    }

    /// Presence counters of `group` (beacons accepted and refused by cause).
    pub fn presence_counters(
        &self,
        group: &TopicId,
    ) -> Option<crate::discovery::presence::Counters> {
        self.node.presence.get(group).map(|p| p.counters())
    }

    /// Friends-of-friends discovery counters (SPEC.md §18).
    pub fn discovery_counters(&self) -> &'a crate::discovery::foaf::Counters {
        self.node.foaf.counters()
    }

    /// Encrypted-message counters (SPEC.md §17.10).
    pub fn private_counters(&self) -> &'a PrivateCounters {
        &self.node.private.counters
    }

    /// Access-record store counters (records stored, replaced, refused by reason).
    pub fn access_counters(&self) -> crate::privacy::access::Counters {
        self.node.private.access.counters()
    }

    /// Fetch refusals this node made as a server, by reason.
    pub fn fetch_guard_counters(&self) -> &'a crate::privacy::fetch_guard::Counters {
        self.node.private.guard_counters()
    }

    /// The content (a signed message of kind `Sealed`) this node serves for an encrypted
    /// message it authored.
    pub fn authored(
        &self,
        id: &crate::id::MessageId,
    ) -> Option<&'a crate::broadcast::message::SignedMessage> {
        self.node.private.authored_content(id)
    }

    /// The latest access record held for `id`.
    pub fn access_record(
        &self,
        id: &crate::id::MessageId,
    ) -> Option<&'a crate::privacy::access::AccessRecord> {
        self.node.private.access.get(id)
    }

    /// Anti-entropy's running totals for `topic`.
    pub fn reconcile_counters(&self, topic: &TopicId) -> Option<&'a crate::antientropy::Counters> {
        self.node.topics.get(topic).map(|t| t.reconciler.counters())
    }

    /// The topic overlay's HyParView totals for `topic`.
    pub fn topic_membership_counters(&self, topic: &TopicId) -> Option<&'a hyparview::Counters> {
        self.node.topics.get(topic).map(|t| t.hyparview.counters())
    }
}
