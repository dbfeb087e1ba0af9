//! Each protocol state machine of the core driven on its own, through its public API, by a
//! script of (peer, message, time advance) steps: HyParView (`hyparview.rs`), SWIM (`swim.rs`),
//! Plumtree (`plumtree.rs`), the anti-entropy `Reconciler` (`antientropy.rs`) and FOAF
//! (`foaf.rs`). Messages are built from the input's fields, or decoded from raw frame bytes.
//! Insecure test provider throughout.
//!
//! Checked for every machine: nothing panics; right after `handle_timeout(now)`,
//! `poll_timeout()` is `None` or later than `now`; every view, table and queue stays within the
//! bound its `Config` (or module constant) sets. And per machine:
//! - HyParView: the active and passive views are disjoint and never hold the node itself, and
//!   the `NeighborUp` / `NeighborDown` outputs track the active view exactly;
//! - SWIM: local health stays within `max_health`, suspects are members, a `Dead` verdict names
//!   a member, refutations raise the incarnation, nothing is sent to the node itself;
//! - Plumtree: eager and lazy peers are disjoint neighbours, everything sent goes to a
//!   neighbour (or to whom `serve` was asked to send), a delivered message verifies, is of the
//!   topic and is delivered once;
//! - Reconciler: a sketch it sends is exactly the table of its ids and goes to a neighbour; an
//!   estimate it sends is exactly the estimator of its ids; answering a sketch of a known set
//!   pushes exactly the ids the other side lacks and asks for exactly those it lacks and has not
//!   seen (both cut at `max_transfer`), and `Done` counts them;
//! - FOAF: queries leave with a hop budget in range, to neighbours only; found records match
//!   their target, verify and are distinct; outcomes respect `fanout` and
//!   `max_records_per_answer`; an invalid configuration is refused by `Foaf::new`.
//!
//! Input: `[machine, config bytes..., rng seed]`, then records `[op, ...]` until the input
//! ends (at most 256); each machine's ops are listed on its `run_*` function. Past the end of
//! the input every read is zero. Raw-frame ops take `[len(2), bytes]`, decoded with
//! `Frame::decode`; a frame of another protocol is ignored.
#![no_main]

mod common;

use chacha20::ChaCha8Rng;
use common::{Input, T0, identity, record};
use hearsay_proto::antientropy::{self, Reconciler, max_sketch_cells};
use hearsay_proto::crypto::{CryptoProvider, InsecureTestProvider, SIGNATURE_LEN, SignatureBytes};
use hearsay_proto::discovery::foaf::{
    self, Answer, Capability, DiscoveryMessage, Foaf, Query, QueryId, QueryOutcome, Target,
};
use hearsay_proto::membership::hyparview::{self, HyParView, PeerInfo};
use hearsay_proto::antientropy::iblt::{Iblt, StrataEstimator};
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::broadcast::plumtree::{self, Plumtree, SignatureValidator};
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::membership::swim::{self, Gossip, Swim, Update};
use hearsay_proto::broadcast::topic::{ReconcileMessage, TopicMessage};
use hearsay_proto::wire::{BoundedBytes, BoundedVec};
use hearsay_proto::{
    Frame, Identity, MessageId, PeerId, PeerRecord, TimeDelta, Timestamp, TopicId,
};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

const P: &dyn CryptoProvider = &InsecureTestProvider;

/// Peers by number: 0 is the node itself, 1..PEERS-1 others.
const PEERS: u8 = 12;
const MAX_STEPS: usize = 256;

fn peer(b: u8) -> PeerId {
    PeerId::from_bytes([b % PEERS; 32])
}

/// A peer other than the node itself.
fn other(b: u8) -> PeerId {
    peer(1 + b % (PEERS - 1))
}

fn me() -> PeerId {
    peer(0)
}

/// The peers whose bit is set in `mask` (bit i: `other(i)`).
fn subset(mask: u16) -> Vec<PeerId> {
    (0..PEERS - 1)
        .filter(|i| mask & (1 << i) != 0)
        .map(other)
        .collect()
}

/// Authors of Plumtree messages, and subjects of FOAF records.
fn people() -> &'static [Identity] {
    static PEOPLE: OnceLock<Vec<Identity>> = OnceLock::new();
    PEOPLE.get_or_init(|| (1..=6).map(identity).collect())
}

/// The virtual clock.
struct Clock {
    now: Timestamp,
}

impl Clock {
    /// `[ms(2)]`: moves the clock forward by up to 65 s.
    fn advance(&mut self, input: &mut Input<'_>) {
        self.now += TimeDelta::from_millis(u64::from(input.u16()));
    }

    /// Moves the clock to `wake` (what `poll_timeout` said), but never back and at most an
    /// hour ahead; to one second ahead without a wake-up.
    fn jump(&mut self, wake: Option<Timestamp>) {
        let target = wake.unwrap_or(self.now + TimeDelta::from_secs(1));
        self.now = target
            .max(self.now)
            .min(self.now + TimeDelta::from_secs(3600));
    }

    /// `[jump?, ms(2)]`: a jump to the machine's wake-up, or an advance.
    fn step(&mut self, input: &mut Input<'_>, wake: Option<Timestamp>) {
        if input.bool() {
            self.jump(wake);
        } else {
            self.advance(input);
        }
    }
}

fn after_timeout(now: Timestamp, wake: Option<Timestamp>, what: &str) {
    if let Some(t) = wake {
        assert!(
            t > now,
            "{what}: poll_timeout {t:?} is not after handle_timeout({now:?})"
        );
    }
}

/// A raw frame from the input, decoded.
fn frame(input: &mut Input<'_>) -> Option<Frame> {
    Frame::decode(input.chunk()).ok()
}

fn duration(b: u8, choices: &[TimeDelta]) -> TimeDelta {
    choices[usize::from(b) % choices.len()]
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.u8() % 5 {
        0 => run_hyparview(&mut input),
        1 => run_swim(&mut input),
        2 => run_plumtree(&mut input),
        3 => run_antientropy(&mut input),
        _ => run_foaf(&mut input),
    }
});

