//! Round-trip times from SWIM's pings and acks, handed to the topics' Plumtrees, whose repair
//! waits follow them (SPEC.md §15.4). A sample is the time from a PING sent on a link to the
//! ACK with its sequence number from that peer; a PING sent again with the same number makes
//! the pending sample ambiguous, and it is dropped (Karn's rule). A PING also carries its
//! sender's latest sample, so the end that does not probe (paired probing) gets the same ones.
//! A simulator and a real driver feed the same frames, so the same estimates.

use super::Node;
use crate::broadcast::plumtree;
use crate::id::PeerId;
use crate::machine::StateMachine;
use crate::membership::swim;
use crate::time::{RttEstimate, TimeDelta, Timestamp};

impl Node {
    /// SWIM is sending `message` to `to`: a PING starts a sample, and carries this end's
    /// latest sample not yet reported (paired probing leaves the other end without PINGs of
    /// its own, SPEC.md §14.1).
    pub(super) fn ping_sent(&mut self, now: Timestamp, to: PeerId, message: &mut swim::Message) {
        let swim::Message::Ping { seq, rtt_us, .. } = message else {
            return;
        };
        if let Some(l) = self.links.get_mut(&to) {
            l.ping = match l.ping {
                Some((pending, _)) if pending == *seq => None,
                _ => Some((*seq, now)),
            };
            *rtt_us = l.rtt_report.take();
        }
    }

    /// A SWIM message from `from`: the ACK of the pending PING ends a sample; a PING may carry
    /// the peer's own latest sample of the same round trip. Both feed the link's estimate.
    pub(super) fn rtt_from_swim(&mut self, now: Timestamp, from: PeerId, message: &swim::Message) {
        let sample = match message {
            swim::Message::Ack { seq, .. } => {
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
                l.rtt_report = Some(u32::try_from(sample.as_micros()).unwrap_or(u32::MAX));
                sample
            }
            swim::Message::Ping {
                rtt_us: Some(us), ..
            } => TimeDelta::from_micros(u64::from(*us)),
            _ => return,
        };
        self.rtt_sample(now, from, sample);
    }

    /// A round-trip sample of the link to `from`. Every topic that has `from` as a neighbour
    /// gets the new estimate when its timeout moved by more than an eighth since the topics
    /// last got one (a steady link costs no topic work per sample); a topic that gains `from`
    /// as a neighbour gets the latest estimate then.
    fn rtt_sample(&mut self, now: Timestamp, from: PeerId, sample: TimeDelta) {
        let Some(l) = self.links.get_mut(&from) else {
            return;
        };
        let rtt = match &mut l.rtt {
            Some(e) => {
                e.sample(sample);
                *e
            }
            None => *l.rtt.insert(RttEstimate::first(sample)),
        };
        let moved = l.rtt_shared.is_none_or(|shared| {
            let (was, now) = (shared.timeout().as_micros(), rtt.timeout().as_micros());
            was.abs_diff(now) > was / 8
        });
        if !moved {
            return;
        }
        l.rtt_shared = Some(rtt);
        // Only the topics whose overlay has the peer as a neighbour keep it (found through
        // the table's index of linked peers, not by asking every topic).
        for id in self.topics.linking(&from) {
            if let Some(t) = self
                .topics
                .get(&id)
                .is_some_and(|t| t.hyparview.is_active(&from))
                .then(|| self.topics.get_mut(&id))
                .flatten()
            {
                let input = plumtree::Input::Rtt { peer: from, rtt };
                t.plumtree.handle(now, input, &mut self.rng);
            }
        }
    }
}
