//! Byzantine behaviours as plug-ins. They wrap an honest node's *driver* side — they filter and
//! add to what goes on the wire — and never run inside an honest node's code. The node they wrap
//! keeps running (and subscribes to topics when asked) so the adversary stays in the overlays.
//!
//! Against broadcast: `drop` lets the topic overlays' membership frames through (so it sits in
//! them) but sends no Plumtree or reconciliation frame; `forge` sends payload frames made from
//! real ones it heard — payload bytes changed under the author's signature, a random signature,
//! a message signed with its own key that claims another author, or a new timestamp under the
//! old signature — to its neighbours in that topic; `replay` keeps payload frames it heard (the
//! first ones for the whole run, so they are replayed long after the retention window, and the
//! latest ones) and resends them, as received or re-wrapped as repairs, to its topic neighbours.
//!
//! Contract v4's `root` (the world's side, grinding and rejoining, is `world/root.rs`): the
//! plug-in wraps the node of the ground identity the attacker rejoined with, and
//! - **forwards no payload**: every topic BROADCAST carrying a Plumtree GOSSIP or REPAIR that
//!   its node sends is dropped (counted in [`Adversary::payload_dropped`]): pushes down the tree
//!   and answers to GRAFT (GOSSIP) and IWANT (REPAIR, also what reconciliation pushes) alike,
//!   so it **answers no IWANT or GRAFT**. Its IHAVE, GRAFT, IWANT and PRUNE go out as its node
//!   computed them: it announces what it has, so that honest nodes GRAFT or IWANT it and wait
//!   for an answer that never comes (the contract's "answers no IWANT/GRAFT" presumes requests,
//!   and requests follow announcements);
//! - **claims to be the best parent**: every topic BEACON its node sends that reports a root
//!   other than itself is rewritten to `dist = 0` (the fewest hops any neighbour can report, so
//!   honest neighbours take it as parent, SPEC.md §15.6), `root`, `seq`, `parent`,
//!   `interval_ms` and `ask` as its node computed them (counted in
//!   [`Adversary::beacons_rewritten`]); a beacon of its own root passes unchanged (it has the
//!   smallest id it could grind, so it is the best root already);
//! - keeps everything else honest (session, node-level membership, SWIM, topic membership and
//!   subscriptions, reconciliation digests), so that it stays in every overlay.

use crate::broadcast::payload_of;
use crate::scenario::Behaviour;
use bytes::Bytes;
use hearsay_proto::broadcast::message::{Payload as MessageBytes, SignedMessage};
use hearsay_proto::broadcast::plumtree::{Message as Plumtree, Payload};
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::crypto::{SIGNATURE_LEN, SignatureBytes};
use hearsay_proto::frame::{Frame, FrameKind, Hello, PROTOCOL_VERSION, SessionMessage};
use hearsay_proto::membership::swim::{Gossip, Message as SwimMessage, Update};
use hearsay_proto::node::Transmit;
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{Identity, Node, PeerId, PeerRecord, TimeDelta, Timestamp, TopicId};
use rand_core::Rng;
use std::collections::VecDeque;

/// How often an adversary acts on its own.
pub const TICK: TimeDelta = TimeDelta::from_millis(100);
/// Frames a replaying adversary remembers.
const REPLAY_MEMORY: usize = 512;
/// Honest protocols send a frame now and then; a flooder sends this many times more.
const FLOOD_FACTOR: usize = 100;
/// Payload frames kept from the start (for the whole run) and, separately, the latest ones.
const PAYLOAD_MEMORY: usize = 64;

/// The wire kind of a frame (`[kind, body]`), read without decoding the body.
pub fn frame_kind(frame: &[u8]) -> Option<u64> {
    match frame {
        [0x82, k @ 0..=0x17, ..] => Some(u64::from(*k)),
        [0x82, 0x18, k, ..] => Some(u64::from(*k)),
        _ => None,
    }
}

/// First wire kind that carries application payloads (topics; kind 3 also carries the topic
/// overlays' membership); lower kinds keep the adversary connected (session, membership,
/// failure detection).
const FIRST_PAYLOAD_KIND: u64 = 3;

