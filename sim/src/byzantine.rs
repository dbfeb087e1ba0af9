//! Byzantine behaviours as plug-ins. They wrap an honest node's *driver* side — they filter and
//! add to what goes on the wire — and never run inside an honest node's code. The node they wrap
//! keeps running so the adversary stays in the overlay.

use crate::scenario::Behaviour;
use bytes::Bytes;
use hearsay_proto::node::Transmit;
use hearsay_proto::swim::{Gossip, Message as SwimMessage, Update};
use hearsay_proto::wire::{BoundedVec, Frame, Hello, PROTOCOL_VERSION, SessionMessage};
use hearsay_proto::{Node, PeerId, PeerRecord, TimeDelta, Timestamp};
use rand_core::Rng;
use std::collections::VecDeque;

/// How often an adversary acts on its own.
pub const TICK: TimeDelta = TimeDelta::from_millis(100);
/// Frames a replaying adversary remembers.
const REPLAY_MEMORY: usize = 512;
/// Honest protocols send a frame now and then; a flooder sends this many times more.
const FLOOD_FACTOR: usize = 100;

/// The wire kind of a frame (`[kind, body]`), read without decoding the body.
pub fn frame_kind(frame: &[u8]) -> Option<u64> {
    match frame {
        [0x82, k @ 0..=0x17, ..] => Some(u64::from(*k)),
        [0x82, 0x18, k, ..] => Some(u64::from(*k)),
        _ => None,
    }
}

/// First wire kind that carries application payloads (broadcast); lower kinds keep the
/// adversary connected (session, membership, failure detection).
const FIRST_PAYLOAD_KIND: u64 = 3;

/// One adversary's state.
#[derive(Debug)]
pub struct Adversary {
    behaviour: Behaviour,
    /// Frames received (for replay) and sent (for flooding), newest last.
    heard: VecDeque<Bytes>,
    sent: VecDeque<Bytes>,
    /// Frames emitted by the plug-in itself (not by the wrapped node).
    pub injected: u64,
}