// ------------------------------------------------------------------------------ HyParView

fn info(b: u8) -> PeerInfo {
    PeerInfo {
        peer: peer(b),
        addresses: Addresses::default(),
    }
}

fn infos(input: &mut Input<'_>, max: usize) -> Vec<PeerInfo> {
    let n = usize::from(input.u8()) % (max + 1);
    (0..n).map(|_| info(input.u8())).collect()
}

fn hv_message(input: &mut Input<'_>) -> hyparview::Message {
    use hyparview::{Message, Priority};
    match input.u8() % 7 {
        0 => Message::Join,
        1 => Message::ForwardJoin {
            node: info(input.u8()),
            ttl: input.u8() % 8,
        },
        2 => Message::Neighbor {
            priority: if input.bool() {
                Priority::High
            } else {
                Priority::Low
            },
        },
        3 => Message::NeighborReply {
            accepted: input.bool(),
        },
        4 => Message::Disconnect,
        5 => Message::Shuffle {
            origin: info(input.u8()),
            ttl: input.u8() % 8,
            nodes: BoundedVec::new(infos(input, 8)).expect("at most 8"),
        },
        _ => Message::ShuffleReply {
            nodes: BoundedVec::new(infos(input, 8)).expect("at most 8"),
        },
    }
}

struct HvCheck {
    config: hyparview::Config,
    /// The active view as told by NeighborUp / NeighborDown.
    up: BTreeSet<PeerId>,
}

impl HvCheck {
    fn drain(&mut self, hv: &mut HyParView) {
        while let Some(out) = hv.poll() {
            match out {
                hyparview::Output::Send { to, message } => {
                    assert_ne!(to, me(), "HyParView sends to itself: {message:?}");
                    if let hyparview::Message::Shuffle { ttl, .. }
                    | hyparview::Message::ForwardJoin { ttl, .. } = message
                    {
                        assert!(ttl <= self.config.arwl.max(7), "a walk with ttl {ttl}");
                    }
                }
                hyparview::Output::Connect { peer, .. } => {
                    assert_ne!(peer, me(), "HyParView dials itself")
                }
                hyparview::Output::Disconnect { .. } => {}
                hyparview::Output::NeighborUp { peer } => {
                    assert!(self.up.insert(peer), "NeighborUp for an active peer");
                }
                hyparview::Output::NeighborDown { peer, .. } => {
                    assert!(self.up.remove(&peer), "NeighborDown for an inactive peer");
                }
            }
        }
    }

    fn check(&self, hv: &HyParView) {
        let active: BTreeSet<PeerId> = hv.active().copied().collect();
        let passive: BTreeSet<PeerId> = hv.passive().copied().collect();
        assert!(
            active.len() <= self.config.active_view,
            "active view overflow"
        );
        assert!(
            passive.len() <= self.config.passive_view,
            "passive view overflow"
        );
        assert!(
            hv.lost().count() <= self.config.max_lost,
            "lost list overflow"
        );
        assert!(
            hv.attempts() <= self.config.max_pending,
            "too many attempts"
        );
        assert!(
            active.is_disjoint(&passive),
            "a peer is both active and passive"
        );
        assert!(!active.contains(&me()) && !passive.contains(&me()));
        assert!(!hv.wants_link(&me()), "HyParView wants a link to itself");
        assert_eq!(
            active, self.up,
            "NeighborUp/Down do not match the active view"
        );
    }
}

/// Config `[active, passive, lost, pending, arwl, prwl, shuffle_active, shuffle_passive, rate,
/// rng]`; ops (op % 12):
/// 0 `[from, addr?, message...]` a built message; 1 `[from, len(2), frame]` a decoded one
/// (node-level or topic HyParView); 2-5 `[peer]` link up, link down, failed, left;
/// 6 `[contacts...]` join; 7 `[introduce?, peer]` introduce or link; 8 `[infos...]` remember;
/// 9 leave; 10-11 `[jump?, ms(2)]` time passes, then `handle_timeout`.
fn run_hyparview(input: &mut Input<'_>) {
    let config = hyparview::Config {
        active_view: 1 + usize::from(input.u8() % 6),
        passive_view: usize::from(input.u8() % 12),
        max_lost: usize::from(input.u8() % 5),
        max_pending: usize::from(input.u8() % 9),
        arwl: input.u8() % 7,
        prwl: input.u8() % 7,
        shuffle_active: usize::from(input.u8() % 5),
        shuffle_passive: usize::from(input.u8() % 9),
        join_rate: 1 + u32::from(input.u8() % 60),
        ..hyparview::Config::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(input.u8()));
    let mut clock = Clock { now: T0 };
    let mut hv = HyParView::new(config.clone(), me(), Addresses::default(), T0, &mut rng);
    let mut c = HvCheck {
        config,
        up: BTreeSet::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        match input.u8() % 12 {
            0 => {
                let from = other(input.u8());
                let addresses = input.bool().then(Addresses::default);
                let message = hv_message(input);
                hv.handle_message(now, from, addresses, message, &mut rng);
            }
            1 => {
                let from = other(input.u8());
                let message = match frame(input) {
                    Some(Frame::Membership(m)) => Some(m),
                    Some(Frame::Topic(TopicMessage::Membership { message, .. })) => Some(message),
                    _ => None,
                };
                if let Some(m) = message {
                    hv.handle_message(now, from, Some(Addresses::default()), m, &mut rng);
                }
            }
            2 => hv.on_link_up(now, other(input.u8())),
            3 => hv.on_link_down(now, other(input.u8()), &mut rng),
            4 => hv.on_failed(now, other(input.u8()), &mut rng),
            5 => hv.on_left(now, other(input.u8()), &mut rng),
            6 => {
                let contacts = infos(input, 4);
                hv.join(now, contacts);
            }
            7 => {
                let introduce = input.bool();
                let who = info(input.u8());
                if introduce {
                    let _ = hv.introduce(now, who);
                } else {
                    let _ = hv.link(now, who);
                }
            }
            8 => {
                let peers = infos(input, 8);
                hv.remember(peers, &mut rng);
            }
            9 => {
                hv.leave();
                // Leaving forgets the views without NeighborDown (the owner says goodbye).
                c.drain(&mut hv);
                c.up.clear();
            }
            _ => {
                clock.step(input, hv.poll_timeout());
                hv.handle_timeout(clock.now, &mut rng);
                after_timeout(clock.now, hv.poll_timeout(), "HyParView");
            }
        }
        c.drain(&mut hv);
        c.check(&hv);
    }
}

