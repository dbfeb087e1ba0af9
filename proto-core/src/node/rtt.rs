//! Round-trip times from SWIM's pings and acks, handed to the topics' Plumtrees, whose repair
//! waits follow them (SPEC.md §15.4). A sample is the time from a PING sent on a link to the
//! ACK with its sequence number from that peer; a PING sent again with the same number makes
//! the pending sample ambiguous, and it is dropped (Karn's rule). A simulator and a real
//! driver feed the same frames, so the same estimates.

use super::Node;
use crate::broadcast::plumtree;
use crate::id::PeerId;
use crate::machine::StateMachine;
use crate::membership::swim;
use crate::time::{RttEstimate, Timestamp};

impl Node {
    /// SWIM is sending `message` to `to`: a PING starts a sample.
    pub(super) fn ping_sent(&mut self, now: Timestamp, to: PeerId, message: &swim::Message) {
        let swim::Message::Ping { seq, .. } = message else {
            return;
        };
        if let Some(l) = self.links.get_mut(&to) {
            l.ping = match l.ping {
                Some((pending, _)) if pending == *seq => None,
                _ => Some((*seq, now)),
            };
        }
    }

    /// A SWIM message from `from`: the ACK of the pending PING ends a sample, and every topic
    /// that has `from` as a neighbour gets the new estimate.
    pub(super) fn ack_received(&mut self, now: Timestamp, from: PeerId, message: &swim::Message) {
        let swim::Message::Ack { seq, .. } = message else {
            return;
        };
        let Some(l) = self.links.get_mut(&from) else {
            return;
        };
        let Some((pending, sent)) = l.ping else {
            return;
        };
        if pending != *seq {
            return;
        }
        l.ping = None;
        let sample = now - sent;
        let rtt = match &mut l.rtt {
            Some(e) => {
                e.sample(sample);
                *e
            }
            None => *l.rtt.insert(RttEstimate::first(sample)),
        };
        // Only the topics whose overlay has the peer as a neighbour keep it: a node in many
        // topics must not touch every one of them per ack.
        let topics: alloc::vec::Vec<crate::id::TopicId> = self
            .topics
            .iter()
            .filter(|(_, t)| t.hyparview.is_active(&from))
            .map(|(id, _)| *id)
            .collect();
        for id in topics {
            if let Some(t) = self.topics.get_mut(&id) {
                let input = plumtree::Input::Rtt { peer: from, rtt };
                t.plumtree.handle(now, input, &mut self.rng);
            }
        }
    }
}