impl Adversary {
    /// A new adversary of `behaviour`.
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            heard: VecDeque::new(),
            sent: VecDeque::new(),
            injected: 0,
        }
    }

    /// The behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// Filters one output of the wrapped node: `None` suppresses it.
    pub fn outgoing(&mut self, t: Transmit) -> Option<Transmit> {
        if let Transmit::Send { frame, .. } = &t {
            remember(&mut self.sent, frame.clone());
            if self.behaviour == Behaviour::Drop
                && frame_kind(frame).is_some_and(|k| k >= FIRST_PAYLOAD_KIND)
            {
                return None;
            }
        }
        Some(t)
    }

    /// Sees a frame the wrapped node received.
    pub fn incoming(&mut self, frame: &Bytes) {
        if matches!(self.behaviour, Behaviour::Replay | Behaviour::Forge) {
            remember(&mut self.heard, frame.clone());
        }
    }

    /// Acts on its own every [`TICK`]: returns frames to put on the wire to the wrapped node's
    /// neighbours. It reads the wrapped node only through `inspect()`, like any observer.
    pub fn tick(&mut self, _now: Timestamp, node: &Node, rng: &mut impl Rng) -> Vec<Transmit> {
        let mut out = Vec::new();
        let view = node.inspect();
        let neighbours: Vec<PeerId> = view.neighbors().collect();
        if neighbours.is_empty() {
            return out;
        }
        match self.behaviour {
            Behaviour::Drop => {}
            Behaviour::Forge => {
                // Impersonation: a neighbour's own record presented as ours, and our record
                // with a signature we did not make.
                let to = neighbours[below(rng, neighbours.len())];
                let victim = neighbours[below(rng, neighbours.len())];
                if let Some(theirs) = view.known_record(&victim) {
                    out.extend(hello(theirs.clone()).map(|frame| Transmit::Send { to, frame }));
                }
                // Death claims: "your neighbour is dead", about an honest, reachable peer, with an
                // incarnation it never had; sent to our neighbours and to the victim itself.
                let claim = |update: Update| Gossip { update, hops: 2 };
                let lie = Frame::FailureDetection(SwimMessage::Ping {
                    seq: rng.next_u64(),
                    want_view: false,
                    updates: BoundedVec::new(vec![
                        claim(Update::Dead {
                            peer: victim,
                            incarnation: u64::MAX / 2,
                        }),
                        claim(Update::Suspect {
                            peer: victim,
                            incarnation: u64::MAX / 2,
                        }),
                    ])
                    .unwrap_or_default(),
                })
                .encode();
                if let Ok(lie) = lie {
                    for n in &neighbours {
                        out.push(Transmit::Send {
                            to: *n,
                            frame: lie.clone(),
                        });
                    }
                }
                let mut mine = view.record().clone();
                let mut sig = mine.signature.to_vec();
                let i = below(rng, sig.len());
                sig[i] ^= 1;
                if let Ok(sig) = hearsay_proto::crypto::SignatureBytes::new(sig) {
                    mine.signature = sig;
                    out.extend(hello(mine).map(|frame| Transmit::Send { to, frame }));
                }
                // Take a real frame it heard or sent and corrupt it: a flipped bit in a record,
                // signature or payload, or its own identity swapped for another's.
                // Half the time another peer's frame (a Hello carrying someone else's record is
                // an impersonation attempt), otherwise one of its own.
                let pool = if !self.heard.is_empty() && rng.next_u64().is_multiple_of(2) {
                    &self.heard
                } else {
                    &self.sent
                };
                if !pool.is_empty() {
                    let mut forged = pool[below(rng, pool.len())].to_vec();
                    if forged.len() > 4 {
                        let i = 4 + below(rng, forged.len() - 4);
                        forged[i] ^= 1 << (rng.next_u64() % 8);
                    }
                    let to = neighbours[below(rng, neighbours.len())];
                    out.push(Transmit::Send {
                        to,
                        frame: Bytes::from(forged),
                    });
                }
            }
            Behaviour::Replay => {
                if self.heard.is_empty() {
                    remember(
                        &mut self.heard,
                        hello(view.record().clone()).unwrap_or_default(),
                    );
                }
                if !self.heard.is_empty() {
                    let old = self.heard[below(rng, self.heard.len())].clone();
                    let to = neighbours[below(rng, neighbours.len())];
                    out.push(Transmit::Send { to, frame: old });
                }
            }
            Behaviour::Flood => {
                // Its own valid Hello when it has nothing else to repeat.
                let last = self
                    .sent
                    .back()
                    .cloned()
                    .or_else(|| hello(view.record().clone()));
                if let Some(last) = last {
                    for _ in 0..FLOOD_FACTOR / 10 {
                        let to = neighbours[below(rng, neighbours.len())];
                        out.push(Transmit::Send {
                            to,
                            frame: last.clone(),
                        });
                    }
                }
            }
        }
        self.injected += out.len() as u64;
        out
    }
}

fn hello(record: PeerRecord) -> Option<Bytes> {
    Frame::Session(SessionMessage::Hello(Hello {
        version: PROTOCOL_VERSION,
        record,
    }))
    .encode()
    .ok()
}

/// A uniform index below `n` (`n` > 0).
pub fn below(rng: &mut impl Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

fn remember(q: &mut VecDeque<Bytes>, frame: Bytes) {
    if q.len() >= REPLAY_MEMORY {
        q.pop_front();
    }
    q.push_back(frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kind_without_decoding() {
        assert_eq!(frame_kind(&[0x82, 0x00, 0x82]), Some(0));
        assert_eq!(frame_kind(&[0x82, 0x03]), Some(3));
        assert_eq!(frame_kind(&[0x82, 0x18, 0x63]), Some(0x63));
        assert_eq!(frame_kind(&[0x01]), None);
    }

    #[test]
    fn drop_suppresses_payload_kinds_only() {
        let mut a = Adversary::new(Behaviour::Drop);
        let to = PeerId::from_bytes([1; 32]);
        let session = Transmit::Send {
            to,
            frame: Bytes::from_static(&[0x82, 0x00, 0x80]),
        };
        let payload = Transmit::Send {
            to,
            frame: Bytes::from_static(&[0x82, 0x03, 0x80]),
        };
        assert!(a.outgoing(session).is_some());
        assert!(a.outgoing(payload).is_none());
    }
}
