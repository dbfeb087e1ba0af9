//! The node's side of friends-of-friends discovery (SPEC.md §18): queries travel the
//! node-level overlay (frame kind 5), answered from the node's own record and its cache of
//! verified records.

use super::records::Offer;
use super::{Event, Node, NodeError};
use crate::discovery::foaf::{self, DiscoveryMessage, FoafError, QueryId, Target};
use crate::frame::Frame;
use crate::id::PeerId;
use crate::identity::record::PeerRecord;
use crate::machine::StateMachine;
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
        let input = foaf::Input::Find {
            target,
            ttl,
            neighbours: &neighbours,
        };
        let result = match self.foaf.handle(now, input, &mut self.rng) {
            foaf::Reply::Started(started) => started.map_err(NodeError::Find),
            // `Find` is always answered with `Started`.
            _ => Err(NodeError::InvalidConfig("foaf")),
        };
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
                let input = foaf::Input::Query {
                    from,
                    query: q,
                    knowledge: &knowledge,
                    neighbours: &neighbours,
                };
                self.foaf.handle(now, input, &mut self.rng);
            }
            DiscoveryMessage::Answer(a) => {
                let crypto = self.config.crypto.clone();
                let records = &self.records;
                let counters = &mut self.counters;
                let mut verify = |r: &PeerRecord| {
                    if matches!(records.offer(r), Offer::Known) && r.expires_at > now {
                        return true;
                    }
                    counters.records_verified += 1;
                    r.verify(&*crypto, now).is_ok()
                };
                let input = foaf::Input::Answer {
                    from,
                    answer: a,
                    verify: &mut verify,
                };
                self.foaf.handle(now, input, &mut self.rng);
            }
        }
    }

    /// Carries out what FOAF asked for, in the order it asked. Returns whether anything was
    /// done.
    pub(super) fn drain_discovery(&mut self) -> bool {
        let mut progressed = false;
        while let Some(out) = self.foaf.poll() {
            progressed = true;
            match out {
                foaf::Output::Send { to, message } => {
                    self.send_frame(to, &Frame::Discovery(message))
                }
                foaf::Output::Event(foaf::Event::Found {
                    query,
                    target,
                    records,
                    ..
                }) => {
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
                foaf::Output::Event(foaf::Event::QueryDone {
                    query, found, sent, ..
                }) => self.push_event(Event::FindDone { query, found, sent }),
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