/// A payload frame heard: its topic, its payload, and the frame as received.
#[derive(Debug, Clone)]
struct HeardPayload {
    topic: TopicId,
    payload: Payload,
    frame: Bytes,
}

/// One adversary's state.
#[derive(Debug)]
pub struct Adversary {
    behaviour: Behaviour,
    /// Frames received (for replay) and sent (for flooding), newest last.
    heard: VecDeque<Bytes>,
    sent: VecDeque<Bytes>,
    /// The first payload frames heard (kept for the whole run) and the latest ones.
    first_payloads: Vec<HeardPayload>,
    latest_payloads: VecDeque<HeardPayload>,
    /// The wrapped node's identity, to sign forgeries with (forge only).
    identity: Option<Identity>,
    /// Frames emitted by the plug-in itself (not by the wrapped node).
    pub injected: u64,
    /// Payload frames forged (forge) or replayed (replay) among them.
    pub payload_frames: u64,
    /// The highest incarnation seen of each peer, in any SWIM update it heard (liar).
    incarnations: std::collections::BTreeMap<PeerId, u64>,
    /// `eclipse`: set on an identity made by the attacker with this node number (a sybil).
    sybil_of: Option<usize>,
    /// A sybil a target refused (NEIGHBOR_REPLY not accepted), evicted (DISCONNECT) or
    /// disconnected: its attacker replaces it when it may make a new identity.
    pub flagged: bool,
    /// `root`: set on the ground identity attacker `.0` rejoined with, whose id is `.1`.
    identity_of: Option<(usize, PeerId)>,
    /// `root`: payload frames (GOSSIP or REPAIR) its node wanted to send and that were dropped.
    pub payload_dropped: u64,
    /// `root`: beacons of another root rewritten to claim zero hops.
    pub beacons_rewritten: u64,
}

