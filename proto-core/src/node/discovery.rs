//! The node's side of friends-of-friends discovery (SPEC.md §18): queries travel the
//! node-level overlay (frame kind 5), answered from the node's own record and its cache of
//! verified records.

use super::records::Offer;
use super::{Event, Node, NodeError};
use crate::discovery::foaf::{self, DiscoveryMessage, FoafError, QueryId, Target};
use crate::frame::Frame;
use crate::id::PeerId;
use crate::identity::record::PeerRecord;
use crate::time::Timestamp;
use alloc::vec::Vec;

impl Node {
    /// Asks the overlay for `target` (a peer's record, or peers offering a capability), `ttl`
    /// hops deep (default 3, at most 4). Answers arrive as [`Event::Found`]; the query ends with
    /// [`Event::FindDone`]. The query always goes to the network: look in
    /// [`NodeView::known_record`](super::NodeView::known_record) first.
    pub fn find(
        &mut self,
        now: Timestamp,
        target: Target,
        ttl: Option<u8>,
    ) -> Result<QueryId, NodeError> {
        let now = self.advance(now);
        let neighbours: Vec<PeerId> = self.hyparview.active().copied().collect();
        let result = self
            .foaf
            .start_query(now, &mut self.rng, target, ttl, &neighbours)
            .map_err(NodeError::Find);
        self.drain_protocols(now);
        result
    }

    /// A kind-5 frame from an established link.
    pub(super) fn on_discovery_frame(&mut self, now: Timestamp, from: PeerId, m: DiscoveryMessage) {
        match m {
            DiscoveryMessage::Query(q) => {
                let neighbours: Vec<PeerId> = self.hyparview.active().copied().collect();
                let me = &self.record;
                let records = &self.records;
                let knowledge = |target: &Target, max: usize| -> Vec<PeerRecord> {
                    match target {
                        Target::Peer(p) if *p == me.peer_id => alloc::vec![me.clone()],
                        Target::Peer(p) => records.get(p).cloned().into_iter().take(max).collect(),
                        // No capability table yet: capability queries travel and are answered
                        // with nothing (SPEC.md §18.2).
                        _ => Vec::new(),
                    }
                };
                self.foaf
                    .handle_query(now, &mut self.rng, from, q, &knowledge, &neighbours);
            }
            DiscoveryMessage::Answer(a) => {
                let crypto = self.config.crypto.clone();
                let records = &self.records;
                let counters = &mut self.counters;
                self.foaf.handle_answer(now, from, a, |r| {
                    if matches!(records.offer(r), Offer::Known) && r.expires_at > now {
                        return true;
                    }
                    counters.records_verified += 1;
                    r.verify(&*crypto, now).is_ok()
                });
            }
        }
    }

    /// Carries out what FOAF asked for. Returns whether anything was done.
    pub(super) fn drain_discovery(&mut self) -> bool {
        let mut progressed = false;
        while let Some((to, m)) = self.foaf.poll_transmit() {
            progressed = true;
            self.send_frame(to, &Frame::Discovery(m));
        }
        while let Some(e) = self.foaf.poll_event() {
            progressed = true;
            match e {
                foaf::Event::Found {
                    query,
                    target,
                    records,
                    ..
                } => {
                    for r in &records {
                        // Verified by FOAF already; cached so the application can dial.
                        self.cache_verified_record(r.clone());
                    }
                    self.push_event(Event::Found {
                        query,
                        target,
                        records,
                    });
                }
                foaf::Event::QueryDone {
                    query, found, sent, ..
                } => self.push_event(Event::FindDone { query, found, sent }),
            }
        }
        progressed
    }
}

impl From<FoafError> for NodeError {
    fn from(e: FoafError) -> Self {
        NodeError::Find(e)
    }
}