// ------------------------------------------------------------------------------ SWIM

/// Sequence numbers seen on the node's pings and PING_REQs, most recent last.
#[derive(Default)]
struct Seqs {
    /// (to, seq, target of a PING_REQ)
    recent: Vec<(PeerId, u64, Option<PeerId>)>,
}

impl Seqs {
    fn push(&mut self, to: PeerId, seq: u64, target: Option<PeerId>) {
        if self.recent.len() >= 16 {
            self.recent.remove(0);
        }
        self.recent.push((to, seq, target));
    }

    fn pick(&self, b: u8) -> Option<(PeerId, u64, Option<PeerId>)> {
        if self.recent.is_empty() {
            return None;
        }
        self.recent
            .get(self.recent.len() - 1 - usize::from(b) % self.recent.len())
            .copied()
    }

    /// `[recent?, b]`: a recently seen sequence number, or a small one.
    fn seq(&self, input: &mut Input<'_>) -> u64 {
        let recent = input.bool();
        let b = input.u8();
        match self.pick(b) {
            Some((_, s, _)) if recent => s,
            _ => u64::from(b),
        }
    }
}

fn updates(input: &mut Input<'_>) -> swim::Updates {
    let n = usize::from(input.u8()) % (swim::MAX_UPDATES + 1);
    let list = (0..n)
        .map(|_| {
            let kind = input.u8() % 3;
            let peer = peer(input.u8());
            let incarnation = u64::from(input.u8() % 8);
            let update = match kind {
                0 => Update::Alive {
                    peer,
                    incarnation,
                    signature: SignatureBytes::from_array([input.u8(); SIGNATURE_LEN]),
                },
                1 => Update::Suspect { peer, incarnation },
                _ => Update::Dead { peer, incarnation },
            };
            Gossip {
                update,
                hops: input.u8() % 4,
            }
        })
        .collect();
    BoundedVec::new(list).expect("at most MAX_UPDATES")
}

fn swim_message(input: &mut Input<'_>, seqs: &Seqs) -> swim::Message {
    use swim::Message;
    match input.u8() % 5 {
        0 => Message::Ping {
            seq: seqs.seq(input),
            want_view: input.bool(),
            updates: updates(input),
        },
        1 => {
            let seq = seqs.seq(input);
            let view = input.bool().then(|| {
                let v: Vec<PeerId> = subset(input.u16())
                    .into_iter()
                    .take(swim::MAX_VIEW)
                    .collect();
                BoundedVec::new(v).expect("at most MAX_VIEW")
            });
            Message::Ack {
                seq,
                view,
                updates: updates(input),
            }
        }
        2 => Message::PingReq {
            seq: seqs.seq(input),
            target: peer(input.u8()),
        },
        3 => Message::IndirectAck {
            seq: seqs.seq(input),
            target: peer(input.u8()),
        },
        _ => Message::Nack {
            seq: seqs.seq(input),
            target: peer(input.u8()),
        },
    }
}

struct SwimCheck {
    config: swim::Config,
    members: BTreeSet<PeerId>,
    last_refute: u64,
    seqs: Seqs,
}

impl SwimCheck {
    fn drain(&mut self, s: &mut Swim) {
        while let Some(out) = s.poll() {
            match out {
                swim::Output::Send { to, message } => {
                    assert_ne!(to, me(), "SWIM sends to itself: {message:?}");
                    match message {
                        swim::Message::Ping { seq, .. } => self.seqs.push(to, seq, None),
                        swim::Message::PingReq { seq, target } => {
                            self.seqs.push(to, seq, Some(target))
                        }
                        _ => {}
                    }
                }
                swim::Output::Dead { peer } => {
                    assert!(self.members.remove(&peer), "a verdict on a non-member");
                }
                swim::Output::Refute { incarnation } => {
                    assert!(
                        incarnation > self.last_refute,
                        "a refutation does not raise the incarnation"
                    );
                    assert!(incarnation <= s.incarnation());
                    self.last_refute = incarnation;
                }
            }
        }
    }

    fn check(&self, s: &Swim) {
        assert!(
            s.health() <= self.config.max_health,
            "health over max_health"
        );
        if !self.config.lifeguard {
            assert_eq!(s.health(), 0, "health moved without Lifeguard");
        }
        for p in s.suspects() {
            assert!(self.members.contains(p), "a suspect that is not a member");
        }
        assert!(s.incarnation() >= self.last_refute);
    }
}

