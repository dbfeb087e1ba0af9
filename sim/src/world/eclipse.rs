//! The contract's `eclipse` behaviour (version 4) and the two metrics that judge it.
//!
//! **Attackers.** Each node an `eclipse` event turns keeps up to [`MAX_SYBILS`] identities of
//! its own (sybils). A sybil is a simulated node appended to the world's nodes: a real
//! `hearsay_proto::Node` with a fresh identity derived from the seed, the attacker's number and
//! a counter, an address like every node's, wrapped by an [`Adversary`] that lets out only its
//! session and failure-detection frames. So honest nodes can connect to it, check its signed
//! record in the Hello, and ping it; everything it says about membership is what its attacker
//! injects. The attacker makes a new identity at most once per [`NEW_IDENTITY_EVERY`]: while it
//! has fewer than [`MAX_SYBILS`], or to replace one that a target refused (NEIGHBOR_REPLY not
//! accepted), evicted (DISCONNECT) or disconnected; the replaced identity stops for good
//! (crash semantics: silence, then its peers' idle timeouts).
//!
//! **What it sends.** To each of its targets that is still honest, in the node-level overlay
//! and in every topic the target subscribes to, one request every [`REQUEST_EVERY`] ticks
//! ([`TICK`](crate::byzantine::TICK) = 100 ms): JOIN, NEIGHBOR(High), SHUFFLE and FORWARD_JOIN
//! in turn, each from the next of its identities connected to that target. Each tick one more
//! of its identities dials each target (an identity dials a target once in its life). SHUFFLE
//! names the sender as origin, `ttl` 0 (the target keeps the sample) and the attacker's other
//! identities as the sample; FORWARD_JOIN names another of its identities, `ttl` 0 (the target
//! itself then asks that one to be a neighbour). Its identities accept every NEIGHBOR (and
//! PROBE) a target sends them and answer a SHUFFLE walk with a sample of their fellow
//! identities; they pass no walk on and forward nothing. Only attacker identities are ever
//! offered.
//!
//! **The rate.** An honest node shuffles once per shuffle interval (HyParView's default
//! `shuffle_interval`, 10 s, at the fastest) with one of its `active_view` (5) neighbours: 0.02
//! SHUFFLE per second to a given peer; it sends that peer a JOIN, NEIGHBOR or FORWARD_JOIN only
//! when joining or repairing. So an honest node sends one peer these requests at about 0.025 per
//! second in all, per overlay. An attacker sends each target 2.5 per second per overlay (one
//! every 400 ms, 0.625 per second of each kind): 100 times that, from each attacker (the
//! contract's `eclipse-sybil` gate has 16, then 15 more, each event's on one set of targets).
//! Sending each kind 100 times as often would cost that gate several minutes of wall time.
//!
//! **Metrics** (sampled every [`SAMPLE_EVERY`] from the first `byzantine` event of any
//! behaviour to the end, views read only through `inspect()`): `eclipsed_nodes` is the largest
//! number, over the samples, of live honest nodes whose node-level active view, or the active
//! view of any topic they subscribe to, holds no honest peer (an empty view counts);
//! `honest_view_fraction` takes the minimum and the 5th percentile, over every sample and live
//! honest node, of the honest share of its node-level active view (an empty view counts 0).

use super::network::LinkState;
use super::{Ev, NodeState, SimNode, World, address_of, register_keys};
use crate::byzantine::Adversary;
use crate::metrics::MinP5;
use chacha20::ChaCha8Rng;
use hearsay_proto::broadcast::topic::TopicMessage;
use hearsay_proto::frame::Frame;
use hearsay_proto::membership::hyparview::{MAX_SHUFFLE_NODES, Message, PeerInfo, Priority};
use hearsay_proto::node::Transmit;
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{Identity, IdentitySeeds, Node, TimeDelta, Timestamp, TopicId};
use rand_core::SeedableRng;
use std::collections::BTreeSet;