impl Adversary {
    /// A new adversary of `behaviour`.
    pub fn new(behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            heard: VecDeque::new(),
            sent: VecDeque::new(),
            first_payloads: Vec::new(),
            latest_payloads: VecDeque::new(),
            identity: None,
            injected: 0,
            payload_frames: 0,
            incarnations: std::collections::BTreeMap::new(),
            sybil_of: None,
            flagged: false,
            identity_of: None,
            payload_dropped: 0,
            beacons_rewritten: 0,
        }
    }

    /// The plug-in of the identity `root` attacker `attacker` ground and rejoined with; `me` is
    /// its peer id (see the module's notes).
    pub fn root(attacker: usize, me: PeerId) -> Self {
        Self {
            identity_of: Some((attacker, me)),
            ..Self::new(Behaviour::Root)
        }
    }

    /// The attacker that made this identity: an `eclipse` sybil's, or the `root` attacker that
    /// rejoined with it.
    pub fn made_by(&self) -> Option<usize> {
        self.sybil_of.or(self.identity_of.map(|(a, _)| a))
    }

    /// The plug-in of an identity made by `eclipse` attacker `controller` (a sybil). Its node
    /// is only a session and failure-detection endpoint: it keeps connections up (Hello) and
    /// answers pings; membership is the attacker's business ([`Adversary::outgoing`]).
    pub fn sybil(controller: usize) -> Self {
        Self {
            sybil_of: Some(controller),
            ..Self::new(Behaviour::Eclipse)
        }
    }

    /// The attacker that made this identity, if it is a sybil.
    pub fn sybil_of(&self) -> Option<usize> {
        self.sybil_of
    }

    /// A new adversary that can sign with `identity` (the wrapped node's own keys).
    pub fn with_identity(behaviour: Behaviour, identity: Identity) -> Self {
        Self {
            identity: Some(identity),
            ..Self::new(behaviour)
        }
    }

    /// The behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// Filters one output of the wrapped node: `None` suppresses it.
    ///
    /// A sybil's node only keeps its connections (session frames) and answers the failure
    /// detector; it dials no one and sends no membership, topic or other frame of its own: what
    /// it offers is what its attacker injects (the attacker dials the targets itself).
    pub fn outgoing(&mut self, t: Transmit) -> Option<Transmit> {
        if self.sybil_of.is_some() {
            return match &t {
                Transmit::Connect { .. } => None,
                Transmit::Send { frame, .. }
                    if !matches!(
                        frame_kind(frame),
                        Some(k) if k == FrameKind::Session.number()
                            || k == FrameKind::FailureDetection.number()
                    ) =>
                {
                    None
                }
                _ => Some(t),
            };
        }
        if let Some((_, me)) = self.identity_of {
            return self.root_outgoing(me, t);
        }
        if let Transmit::Send { frame, .. } = &t {
            remember(&mut self.sent, frame.clone());
            if self.behaviour == Behaviour::Drop && !keeps_overlays(frame) {
                return None;
            }
        }
        Some(t)
    }

    /// `root`'s filter (see the module's notes): no payload out, zero hops claimed to any root
    /// but itself, everything else as its node computed it.
    fn root_outgoing(&mut self, me: PeerId, t: Transmit) -> Option<Transmit> {
        let Transmit::Send { to, frame } = &t else {
            return Some(t);
        };
        if frame_kind(frame) != Some(FrameKind::Topic.number()) {
            return Some(t);
        }
        match Frame::decode_shared(frame) {
            Ok(Frame::Topic(TopicMessage::Broadcast {
                message: Plumtree::Gossip(_) | Plumtree::Repair(_),
                ..
            })) => {
                self.payload_dropped += 1;
                None
            }
            Ok(Frame::Topic(TopicMessage::Beacon { topic, mut beacon }))
                if beacon.root != me && beacon.dist != 0 =>
            {
                beacon.dist = 0;
                match Frame::Topic(TopicMessage::Beacon { topic, beacon }).encode() {
                    Ok(frame) => {
                        self.beacons_rewritten += 1;
                        Some(Transmit::Send { to: *to, frame })
                    }
                    Err(_) => Some(t),
                }
            }
            _ => Some(t),
        }
    }

    /// Sees a frame the wrapped node received.
    pub fn incoming(&mut self, frame: &Bytes) {
        if self.behaviour == Behaviour::Liar {
            if let Ok(Frame::FailureDetection(m)) = Frame::decode(frame) {
                let updates = match m {
                    SwimMessage::Ping { updates, .. } | SwimMessage::Ack { updates, .. } => updates,
                    _ => BoundedVec::default(),
                };
                for g in updates.iter() {
                    let (peer, inc) = match &g.update {
                        Update::Alive {
                            peer, incarnation, ..
                        }
                        | Update::Suspect {
                            peer, incarnation, ..
                        }
                        | Update::Dead { peer, incarnation } => (*peer, *incarnation),
                        _ => continue,
                    };
                    let seen = self.incarnations.entry(peer).or_insert(0);
                    *seen = (*seen).max(inc);
                }
            }
            return;
        }
        if matches!(self.behaviour, Behaviour::Replay | Behaviour::Forge) {
            remember(&mut self.heard, frame.clone());
            if let Some((topic, payload)) = payload_of(frame) {
                let heard = HeardPayload {
                    topic,
                    payload,
                    frame: frame.clone(),
                };
                if self.first_payloads.len() < PAYLOAD_MEMORY {
                    self.first_payloads.push(heard);
                } else {
                    if self.latest_payloads.len() >= PAYLOAD_MEMORY {
                        self.latest_payloads.pop_front();
                    }
                    self.latest_payloads.push_back(heard);
                }
            }
        }
    }

    /// A random payload frame heard, if any.
    fn heard_payload(&self, rng: &mut impl Rng) -> Option<&HeardPayload> {
        let n = self.first_payloads.len() + self.latest_payloads.len();
        if n == 0 {
            return None;
        }
        let i = below(rng, n);
        self.first_payloads
            .get(i)
            .or_else(|| self.latest_payloads.get(i - self.first_payloads.len()))
    }

    /// A payload frame made from a real one, with something its author did not sign, for a
    /// random neighbour in that topic.
    fn forged_payload(&self, now: Timestamp, node: &Node, rng: &mut impl Rng) -> Option<Transmit> {
        let heard = self.heard_payload(rng)?;
        let to = pick(rng, &node.inspect().topic_neighbors(&heard.topic))?;
        let real = &heard.payload;
        let mut p = real.clone();
        match rng.next_u64() % 4 {
            0 => {
                // Other payload bytes under the author's signature (a new id).
                let mut bytes = p.message.payload.to_vec();
                match bytes.len() {
                    0 => bytes.push(1),
                    len => bytes[below(rng, len)] ^= 1 << (rng.next_u64() % 8),
                }
                p.message.payload = MessageBytes::new(Bytes::from(bytes)).ok()?;
            }
            1 => {
                // The real message with a random signature (the same id as the real one).
                let mut sig = vec![0u8; SIGNATURE_LEN];
                rng.fill_bytes(&mut sig);
                p.message.signature = SignatureBytes::new(sig).ok()?;
            }
            2 => {
                // Signed with our own key, claiming the real author; the author's key attached,
                // or ours.
                let me = self.identity.as_ref()?;
                let mut m = SignedMessage::publish(
                    me,
                    heard.topic,
                    rng.next_u64(),
                    now,
                    &real.message.payload,
                )
                .ok()?;
                m.author = real.message.author;
                p.message = m;
                if rng.next_u64().is_multiple_of(2) {
                    p.author_key = me.verifying_key().clone();
                }
            }
            _ => {
                // Re-dated to look fresh, under the old signature (the same id).
                p.message.timestamp = now;
            }
        }
        p.hops = 1;
        let message = if rng.next_u64().is_multiple_of(2) {
            Plumtree::Gossip(p)
        } else {
            Plumtree::Repair(p)
        };
        let frame = Frame::Topic(TopicMessage::Broadcast {
            topic: heard.topic,
            message,
        })
        .encode()
        .ok()?;
        Some(Transmit::Send { to, frame })
    }

    /// A payload frame heard earlier, as received or re-wrapped as a repair, for a random
    /// neighbour in that topic.
    fn replayed_payload(&self, node: &Node, rng: &mut impl Rng) -> Option<Transmit> {
        let heard = self.heard_payload(rng)?;
        let to = pick(rng, &node.inspect().topic_neighbors(&heard.topic))?;
        let frame = if rng.next_u64().is_multiple_of(2) {
            heard.frame.clone()
        } else {
            Frame::Topic(TopicMessage::Broadcast {
                topic: heard.topic,
                message: Plumtree::Repair(heard.payload.clone()),
            })
            .encode()
            .ok()?
        };
        Some(Transmit::Send { to, frame })
    }

    /// Acts on its own every [`TICK`]: returns frames to put on the wire to the wrapped node's
    /// neighbours. It reads the wrapped node only through `inspect()`, like any observer.
    pub fn tick(&mut self, now: Timestamp, node: &Node, rng: &mut impl Rng) -> Vec<Transmit> {
        let mut out = Vec::new();
        let view = node.inspect();
        let neighbours: Vec<PeerId> = view.neighbors().collect();
        if neighbours.is_empty() {
            return out;
        }
        match self.behaviour {
            // The world drives `eclipse` attackers and their identities (`world/eclipse.rs`).
            // The world drives `root` attackers' identities too (`world/root.rs`); their
            // plug-in only filters ([`Adversary::outgoing`]).
            Behaviour::Drop | Behaviour::Eclipse | Behaviour::Root => {}
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
                            by: None,
                        }),
                    ])
                    .unwrap_or_default(),
                    rtt_us: None,
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
                if let Some(t) = self.forged_payload(now, node, rng) {
                    self.payload_frames += 1;
                    out.push(t);
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
                if let Some(t) = self.replayed_payload(node, rng) {
                    self.payload_frames += 1;
                    out.push(t);
                }
            }
            Behaviour::Liar => {
                let others: Vec<PeerId> = view.connections().chain(view.passive()).collect();
                for to in view.connections() {
                    let about_it = (0..8u64).map(|k| self.claim(to, k, rng)).collect();
                    let about_others = (0..8u64)
                        .filter_map(|k| pick(rng, &others).map(|p| self.claim(p, k, rng)))
                        .collect();
                    for updates in [about_it, about_others] {
                        let lie = Frame::FailureDetection(SwimMessage::Ping {
                            seq: rng.next_u64(),
                            want_view: false,
                            updates: BoundedVec::new(updates).unwrap_or_default(),
                            rtt_us: None,
                        });
                        if let Ok(frame) = lie.encode() {
                            out.push(Transmit::Send { to, frame });
                        }
                    }
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

impl Adversary {
    /// A SUSPECT or DEAD about `peer` with the highest incarnation seen of it plus 1 to 8.
    fn claim(&self, peer: PeerId, k: u64, rng: &mut impl Rng) -> Gossip {
        // Unseen: a first boot's incarnation (`boot_count << 32`, SPEC.md §14.4).
        let seen = self.incarnations.get(&peer).copied().unwrap_or(1 << 32);
        let incarnation = seen + 1 + (k + rng.next_u64()) % 8;
        let update = if rng.next_u64().is_multiple_of(2) {
            Update::Suspect {
                peer,
                incarnation,
                by: None,
            }
        } else {
            Update::Dead { peer, incarnation }
        };
        Gossip { update, hops: 2 }
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

fn pick(rng: &mut impl Rng, peers: &[PeerId]) -> Option<PeerId> {
    (!peers.is_empty()).then(|| peers[below(rng, peers.len())])
}

/// Whether a `drop` adversary lets `frame` out: session, membership and failure detection, and
/// the topic frames that keep it in topic overlays (subscriptions, FIND, topic membership,
/// LEFT); never broadcast, reconciliation, or any later payload kind.
fn keeps_overlays(frame: &Bytes) -> bool {
    match frame_kind(frame) {
        Some(k) if k < FIRST_PAYLOAD_KIND => true,
        Some(FIRST_PAYLOAD_KIND) => matches!(
            Frame::decode_shared(frame),
            Ok(Frame::Topic(
                TopicMessage::Subscriptions { .. }
                    | TopicMessage::Find { .. }
                    | TopicMessage::Membership { .. }
                    | TopicMessage::Left { .. }
            ))
        ),
        _ => false,
    }
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
    fn a_sybil_node_keeps_only_its_session_and_failure_detection() {
        let mut a = Adversary::sybil(3);
        assert_eq!(a.sybil_of(), Some(3));
        assert_eq!(a.behaviour(), Behaviour::Eclipse);
        assert!(Adversary::new(Behaviour::Eclipse).sybil_of().is_none());
        let to = PeerId::from_bytes([2; 32]);
        let send = |frame: Frame| Transmit::Send {
            to,
            frame: frame.encode().unwrap(),
        };
        let hello_request = send(Frame::Session(SessionMessage::HelloRequest));
        let ping = send(Frame::FailureDetection(SwimMessage::Ping {
            seq: 1,
            want_view: false,
            updates: BoundedVec::default(),
            rtt_us: None,
        }));
        assert!(a.outgoing(hello_request).is_some());
        assert!(a.outgoing(ping).is_some());
        assert!(a.outgoing(Transmit::Disconnect { peer: to }).is_some());
        let membership =
            hearsay_proto::membership::hyparview::Message::NeighborReply { accepted: false };
        assert!(a.outgoing(send(Frame::Membership(membership))).is_none());
        let topic = TopicId::from_name("t");
        assert!(
            a.outgoing(send(Frame::Topic(TopicMessage::Left { topic })))
                .is_none()
        );
        let dial = Transmit::Connect {
            peer: to,
            addresses: Vec::new(),
        };
        assert!(a.outgoing(dial).is_none());
    }

    #[test]
    fn root_drops_payload_and_claims_zero_hops_to_another_root() {
        use hearsay_proto::broadcast::tree::RootBeacon;
        use hearsay_proto::crypto::InsecureTestProvider;
        use hearsay_proto::{IdentitySeeds, MessageId};
        let me = PeerId::from_bytes([0; 32]);
        let other_root = PeerId::from_bytes([1; 32]);
        let mut a = Adversary::root(7, me);
        assert_eq!(a.behaviour(), Behaviour::Root);
        assert_eq!(a.made_by(), Some(7));
        assert_eq!(
            a.sybil_of(),
            None,
            "not an eclipse sybil: its node does its own work"
        );
        let to = PeerId::from_bytes([2; 32]);
        let topic = TopicId::from_name("t");
        let send = |m: TopicMessage| Transmit::Send {
            to,
            frame: Frame::Topic(m).encode().unwrap(),
        };
        let broadcast = |message| send(TopicMessage::Broadcast { topic, message });
        // A real payload, signed by some author.
        let mut rng = rand_core::SeedableRng::from_seed([5; 32]);
        let rng: &mut chacha20::ChaCha8Rng = &mut rng;
        let author = Identity::from_seeds(&InsecureTestProvider, IdentitySeeds::generate(rng));
        let body = MessageBytes::new(Bytes::from_static(b"hello")).unwrap();
        let payload = Payload {
            message: SignedMessage::publish(&author, topic, 1, Timestamp::EPOCH, &body).unwrap(),
            author_key: author.verifying_key().clone(),
            hops: 1,
        };
        // No payload out: pushes and answers to GRAFT (GOSSIP) and IWANT (REPAIR).
        assert!(
            a.outgoing(broadcast(Plumtree::Gossip(payload.clone())))
                .is_none()
        );
        assert!(a.outgoing(broadcast(Plumtree::Repair(payload))).is_none());
        assert_eq!(a.payload_dropped, 2);
        // Announcements and requests go out as computed.
        let ids = BoundedVec::new(vec![MessageId::from_bytes([3; 32])]).unwrap();
        for m in [
            Plumtree::Graft(ids.clone()),
            Plumtree::IWant(ids),
            Plumtree::IHave(BoundedVec::default()),
            Plumtree::Prune,
        ] {
            let t = broadcast(m);
            assert_eq!(a.outgoing(t.clone()), Some(t));
        }
        // Another root's beacon: zero hops claimed, the rest as computed.
        let beacon = RootBeacon {
            root: other_root,
            seq: 9,
            dist: 3,
            parent: Some(to),
            interval_ms: 5_000,
            ask: true,
        };
        let out = a.outgoing(send(TopicMessage::Beacon { topic, beacon }));
        let Some(Transmit::Send { to: sent_to, frame }) = out else {
            panic!("{out:?}");
        };
        assert_eq!(sent_to, to);
        assert_eq!(
            Frame::decode(&frame).unwrap(),
            Frame::Topic(TopicMessage::Beacon {
                topic,
                beacon: RootBeacon { dist: 0, ..beacon }
            })
        );
        assert_eq!(a.beacons_rewritten, 1);
        // Its own root's beacon passes unchanged, and so does everything that keeps it in the
        // overlays.
        let own = send(TopicMessage::Beacon {
            topic,
            beacon: RootBeacon {
                root: me,
                dist: 0,
                parent: None,
                ..beacon
            },
        });
        assert_eq!(a.outgoing(own.clone()), Some(own));
        let left = send(TopicMessage::Left { topic });
        assert_eq!(a.outgoing(left.clone()), Some(left));
        let ping = Transmit::Send {
            to,
            frame: Frame::FailureDetection(SwimMessage::Ping {
                seq: 1,
                want_view: false,
                updates: BoundedVec::default(),
                rtt_us: None,
            })
            .encode()
            .unwrap(),
        };
        assert_eq!(a.outgoing(ping.clone()), Some(ping));
        let dial = Transmit::Connect {
            peer: to,
            addresses: Vec::new(),
        };
        assert!(a.outgoing(dial).is_some());
        assert_eq!((a.payload_dropped, a.beacons_rewritten), (2, 1));
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
        let topic = TopicId::from_name("t");
        let frame = |m: TopicMessage| Transmit::Send {
            to,
            frame: Frame::Topic(m).encode().unwrap(),
        };
        // It stays in topic overlays, but forwards nothing of the broadcast.
        assert!(a.outgoing(frame(TopicMessage::Left { topic })).is_some());
        let prune = TopicMessage::Broadcast {
            topic,
            message: Plumtree::Prune,
        };
        assert!(a.outgoing(frame(prune)).is_none());
        let reconcile = Transmit::Send {
            to,
            frame: Bytes::from_static(&[0x82, 0x04, 0x80]),
        };
        assert!(a.outgoing(reconcile).is_none());
    }
}