/// Config `[probes, confirmations, retransmits, lifeguard, health, relays, hops, rng]`; ops
/// (op % 9): 0-1 `[peer]` add or remove a member; 2 `[from, mask(2), message...]` a built
/// message, `mask` the active view it is handled with; 3 `[from, len(2), frame]` a decoded
/// one; 4 `[which, sig]` publish an ALIVE (current or another incarnation); 5-6 `[jump?,
/// ms(2)]` time passes, then `handle_timeout`; 7 `[pick, ack?, view?]` the answer to a recent
/// ping (an ack) or PING_REQ (an indirect ack or a nack) from the peer it went to; 8 nothing.
fn run_swim(input: &mut Input<'_>) {
    let config = swim::Config {
        indirect_probes: usize::from(input.u8() % 4),
        suspicion_confirmations: 1 + u32::from(input.u8() % 4),
        retransmit_limit: u32::from(input.u8() % 6),
        lifeguard: input.bool(),
        max_health: u32::from(input.u8() % 9),
        max_relays: usize::from(input.u8() % 4),
        gossip_hops: input.u8() % 4,
        ..swim::Config::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(input.u8()));
    let mut clock = Clock { now: T0 };
    let mut s = Swim::new(config.clone(), me(), 1);
    let mut c = SwimCheck {
        config,
        members: BTreeSet::new(),
        last_refute: 0,
        seqs: Seqs::default(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        match input.u8() % 9 {
            0 => {
                let p = peer(input.u8());
                s.add_member(now, p, &mut rng);
                if p != me() {
                    c.members.insert(p);
                }
            }
            1 => {
                let p = peer(input.u8());
                s.remove_member(&p);
                c.members.remove(&p);
            }
            2 => {
                let from = other(input.u8());
                let view = subset(input.u16());
                let message = swim_message(input, &c.seqs);
                s.handle_message(now, from, message, &view);
            }
            3 => {
                let from = other(input.u8());
                if let Some(Frame::FailureDetection(m)) = frame(input) {
                    let view: Vec<PeerId> = c.members.iter().copied().collect();
                    s.handle_message(now, from, m, &view);
                }
            }
            4 => {
                let which = input.u8();
                let incarnation = match which % 3 {
                    0 => s.incarnation(),
                    1 => s.incarnation().saturating_add(1),
                    _ => u64::from(which),
                };
                s.publish_alive(
                    incarnation,
                    SignatureBytes::from_array([input.u8(); SIGNATURE_LEN]),
                );
            }
            5 | 6 => {
                clock.step(input, s.poll_timeout());
                s.handle_timeout(clock.now, &mut rng);
                after_timeout(clock.now, s.poll_timeout(), "SWIM");
            }
            7 => {
                let pick = input.u8();
                let ack = input.bool();
                let with_view = input.bool();
                if let Some((to, seq, target)) = c.seqs.pick(pick) {
                    let message = match target {
                        None => swim::Message::Ack {
                            seq,
                            view: with_view.then(|| {
                                let v: Vec<PeerId> = c.members.iter().copied().collect();
                                BoundedVec::new(v).expect("at most PEERS members")
                            }),
                            updates: BoundedVec::default(),
                        },
                        Some(target) if ack => swim::Message::IndirectAck { seq, target },
                        Some(target) => swim::Message::Nack { seq, target },
                    };
                    let view: Vec<PeerId> = c.members.iter().copied().collect();
                    s.handle_message(now, to, message, &view);
                }
            }
            _ => {}
        }
        c.drain(&mut s);
        c.check(&s);
    }
}

// ------------------------------------------------------------------------------ Plumtree

fn topic() -> TopicId {
    TopicId::from_name("fuzz/protocol_handlers")
}

/// `[author, seq, age, flags, len, payload...]`: a message by `people()[author % 4]`, dated
/// `age` (in units of 8 s, flag bit 0: in the future instead of the past), of our topic unless
/// flag bit 1 (and `foreign`: the node's own messages are of its topic); its payload: verifying key of another author with flag bit 2, a flipped
/// signature bit with flag bit 3, hops `flags >> 4`.
fn payload(input: &mut Input<'_>, now: Timestamp, foreign: bool) -> plumtree::Payload {
    let author = &people()[usize::from(input.u8() % 4)];
    let seq = u64::from(input.u8());
    let age = TimeDelta::from_secs(8 * u64::from(input.u8()));
    let flags = input.u8();
    let len = usize::from(input.u8() % 16);
    let body = input.bytes(len);
    let at = if flags & 1 != 0 { now + age } else { now - age };
    let t = if foreign && flags & 2 != 0 {
        TopicId::from_name("another topic")
    } else {
        topic()
    };
    let mut message = SignedMessage::publish(author, t, seq, at, body).expect("signs");
    if flags & 8 != 0 {
        let mut sig = message.signature.as_bytes().to_vec();
        sig[0] ^= 1;
        message.signature = SignatureBytes::new(sig).expect("same length");
    }
    let key = if flags & 4 != 0 {
        people()[4].verifying_key().clone()
    } else {
        author.verifying_key().clone()
    };
    plumtree::Payload {
        message,
        author_key: key,
        hops: flags >> 4,
    }
}

/// Ids: `[n, (known?, b) * n]`, a known id (from earlier messages) or a made-up one.
fn ids(input: &mut Input<'_>, known: &[MessageId], max: usize) -> Vec<MessageId> {
    let n = usize::from(input.u8()) % (max + 1);
    (0..n)
        .map(|_| {
            let is_known = input.bool();
            let b = input.u8();
            match known.get(usize::from(b) % known.len().max(1)) {
                Some(id) if is_known => *id,
                _ => MessageId::from_bytes([b; 32]),
            }
        })
        .collect()
}

struct PlumCheck {
    config: plumtree::Config,
    neighbours: BTreeSet<PeerId>,
    delivered: BTreeSet<(MessageId, Timestamp)>,
    known: Vec<MessageId>,
    /// Payloads handed out by `Output::Archive`, for `restore`.
    archived: Vec<plumtree::Payload>,
}

impl PlumCheck {
    fn learn(&mut self, id: MessageId) {
        if !self.known.contains(&id) {
            if self.known.len() >= 32 {
                self.known.remove(0);
            }
            self.known.push(id);
        }
    }

    fn drain(&mut self, pt: &mut Plumtree, served: Option<PeerId>) {
        while let Some(out) = pt.poll() {
            match out {
                plumtree::Output::Send { to, message } => {
                    assert!(
                        self.neighbours.contains(&to) || Some(to) == served,
                        "Plumtree sends to a non-neighbour: {message:?}"
                    );
                    if let plumtree::Message::Gossip(p) | plumtree::Message::Repair(p) = &message {
                        self.learn(p.message.id());
                    }
                }
                plumtree::Output::Deliver {
                    message,
                    id,
                    author_key,
                    ..
                } => {
                    assert_eq!(id, message.id());
                    assert_eq!(message.topic, topic(), "delivered from another topic");
                    assert!(
                        message.verify(P, &author_key).is_ok(),
                        "delivered a message that does not verify"
                    );
                    // Keyed by id and date: the id leaves the date out, so only the author could
                    // make a second copy (one sequence number signed twice, which an honest
                    // author never does, §15.1); dated past the first copy's retention, it is a
                    // new message to a node that has forgotten the first (found by fuzzing).
                    let fresh = self.delivered.insert((id, message.timestamp));
                    // Only a seen-cache smaller than the run can forget an id early.
                    if self.config.seen_capacity > MAX_STEPS {
                        assert!(fresh, "delivered twice");
                        assert!(pt.has_seen(&id));
                    }
                    self.learn(id);
                }
                plumtree::Output::Penalise { peer } => {
                    assert_ne!(peer, me(), "penalised itself");
                }
                plumtree::Output::Archive { payload, id, .. } => {
                    assert!(self.config.archive, "archived without Config::archive");
                    assert_eq!(id, payload.message.id());
                    assert_eq!(payload.message.topic, topic(), "archived another topic");
                    if self.archived.len() >= 8 {
                        self.archived.remove(0);
                    }
                    self.archived.push(payload);
                }
            }
        }
    }

    fn check(&self, pt: &Plumtree) {
        let eager: BTreeSet<PeerId> = pt.eager_peers().copied().collect();
        let lazy: BTreeSet<PeerId> = pt.lazy_peers().copied().collect();
        assert!(eager.is_disjoint(&lazy), "a peer is both eager and lazy");
        assert!(
            eager.is_subset(&self.neighbours) && lazy.is_subset(&self.neighbours),
            "an eager or lazy peer is not a neighbour"
        );
        assert!(pt.missing() <= self.config.max_missing, "missing overflow");
        assert!(
            pt.retained_ids().count() <= self.config.cache_messages.max(1),
            "cache overflow"
        );
    }
}

/// Config `[threshold, retention, cache, bytes, seen, rejected, missing, announcers, ihave,
/// archive]`; ops (op % 12): 0-1 `[peer]` neighbour up or down; 2 `[mask(2)]` set_tree;
/// 3 `[payload...]` publish (the payload's message, as ours); 4-5 `[from, payload...]` a Gossip
/// or a Repair; 6 `[from, ids..., hops]` an IHAVE; 7 `[from, kind, ids...]` a GRAFT, an IWANT
/// or a PRUNE; 8 `[from, len(2), frame]` a decoded topic frame; 9 `[to, repair?, ids...]` serve;
/// 10 `[jump?, ms(2)]` time passes, then `handle_timeout`; 11 `[archived?, pick, payload...]`
/// restore an archived payload (or, without one, a new payload).
fn run_plumtree(input: &mut Input<'_>) {
    let config = plumtree::Config {
        optimization_threshold: input.u8() % 5,
        retention: duration(
            input.u8(),
            &[
                TimeDelta::from_secs(600),
                TimeDelta::from_secs(30),
                TimeDelta::from_secs(2),
            ],
        ),
        cache_messages: match input.u8() {
            b @ 0..=127 => 1 + usize::from(b % 8),
            _ => 4096,
        },
        cache_bytes: [64 << 20, 64, 1024][usize::from(input.u8() % 3)],
        seen_capacity: match input.u8() {
            b @ 0..=63 => 1 + usize::from(b % 16),
            _ => 65_536,
        },
        rejected_capacity: 1 + usize::from(input.u8() % 8),
        max_missing: 1 + usize::from(input.u8() % 8),
        max_announcers: 1 + usize::from(input.u8() % 4),
        max_pending_ihave: 1 + usize::from(input.u8() % 8),
        archive: input.bool(),
        ..plumtree::Config::default()
    };
    let validator = SignatureValidator(Arc::new(InsecureTestProvider));
    let mut clock = Clock { now: T0 };
    let mut pt = Plumtree::new(config.clone(), topic());
    let mut c = PlumCheck {
        config,
        neighbours: BTreeSet::new(),
        delivered: BTreeSet::new(),
        known: Vec::new(),
        archived: Vec::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        let mut served = None;
        match input.u8() % 12 {
            0 => {
                let p = other(input.u8());
                pt.neighbor_up(p);
                c.neighbours.insert(p);
            }
            1 => {
                let p = other(input.u8());
                pt.neighbor_down(&p);
                c.neighbours.remove(&p);
            }
            2 => pt.set_tree(&subset(input.u16())),
            3 => {
                let p = payload(input, now, false);
                c.learn(p.message.id());
                pt.publish(now, p.message, p.author_key);
            }
            op @ (4 | 5) => {
                let from = other(input.u8());
                let p = payload(input, now, true);
                c.learn(p.message.id());
                let message = if op == 4 {
                    plumtree::Message::Gossip(p)
                } else {
                    plumtree::Message::Repair(p)
                };
                pt.handle_message(now, from, message, &validator);
            }
            6 => {
                let from = other(input.u8());
                let list = ids(input, &c.known, 8);
                let hops = input.u8() % 8;
                let entries = list
                    .into_iter()
                    .map(|id| plumtree::Announcement { id, hops })
                    .collect();
                let message = plumtree::Message::IHave(BoundedVec::new(entries).expect("fits"));
                pt.handle_message(now, from, message, &validator);
            }
            7 => {
                let from = other(input.u8());
                let kind = input.u8() % 3;
                let list = BoundedVec::new(ids(input, &c.known, 8)).expect("fits");
                let message = match kind {
                    0 => plumtree::Message::Graft(list),
                    1 => plumtree::Message::IWant(list),
                    _ => plumtree::Message::Prune,
                };
                pt.handle_message(now, from, message, &validator);
            }
            8 => {
                let from = other(input.u8());
                if let Some(Frame::Topic(TopicMessage::Broadcast { message, .. })) = frame(input) {
                    pt.handle_message(now, from, message, &validator);
                }
            }
            9 => {
                let to = other(input.u8());
                let repair = input.bool();
                let list = ids(input, &c.known, 8);
                served = Some(to);
                pt.serve(to, &list, repair);
            }
            11 => {
                let archived = input.bool();
                let pick = usize::from(input.u8());
                let p = match c.archived.get(pick % c.archived.len().max(1)) {
                    Some(p) if archived => p.clone(),
                    _ => payload(input, now, true),
                };
                let seen_before = pt.has_seen(&p.message.id());
                if let Ok(id) = pt.restore(now, p, &validator) {
                    assert!(!seen_before, "restored a message already seen");
                    assert!(pt.has_seen(&id), "a restored message is not seen");
                    c.learn(id);
                }
                // Restoring sends and delivers nothing.
                assert!(pt.poll().is_none(), "restore produced an output");
            }
            _ => {
                clock.step(input, pt.poll_timeout());
                pt.handle_timeout(clock.now);
                after_timeout(clock.now, pt.poll_timeout(), "Plumtree");
            }
        }
        c.drain(&mut pt, served);
        c.check(&pt);
    }
}

// ------------------------------------------------------------------------------ anti-entropy

fn message_id(n: u8) -> MessageId {
    MessageId::from_bytes(*blake3::hash(&[n % 64]).as_bytes())
}

fn table_of(cells: usize, seed: [u8; 32], ids: &BTreeSet<MessageId>) -> Iblt {
    let mut t = Iblt::new(cells, seed).expect("a size in range");
    for id in ids {
        t.insert(id.as_bytes());
    }
    t
}

fn estimator_of(seed: [u8; 32], ids: &BTreeSet<MessageId>) -> StrataEstimator {
    let mut e = StrataEstimator::new(seed);
    for id in ids {
        e.insert(id.as_bytes());
    }
    e
}

/// `[n, ids...]`: a set of up to 32 ids (numbers mod 64).
fn id_set(input: &mut Input<'_>) -> BTreeSet<MessageId> {
    let n = usize::from(input.u8() % 33);
    input.bytes(n).iter().map(|&b| message_id(b)).collect()
}

struct AeCheck {
    config: antientropy::Config,
    /// Ids retained here, and ids seen here but no longer retained.
    ids: BTreeSet<MessageId>,
    seen: BTreeSet<MessageId>,
    neighbours: Vec<PeerId>,
    /// Sessions the node started: (peer, session).
    sessions: Vec<(PeerId, u64)>,
}

impl AeCheck {
    fn retained(&self) -> Vec<MessageId> {
        self.ids.iter().copied().collect()
    }

    /// Drains the outputs; `sketch` is the sender and set of a sketch of a known set just
    /// answered.
    fn drain(&mut self, r: &mut Reconciler, sketch: Option<(PeerId, &BTreeSet<MessageId>)>) {
        let max = self.config.max_transfer;
        let (mut pushed, mut wanted, mut done) = (None, None, None);
        while let Some(out) = r.poll() {
            match out {
                antientropy::Output::Send { to, message } => match message {
                    antientropy::Message::Sketch {
                        session,
                        attempt,
                        table,
                    } => {
                        assert!(
                            self.neighbours.contains(&to)
                                || self.sessions.iter().any(|(p, s)| *p == to && *s == session),
                            "a sketch to a non-neighbour"
                        );
                        assert!(
                            attempt == 0 || attempt < self.config.max_attempts,
                            "sketch attempt {attempt} of {}",
                            self.config.max_attempts
                        );
                        let t = Iblt::from_bytes(&table).expect("a sketch parses");
                        assert!(t.cells() <= max_sketch_cells());
                        assert!(
                            t == table_of(t.cells(), *t.seed(), &self.ids),
                            "a sketch that is not the table of the ids"
                        );
                        if self.sessions.len() >= 8 {
                            self.sessions.remove(0);
                        }
                        self.sessions.push((to, session));
                    }
                    antientropy::Message::Estimate { strata, .. } => {
                        let e = StrataEstimator::from_bytes(&strata).expect("an estimate parses");
                        assert!(
                            e == estimator_of(*e.seed(), &self.ids),
                            "an estimate that is not the estimator of the ids"
                        );
                    }
                    antientropy::Message::Done {
                        pushed: p,
                        wanted: w,
                        ..
                    } => done = Some((to, p, w)),
                    // A message kind added later: nothing checked about it yet.
                    _ => {}
                },
                antientropy::Output::Push { to, ids } => {
                    assert!(
                        !ids.is_empty() && ids.len() <= max,
                        "a push of {}",
                        ids.len()
                    );
                    pushed = Some((to, ids));
                }
                antientropy::Output::Want { to, ids } => {
                    assert!(
                        !ids.is_empty() && ids.len() <= max,
                        "a want of {}",
                        ids.len()
                    );
                    wanted = Some((to, ids));
                }
            }
        }
        let Some((from, theirs)) = sketch else {
            return;
        };
        let Some((to, p, w)) = done else {
            assert!(
                pushed.is_none() && wanted.is_none(),
                "a push or want without Done"
            );
            return;
        };
        assert_eq!(to, from);
        // The exact differences, in id order, cut at max_transfer.
        let expect_push: Vec<MessageId> = self.ids.difference(theirs).take(max).copied().collect();
        let expect_want: Vec<MessageId> = theirs
            .difference(&self.ids)
            .filter(|id| !self.seen.contains(id))
            .take(max)
            .copied()
            .collect();
        let got_push = pushed.map(|(t, ids)| {
            assert_eq!(t, from);
            ids
        });
        let got_want = wanted.map(|(t, ids)| {
            assert_eq!(t, from);
            ids
        });
        assert_eq!(
            got_push.unwrap_or_default(),
            expect_push,
            "wrong ids pushed"
        );
        assert_eq!(
            got_want.unwrap_or_default(),
            expect_want,
            "wrong ids wanted"
        );
        assert_eq!(p as usize, expect_push.len());
        assert_eq!(w as usize, expect_want.len());
    }
}

/// Config `[interval, timeout, cells, attempts, transfer, rate, rng]`; ops (op % 8):
/// 0 `[n, add?]` an id added or dropped (dropped ids stay seen); 1 `[mask(2)]` the neighbours;
/// 2 `[from, session?, s, attempt, cells(2), seed, set...]` a SKETCH of a known set (its
/// session a recent one of the node's, or `s`); 3 `[pick, own?, seed, set...]` an ESTIMATE
/// for a recent session (from that session's peer if `own` is odd, else from another);
/// 4 `[pick, s]` a DONE; 5 `[from, len(2), frame]` a decoded frame; 6 `[peer]` neighbour down;
/// 7 `[jump?, ms(2)]` time passes, then `handle_timeout`.
fn run_antientropy(input: &mut Input<'_>) {
    let config = antientropy::Config {
        interval: duration(
            input.u8(),
            &[TimeDelta::from_secs(5), TimeDelta::from_secs(1)],
        ),
        session_timeout: duration(
            input.u8(),
            &[TimeDelta::from_secs(5), TimeDelta::from_secs(1)],
        ),
        initial_cells: usize::from(input.u8() % 80),
        max_attempts: input.u8() % 4,
        max_transfer: match input.u8() {
            b @ 0..=127 => 1 + usize::from(b % 8),
            _ => 256,
        },
        responses_per_second: 1 + u32::from(input.u8() % 4),
        ..antientropy::Config::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(input.u8()));
    let mut clock = Clock { now: T0 };
    let mut r = Reconciler::new(config.clone(), T0, &mut rng);
    let mut c = AeCheck {
        config,
        ids: BTreeSet::new(),
        seen: BTreeSet::new(),
        neighbours: Vec::new(),
        sessions: Vec::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        let mut sketch = None;
        match input.u8() % 8 {
            0 => {
                let id = message_id(input.u8());
                if input.bool() {
                    c.ids.insert(id);
                    c.seen.insert(id);
                } else {
                    c.ids.remove(&id);
                }
            }
            1 => c.neighbours = subset(input.u16()),
            2 => {
                let from = other(input.u8());
                let recent = input.bool();
                let s = input.u8();
                let session = match c.sessions.last() {
                    Some((_, id)) if recent => *id,
                    _ => u64::from(s),
                };
                let attempt = input.u8();
                let cells = 4 + usize::from(input.u16() % 400);
                let seed = [input.u8(); 32];
                let theirs = id_set(input);
                let table = BoundedBytes::new(table_of(cells, seed, &theirs).to_bytes())
                    .expect("fits a sketch");
                let message = antientropy::Message::Sketch {
                    session,
                    attempt,
                    table,
                };
                let ids = c.retained();
                let seen = c.seen.clone();
                r.handle_message(now, from, message, &ids, &|id| seen.contains(id));
                sketch = Some((from, theirs));
            }
            3 => {
                let pick = input.u8();
                let own = input.bool();
                let seed = [input.u8(); 32];
                let theirs = id_set(input);
                let (to, session) = c
                    .sessions
                    .get(usize::from(pick) % c.sessions.len().max(1))
                    .copied()
                    .unwrap_or((other(pick), u64::from(pick)));
                let from = if own { to } else { other(pick) };
                let strata = BoundedBytes::new(estimator_of(seed, &theirs).to_bytes())
                    .expect("fits an estimate");
                let message = antientropy::Message::Estimate { session, strata };
                let ids = c.retained();
                let seen = c.seen.clone();
                r.handle_message(now, from, message, &ids, &|id| seen.contains(id));
            }
            4 => {
                let pick = input.u8();
                let s = input.u8();
                let (from, session) = c
                    .sessions
                    .get(usize::from(pick) % c.sessions.len().max(1))
                    .copied()
                    .unwrap_or((other(pick), u64::from(s)));
                let message = antientropy::Message::Done {
                    session,
                    pushed: u32::from(s),
                    wanted: 0,
                };
                let ids = c.retained();
                r.handle_message(now, from, message, &ids, &|_| false);
            }
            5 => {
                let from = other(input.u8());
                if let Some(Frame::Reconcile(ReconcileMessage { message, .. })) = frame(input) {
                    let ids = c.retained();
                    let seen = c.seen.clone();
                    r.handle_message(now, from, message, &ids, &|id| seen.contains(id));
                }
            }
            6 => r.neighbor_down(&other(input.u8())),
            _ => {
                clock.step(input, r.poll_timeout());
                let ids = c.retained();
                r.handle_timeout(clock.now, &c.neighbours, &ids, &mut rng);
                after_timeout(clock.now, r.poll_timeout(), "Reconciler");
            }
        }
        let sketch_ref = sketch.as_ref().map(|(p, set)| (*p, set));
        c.drain(&mut r, sketch_ref);
    }
}

// ------------------------------------------------------------------------------ FOAF

/// Records queries are answered from and answers carry: four valid ones, and a fifth with a
/// flipped signature bit.
fn foaf_records() -> &'static [PeerRecord] {
    static RECORDS: OnceLock<Vec<PeerRecord>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let hour = TimeDelta::from_secs(3600);
        let mut v: Vec<PeerRecord> = people()[..5].iter().map(|p| record(p, T0, hour)).collect();
        let mut sig = v[4].signature.as_bytes().to_vec();
        sig[3] ^= 4;
        v[4].signature = SignatureBytes::new(sig).expect("same length");
        v
    })
}