/// Most identities an eclipse attacker keeps at once.
pub const MAX_SYBILS: usize = 20;
/// An attacker makes at most one new identity per this much time.
pub const NEW_IDENTITY_EVERY: TimeDelta = TimeDelta::from_secs(1);
/// How often `eclipsed_nodes` and `honest_view_fraction` are sampled.
pub const SAMPLE_EVERY: TimeDelta = TimeDelta::from_secs(5);
/// How long a sybil's node keeps a connection no protocol of its own uses: for good (the
/// attacker, not its node, decides what the connection is for).
const SYBIL_LINK_KEPT: TimeDelta = TimeDelta::from_secs(30 * 86_400);

/// An attacker sends each target one request per overlay every this many ticks (see the
/// module's notes on the rate).
const REQUEST_EVERY: usize = 4;

/// The four requests an attacker sends, in the order it sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    Neighbor,
    Shuffle,
    ForwardJoin,
}

const KINDS: [Kind; 4] = [Kind::Join, Kind::Neighbor, Kind::Shuffle, Kind::ForwardJoin];

/// One `eclipse` attacker.
#[derive(Debug, Clone)]
pub(super) struct Attacker {
    /// Its targets: the honest nodes its event chose, in id order.
    targets: Vec<usize>,
    /// Its live identities (node numbers), oldest first.
    sybils: Vec<usize>,
    /// Identities made so far (the next one's counter).
    made: u64,
    /// When it last made one.
    last_made: Option<Timestamp>,
    /// Its ticks so far (which identity sends, and which request, to each target next).
    tick: usize,
    /// The (identity, target) pairs it has dialled.
    dialed: BTreeSet<(usize, usize)>,
}

/// What the eclipse metrics have sampled.
#[derive(Debug, Default)]
pub(super) struct Sampling {
    /// Whether sampling has started (at the first `byzantine` event).
    started: bool,
    /// The largest number of eclipsed honest nodes in one sample.
    eclipsed_max: u64,
    /// The honest share of each honest node's node-level active view, every sample.
    fractions: Vec<f64>,
}