fn foaf_target(input: &mut Input<'_>) -> Target {
    let b = input.u8();
    if b & 0x80 != 0 {
        Target::Capability(Capability::new(&b"relay"[..]).expect("fits"))
    } else {
        Target::Peer(people()[usize::from(b) % people().len()].peer_id())
    }
}

struct FoafCheck {
    config: foaf::Config,
    hold: bool,
    /// Ids of queries seen leaving, most recent last.
    queries: Vec<QueryId>,
    /// Neighbours of the op being run.
    neighbours: Vec<PeerId>,
    /// Every neighbour named since the transmits were last drained.
    allowed: BTreeSet<PeerId>,
}

impl FoafCheck {
    fn query_id(&self, input: &mut Input<'_>) -> QueryId {
        let recent = input.bool();
        let b = input.u8();
        match self.queries.get(usize::from(b) % self.queries.len().max(1)) {
            Some(id) if recent => *id,
            _ => QueryId::from_bytes([b; 16]),
        }
    }

    fn drain(&mut self, f: &mut Foaf, now: Timestamp) {
        let (transmits, events) = f.queued();
        assert!(transmits <= self.config.max_queued && events <= self.config.max_queued);
        assert!(
            f.remembered_ids() <= self.config.dedup_capacity,
            "dedup overflow"
        );
        assert!(
            f.pending_queries() <= self.config.max_pending,
            "pending overflow"
        );
        assert!(
            f.own_queries() <= self.config.max_own_queries,
            "own queries overflow"
        );
        assert!(
            f.rate_buckets() <= self.config.max_rate_buckets,
            "bucket overflow"
        );
        self.allowed.extend(self.neighbours.iter().copied());
        if self.hold {
            return;
        }
        while let Some((to, message)) = f.poll_transmit() {
            if let DiscoveryMessage::Query(q) = message {
                assert!(
                    (1..=self.config.max_ttl).contains(&q.ttl),
                    "a query sent with ttl {}",
                    q.ttl
                );
                assert!(self.allowed.contains(&to), "a query to a non-neighbour");
                if !self.queries.contains(&q.id) {
                    if self.queries.len() >= 16 {
                        self.queries.remove(0);
                    }
                    self.queries.push(q.id);
                }
            }
        }
        self.allowed.clear();
        while let Some(event) = f.poll_event() {
            if let foaf::Event::Found {
                target, records, ..
            } = event
            {
                let peers: BTreeSet<PeerId> = records.iter().map(|r| r.peer_id).collect();
                assert_eq!(peers.len(), records.len(), "a peer found twice at once");
                for r in &records {
                    assert!(target.admits(r), "a record that does not match its target");
                    assert!(r.verify(P, now).is_ok(), "a record that does not verify");
                }
            }
        }
    }
}

/// Config `[own, max_ttl, fanout, ttl_below, timeout, dedup, rate, per_answer, per_query,
/// answers, pending, buckets, queued, rng]` (possibly invalid: then `Foaf::new` must refuse it, and the default is used);
/// ops (op % 7): 0 `[mask(2), target, ttl]` an own query; 1 `[from, mask(2), id..., target,
/// ttl]` a query; 2 `[from, id..., n, picks(n)]` an answer; 3 `[from, mask(2), len(2), frame]` a
/// decoded one; 4-5 `[jump?, ms(2)]` time passes, then `handle_timeout`; 6 hold outputs, or
/// drain them again.
fn run_foaf(input: &mut Input<'_>) {
    let own = 1 + usize::from(input.u8() % 4);
    let max_ttl = input.u8() % 5;
    let config = foaf::Config {
        fanout: usize::from(input.u8() % 5),
        max_ttl,
        default_ttl: max_ttl.saturating_sub(input.u8() % 2),
        query_timeout: duration(
            input.u8(),
            &[TimeDelta::from_secs(5), TimeDelta::from_secs(1)],
        ),
        dedup_capacity: usize::from(input.u8() % 9),
        query_rate: 1 + u32::from(input.u8() % 4),
        max_records_per_answer: 1 + usize::from(input.u8() % 4),
        max_records_per_query: 1 + usize::from(input.u8() % 8),
        max_answers_per_query: 1 + usize::from(input.u8() % 4),
        max_pending: own + usize::from(input.u8() % 8),
        max_own_queries: own,
        max_rate_buckets: 1 + usize::from(input.u8() % 4),
        max_queued: usize::from(input.u8() % 17),
        ..foaf::Config::default()
    };
    let valid = config.validate().is_ok();
    let config = match Foaf::new(config.clone()) {
        Ok(_) => {
            assert!(valid, "Foaf::new took a configuration validate refuses");
            config
        }
        Err(_) => {
            assert!(!valid, "Foaf::new refused a valid configuration");
            foaf::Config::default()
        }
    };
    let mut f = Foaf::new(config.clone()).expect("a valid configuration");
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(input.u8()));
    let mut clock = Clock { now: T0 };
    let mut c = FoafCheck {
        config,
        hold: false,
        queries: Vec::new(),
        neighbours: Vec::new(),
        allowed: BTreeSet::new(),
    };
    let records = foaf_records();
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        match input.u8() % 7 {
            0 => {
                c.neighbours = subset(input.u16());
                let target = foaf_target(input);
                let ttl = match input.u8() {
                    0 => None,
                    b => Some(b % 6),
                };
                let _ = f.start_query(now, &mut rng, target, ttl, &c.neighbours);
            }
            1 => {
                let from = other(input.u8());
                c.neighbours = subset(input.u16());
                let id = c.query_id(input);
                let target = foaf_target(input);
                let ttl = input.u8() % 6;
                let query = Query { id, target, ttl };
                let outcome = f.handle_query(now, &mut rng, from, query, records, &c.neighbours);
                if let QueryOutcome::Served {
                    answered,
                    forwarded,
                } = outcome
                {
                    assert!(answered <= c.config.max_records_per_answer);
                    assert!(forwarded <= c.config.fanout);
                }
            }
            2 => {
                let from = other(input.u8());
                let id = c.query_id(input);
                let n = usize::from(input.u8() % 6);
                let picks: Vec<PeerRecord> = (0..n)
                    .map(|_| records[usize::from(input.u8()) % records.len()].clone())
                    .collect();
                let answer = Answer {
                    id,
                    records: BoundedVec::new(picks).expect("fits"),
                };
                let _ = f.handle_answer(now, from, answer, |r| r.verify(P, now).is_ok());
            }
            3 => {
                let from = other(input.u8());
                c.neighbours = subset(input.u16());
                match frame(input) {
                    Some(Frame::Discovery(DiscoveryMessage::Query(q))) => {
                        let _ = f.handle_query(now, &mut rng, from, q, records, &c.neighbours);
                    }
                    Some(Frame::Discovery(DiscoveryMessage::Answer(a))) => {
                        let _ = f.handle_answer(now, from, a, |r| r.verify(P, now).is_ok());
                    }
                    _ => {}
                }
            }
            4 | 5 => {
                clock.step(input, f.poll_timeout());
                f.handle_timeout(clock.now);
                after_timeout(clock.now, f.poll_timeout(), "FOAF");
            }
            _ => c.hold = !c.hold,
        }
        c.drain(&mut f, clock.now);
    }
}