impl World {
    /// `eclipse` attackers `chosen` start; their targets are `fraction` of the honest (live)
    /// nodes, drawn once for the event with the world RNG.
    pub(super) fn start_eclipse(&mut self, chosen: &[usize], fraction: f64) {
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_live(i)).collect();
        let targets = self.pick_fraction(honest, fraction);
        for &a in chosen {
            self.attackers.insert(
                a,
                Attacker {
                    targets: targets.clone(),
                    sybils: Vec::new(),
                    made: 0,
                    last_made: None,
                    tick: 0,
                    dialed: BTreeSet::new(),
                },
            );
        }
    }

    /// Starts the eclipse metrics' samples (once, at the first `byzantine` event).
    pub(super) fn start_eclipse_sampling(&mut self, now: Timestamp) {
        if !self.eclipse.started {
            self.eclipse.started = true;
            self.scheduler.schedule(now, Ev::SampleEclipse);
        }
    }

    /// The targets of `eclipse` attacker `a` (empty if `a` is not one).
    pub fn eclipse_targets(&self, a: usize) -> &[usize] {
        self.attackers.get(&a).map_or(&[], |x| &x.targets)
    }

    /// The live identities of `eclipse` attacker `a`, oldest first (empty if `a` is not one).
    pub fn sybils_of(&self, a: usize) -> &[usize] {
        self.attackers.get(&a).map_or(&[], |x| &x.sybils)
    }

    /// Identities `eclipse` attacker `a` has made so far, retired ones included.
    pub fn sybils_made(&self, a: usize) -> u64 {
        self.attackers.get(&a).map_or(0, |x| x.made)
    }

    /// Attacker `a`'s turn: it may make (or replace) an identity, then sends its requests.
    pub(super) fn eclipse_tick(&mut self, now: Timestamp, a: usize) {
        self.replenish(now, a);
        let Some(attacker) = self.attackers.get(&a) else {
            return;
        };
        let sybils = attacker.sybils.clone();
        if sybils.is_empty() {
            return;
        }
        let targets = attacker.targets.clone();
        let tick = attacker.tick;
        // Each (target, overlay) pair gets one request every REQUEST_EVERY ticks (pairs take
        // their turns on different ticks): the four kinds in turn, each from the next identity
        // connected to the target (over the cycles every identity sends every kind).
        let mut pair = 0usize;
        let mut dials = Vec::new();
        for t in targets {
            if !self.is_honest(t) {
                continue;
            }
            dials.push(t);
            let topics: Vec<TopicId> = match self.nodes[t].node.as_ref() {
                Some(n) => n.inspect().subscriptions().collect(),
                None => continue,
            };
            for overlay in std::iter::once(None).chain(topics.into_iter().map(Some)) {
                let slot = tick.wrapping_add(pair);
                pair += 1;
                if !slot.is_multiple_of(REQUEST_EVERY) {
                    continue;
                }
                let n = slot / REQUEST_EVERY;
                let kind = KINDS[n % KINDS.len()];
                let first = n.wrapping_add(n / sybils.len()).wrapping_add(pair);
                let sender = (0..sybils.len())
                    .map(|k| sybils[first.wrapping_add(k) % sybils.len()])
                    .find(|&s| self.link_between(s, t) == LinkState::Open);
                if let Some(s) = sender {
                    let message = self.request(kind, s, &sybils, n);
                    self.sybil_send(now, s, t, overlay, message);
                }
            }
        }
        // One more of its identities dials each target per tick; an identity dials a target
        // once in its life (refused or dropped, it is replaced rather than dialling again).
        for t in dials {
            let fresh = self.attackers.get(&a).and_then(|x| {
                x.sybils
                    .iter()
                    .copied()
                    .find(|&s| !x.dialed.contains(&(s, t)))
            });
            if let Some(s) = fresh {
                if let Some(x) = self.attackers.get_mut(&a) {
                    x.dialed.insert((s, t));
                }
                if self.link_between(s, t) == LinkState::None {
                    let dial = Transmit::Connect {
                        peer: self.nodes[t].peer,
                        addresses: vec![address_of(t, self.nodes[t].subnet)],
                    };
                    self.transmit(now, s, dial, true);
                }
            }
        }
        if let Some(attacker) = self.attackers.get_mut(&a) {
            attacker.tick = tick.wrapping_add(1);
        }
    }

    /// One request of `kind` from identity `s`; `turn` picks which fellow identity a
    /// FORWARD_JOIN names.
    fn request(&self, kind: Kind, s: usize, sybils: &[usize], turn: usize) -> Message {
        match kind {
            Kind::Join => Message::Join,
            Kind::Neighbor => Message::Neighbor {
                priority: Priority::High,
            },
            Kind::Shuffle => Message::Shuffle {
                origin: self.peer_info(s),
                ttl: 0,
                nodes: self.fellows(s, sybils),
            },
            Kind::ForwardJoin => {
                let others: Vec<usize> = sybils.iter().copied().filter(|&x| x != s).collect();
                let named = if others.is_empty() {
                    s
                } else {
                    others[turn % others.len()]
                };
                Message::ForwardJoin {
                    node: self.peer_info(named),
                    ttl: 0,
                }
            }
        }
    }

    /// What a node needs to dial identity `s`.
    fn peer_info(&self, s: usize) -> PeerInfo {
        PeerInfo {
            peer: self.nodes[s].peer,
            addresses: BoundedVec::new(vec![address_of(s, self.nodes[s].subnet)])
                .unwrap_or_default(),
        }
    }

    /// A sample naming `s`'s fellow identities (never an honest node).
    fn fellows(&self, s: usize, sybils: &[usize]) -> BoundedVec<PeerInfo, MAX_SHUFFLE_NODES> {
        let sample: Vec<PeerInfo> = sybils
            .iter()
            .copied()
            .filter(|&x| x != s)
            .take(MAX_SHUFFLE_NODES)
            .map(|x| self.peer_info(x))
            .collect();
        BoundedVec::new(sample).unwrap_or_default()
    }

    /// Puts `message` on the wire from identity `s` to `to`, in the node-level overlay
    /// (`overlay` = `None`) or in that topic's.
    fn sybil_send(
        &mut self,
        now: Timestamp,
        s: usize,
        to: usize,
        overlay: Option<TopicId>,
        message: Message,
    ) {
        let frame = match overlay {
            None => Frame::Membership(message),
            Some(topic) => Frame::Topic(TopicMessage::Membership { topic, message }),
        };
        if let Ok(frame) = frame.encode() {
            let to = self.nodes[to].peer;
            self.transmit(now, s, Transmit::Send { to, frame }, true);
        }
    }

    /// A frame reached identity `s` from `from`. Session and failure-detection frames go to its
    /// node (returns `false`); the attacker handles the rest (returns `true`): it accepts every
    /// NEIGHBOR and PROBE, answers a SHUFFLE walk with its fellow identities, and notes a
    /// refusal or an eviction so that the identity is replaced.
    pub(super) fn sybil_heard(
        &mut self,
        now: Timestamp,
        s: usize,
        from: usize,
        frame: &bytes::Bytes,
    ) -> bool {
        use hearsay_proto::frame::FrameKind;
        let kind = crate::byzantine::frame_kind(frame);
        if kind == Some(FrameKind::Session.number())
            || kind == Some(FrameKind::FailureDetection.number())
        {
            return false;
        }
        let (overlay, message) = match Frame::decode_shared(frame) {
            Ok(Frame::Membership(m)) => (None, m),
            Ok(Frame::Topic(TopicMessage::Membership { topic, message })) => (Some(topic), message),
            _ => return true, // swallowed: a sybil forwards nothing
        };
        let Some(a) = self.sybil_controller(s) else {
            return true;
        };
        match message {
            Message::Neighbor { .. } | Message::Probe { .. } => {
                let reply = Message::NeighborReply { accepted: true };
                self.sybil_send(now, s, from, overlay, reply);
            }
            Message::Shuffle { origin, .. } => {
                let sybils = self.sybils_of(a).to_vec();
                let nodes = self.fellows(s, &sybils);
                let reply = if origin.peer == self.nodes[from].peer {
                    Message::ShuffleReply { nodes }
                } else {
                    Message::ShuffleBack {
                        origin: origin.peer,
                        nodes,
                    }
                };
                self.sybil_send(now, s, from, overlay, reply);
            }
            Message::NeighborReply { accepted: false } | Message::Disconnect => {
                if let Some(adv) = self.nodes[s].adversary.as_mut() {
                    adv.flagged = true;
                }
            }
            _ => {}
        }
        true
    }

    /// Attacker `a` makes an identity if it may (one per [`NEW_IDENTITY_EVERY`]): a new one
    /// while it has fewer than [`MAX_SYBILS`], otherwise one replacing its oldest refused or
    /// evicted identity, which stops.
    fn replenish(&mut self, now: Timestamp, a: usize) {
        let Some(attacker) = self.attackers.get(&a) else {
            return;
        };
        if attacker
            .last_made
            .is_some_and(|t| now < t + NEW_IDENTITY_EVERY)
        {
            return;
        }
        if attacker.sybils.len() >= MAX_SYBILS {
            let flagged = attacker.sybils.iter().position(|&s| {
                self.nodes[s]
                    .adversary
                    .as_ref()
                    .is_some_and(|adv| adv.flagged)
            });
            let Some(pos) = flagged else {
                return;
            };
            let s = attacker.sybils[pos];
            if let Some(attacker) = self.attackers.get_mut(&a) {
                attacker.sybils.remove(pos);
                attacker.dialed.retain(|&(x, _)| x != s);
            }
            self.retire(now, s);
        }
        if let Some(s) = self.make_sybil(now, a)
            && let Some(attacker) = self.attackers.get_mut(&a)
        {
            attacker.sybils.push(s);
            attacker.made += 1;
            attacker.last_made = Some(now);
        }
    }

    /// Identity `s` stops for good, as a crash: its peers hear silence.
    fn retire(&mut self, now: Timestamp, s: usize) {
        let n = &mut self.nodes[s];
        n.node = None;
        n.state = NodeState::Crashed;
        n.armed = None;
        self.refresh_health(now, Some(s));
    }

    /// A new identity for attacker `a`: a node appended to the world, in `a`'s address group.
    fn make_sybil(&mut self, now: Timestamp, a: usize) -> Option<usize> {
        let made = self.attackers.get(&a)?.made;
        let derive = |purpose: u64| {
            let mut m = Vec::with_capacity(32);
            for x in [self.seed, a as u64, made, purpose] {
                m.extend_from_slice(&x.to_le_bytes());
            }
            blake3::derive_key("hearsay-sim sybil seed v1", &m)
        };
        let (identity_seed, rng_seed) = (derive(0), derive(1));
        let seeds = IdentitySeeds::generate(&mut ChaCha8Rng::from_seed(identity_seed));
        let identity = Identity::from_seeds(&*self.config.crypto, seeds.clone());
        let peer = identity.peer_id();
        if self.index.contains_key(&peer) {
            return None; // cannot happen short of a hash collision
        }
        let i = self.nodes.len();
        let mut config = self.config.clone();
        config.addresses = vec![address_of(i, self.nodes[a].subnet)];
        config.unused_link_timeout = SYBIL_LINK_KEPT;
        config.max_connections = config.max_connections.max(4096);
        config.max_known_records = config.max_known_records.max(4096);
        // Its node hears no membership frame (the attacker answers those), but should its own
        // HyParView ever act, it must neither evict anyone (a full view closes connections) nor
        // probe for other islands.
        config.hyparview.active_view = config.hyparview.active_view.max(4096);
        config.hyparview.merge = None;
        let node = match Node::new(config, identity, rng_seed, now) {
            Ok(node) => node,
            Err(e) => {
                self.warn_once(format!(
                    "eclipse: attacker {a} cannot make an identity: {e}"
                ));
                return None;
            }
        };
        register_keys(&self.interner, &node);
        self.index.insert(peer, i);
        let subnet = self.nodes[a].subnet;
        self.nodes.push(SimNode {
            node: Some(node),
            seeds,
            peer,
            state: NodeState::Running,
            joined: false,
            contacts: Vec::new(),
            persisted: None,
            adversary: Some(Adversary::sybil(a)),
            armed: None,
            missed_disconnects: Vec::new(),
            boots: 1,
            frames_sent: 0,
            bytes_sent: 0,
            subscriptions: Vec::new(),
            began_joining: false,
            subnet,
        });
        self.drain(i);
        Some(i)
    }

    /// One sample of the honest nodes' views (every [`SAMPLE_EVERY`] until the end).
    pub(super) fn sample_eclipse(&mut self, now: Timestamp) {
        let honest_peer =
            |w: &Self, p: &hearsay_proto::PeerId| w.index.get(p).is_some_and(|&j| w.is_honest(j));
        let mut eclipsed = 0u64;
        for i in 0..self.nodes.len() {
            if !self.is_live(i) {
                continue;
            }
            let Some(node) = self.nodes[i].node.as_ref() else {
                continue;
            };
            let view = node.inspect();
            let (mut size, mut honest) = (0usize, 0usize);
            for p in view.neighbors() {
                size += 1;
                honest += usize::from(honest_peer(self, &p));
            }
            let cut_off = honest == 0
                || view.subscriptions().any(|topic| {
                    !view
                        .topic_neighbors(&topic)
                        .iter()
                        .any(|p| honest_peer(self, p))
                });
            self.eclipse.fractions.push(if size == 0 {
                0.0
            } else {
                honest as f64 / size as f64
            });
            eclipsed += u64::from(cut_off);
        }
        self.eclipse.eclipsed_max = self.eclipse.eclipsed_max.max(eclipsed);
        if now + SAMPLE_EVERY <= self.end {
            self.scheduler
                .schedule(now + SAMPLE_EVERY, Ev::SampleEclipse);
        }
    }

    /// `eclipsed_nodes` and `honest_view_fraction`: null without a `byzantine` event.
    pub(super) fn eclipse_metrics(&self) -> (Option<u64>, Option<MinP5>) {
        if !self.eclipse.started {
            return (None, None);
        }
        (
            Some(self.eclipse.eclipsed_max),
            MinP5::of(&self.eclipse.fractions),
        )
    }
}
