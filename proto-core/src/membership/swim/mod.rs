//! SWIM failure detection (Das, Gupta, Motivala, DSN 2002) with the Lifeguard refinements
//! (Dadgar et al., 2017), adapted to a partial-view overlay.
//!
//! - **Who is probed.** Each node probes every peer in its HyParView active view once per probe
//!   period (spread over the period). The active view is bounded (default 5), so the load per
//!   node is constant whatever the size of the overlay. Of two neighbours only the smaller id
//!   probes each round (paired probing); the other probes when a PING from it is overdue.
//!   News starts an early round, so it does not wait for the rounds (SPEC.md §14.1).
//! - **Indirect probes.** When a direct ping gets no ack within the probe timeout, the node sends
//!   PING_REQ to up to `k` helpers that have the target in *their* active view (learnt from the
//!   views carried in acks), and pings the target directly once more. Helpers answer with an
//!   indirect ack, or a nack when they could not reach the target.
//! - **Suspicion.** A probe that fails both ways makes the target *suspect*. The node keeps
//!   probing it; any ack, or a signed ALIVE with a higher incarnation, clears the suspicion. If
//!   the suspicion timeout passes first, the node declares the target dead (its own verdict) and
//!   tells HyParView, which replaces it.
//! - **Dissemination.** SUSPECT, DEAD and ALIVE updates ride on pings and acks to active peers,
//!   each sent a bounded number of times by each node that learns it, so they spread along the
//!   overlay. SUSPECT and DEAD from others are *hints*: they make a node probe at once and count
//!   as confirmations for the dynamic suspicion timeout, never as a verdict. Only ALIVE — the
//!   node's own claim of its incarnation, signed by it — can override a suspicion.
//! - **Lifeguard.** Local health (a node that misses its own acks slows its probes and lengthens
//!   its timeouts), a suspicion timeout that shrinks from max to min as independent
//!   confirmations arrive, and the buddy system (a suspect hears of it on the next ping, so it
//!   can refute at once).

mod counters;
mod gossip;
mod message;
pub use counters::Counters;
pub use message::*;

use crate::crypto::SignatureBytes;
use crate::id::PeerId;
use crate::machine::{self, Deadlines, StateMachine};
use crate::membership::take_due;
use crate::time::{TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use rand_core::Rng;

/// SWIM and Lifeguard parameters (SPEC.md §10).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Each active peer is probed once per period. Default 1 s.
    pub probe_interval: TimeDelta,
    /// Members paced slow ([`Input::Pace`]: kept only by topic overlays) are probed once per
    /// this period instead (rounded up to whole `probe_interval` rounds), and not at all in a
    /// period in which the member's own PING arrived. Default 5 s.
    pub slow_probe_interval: TimeDelta,
    /// How long after a payload was pushed to a slow member it is probed at the full pace
    /// ([`Input::Busy`]). Default 30 s.
    pub busy_window: TimeDelta,
    /// Wait for a direct ack. Default 400 ms.
    pub probe_timeout: TimeDelta,
    /// Wait for indirect acks after the direct timeout. Default 600 ms.
    pub indirect_timeout: TimeDelta,
    /// Helpers asked per indirect probe (k). Default 3.
    pub indirect_probes: usize,
    /// Suspicion timeout with `suspicion_confirmations` independent confirmations. Default 1 s.
    pub suspicion_min: TimeDelta,
    /// Suspicion timeout with none. Default 3 s.
    pub suspicion_max: TimeDelta,
    /// A new suspicion is spread only if it still holds this long after it began (the suspect
    /// is pinged at once; an ACK or PING from it ends the suspicion). Default 200 ms.
    pub announce_after: TimeDelta,
    /// Confirmations that bring the timeout down to its minimum (K). Default 3.
    pub suspicion_confirmations: u32,
    /// Times each node sends an update it learnt. Default 4.
    pub retransmit_limit: u32,
    /// Paired probing: of two full-pace members, only the one with the smaller id probes
    /// every round; the other answers and probes only when the expected PING is overdue
    /// (`probe_interval` plus a quarter of the probe timeout after the last one) or its copy
    /// of the prober's view is stale. Halves the pings of a quiet overlay. Default on.
    pub paired_probes: bool,
    /// Lifeguard's local health, dynamic suspicion and buddy system. Default on.
    pub lifeguard: bool,
    /// Largest local-health multiplier. Default 8.
    pub max_health: u32,
    /// Most PING_REQs relayed at once. Default 64.
    pub max_relays: usize,
    /// How far (in overlay hops) an update travels from the node that issued it. Suspicions
    /// matter to the suspect and its neighbours, so the default 2 reaches them while the cost of
    /// a failure stays constant however large the overlay.
    pub gossip_hops: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            probe_interval: TimeDelta::from_secs(1),
            slow_probe_interval: TimeDelta::from_secs(5),
            busy_window: TimeDelta::from_secs(30),
            probe_timeout: TimeDelta::from_millis(400),
            indirect_timeout: TimeDelta::from_millis(600),
            indirect_probes: 3,
            suspicion_min: TimeDelta::from_secs(1),
            suspicion_max: TimeDelta::from_secs(3),
            announce_after: TimeDelta::from_millis(200),
            suspicion_confirmations: 3,
            retransmit_limit: 4,
            paired_probes: true,
            lifeguard: true,
            max_health: 8,
            max_relays: 64,
            gossip_hops: 2,
        }
    }
}

/// What the state machine asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `to`.
    Send {
        /// Recipient.
        to: PeerId,
        /// Message.
        message: Message,
    },
    /// The verdict: `peer` is dead.
    Dead {
        /// Peer.
        peer: PeerId,
    },
    /// Sign an ALIVE claim for this incarnation and hand it back with [`Input::PublishAlive`].
    Refute {
        /// The new incarnation.
        incarnation: u64,
    },
    /// What `peer` did, for its score (SPEC.md §13.8): it claimed this node SUSPECT or DEAD
    /// at an incarnation this node never had (no honest node can know one, §14.4).
    Evidence {
        /// The peer.
        peer: PeerId,
        /// What it did.
        evidence: crate::score::Evidence,
    },
}

/// What can happen to the failure detector (besides time passing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// Start probing `peer`: it entered an active view.
    AddMember {
        /// The peer.
        peer: PeerId,
    },
    /// Probe `peer` (a member) every `probe_interval` (`slow` false: it is in the node-level
    /// active view) or every `slow_probe_interval` (`slow`: only topic overlays keep it).
    Pace {
        /// The member.
        peer: PeerId,
        /// Whether it is probed at the slow pace.
        slow: bool,
    },
    /// The owner just pushed a message's payload to member `peer`: a slow member is probed at
    /// the full pace for `busy_window` from now (a busy link is watched closely, an idle one
    /// cheaply).
    Busy {
        /// The member.
        peer: PeerId,
    },
    /// Stop probing `peer`: it left every active view.
    RemoveMember {
        /// The peer.
        peer: PeerId,
    },
    /// A SWIM message from `from`; its ALIVE updates are already verified by the owner.
    Message {
        /// The sender.
        from: PeerId,
        /// The message.
        message: Message,
        /// This node's active view, sent in an ack when the ping asks for it.
        active_view: &'a [PeerId],
    },
    /// The owner signed this node's ALIVE claim for `incarnation` (asked by [`Output::Refute`]):
    /// spread it.
    PublishAlive {
        /// The incarnation claimed.
        incarnation: u64,
        /// The claim's signature.
        signature: SignatureBytes,
    },
}

/// The detector's timers, run kind by kind in this order (the order of the variants) and, within
/// a kind, in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A relayed PING_REQ got no ack: the requester gets a NACK.
    Relay(u64),
    /// A probe's direct timeout (then it goes indirect), or its indirect one (then it failed).
    Probe(u64),
    /// A suspicion ran out: the verdict.
    Verdict(PeerId),
    /// A suspect's next direct ping.
    SuspectPing(PeerId),
    /// News waits to be spread early (the last early round was too recent).
    Hurry,
    /// A member's next probe (set while no probe of it is in flight).
    NextProbe(PeerId),
    /// A refutation asked for within a probe period of the last one is made.
    Refute,
    /// A suspicion not cleared within the probe timeout is spread.
    Announce(PeerId),
}

#[derive(Debug, Clone)]
struct Suspicion {
    since: Timestamp,
    confirmations: BTreeSet<PeerId>,
}

#[derive(Debug, Clone)]
struct Member {
    incarnation: u64,
    suspicion: Option<Suspicion>,
    /// The next probe round; its timer is set while `probing` is `None`.
    next_probe: Timestamp,
    probing: Option<u64>,
    view: Vec<PeerId>,
    view_at: Option<Timestamp>,
    /// Probed every `slow_probe_interval` rather than every round...
    slow: bool,
    /// ...unless busy until then ([`Input::Busy`]).
    busy_until: Timestamp,
    /// When the member's last PING arrived (a slow member that pings is not probed back).
    pinged_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct Probe {
    target: PeerId,
    indirect: bool,
    nacks: u32,
    helpers: u32,
}

#[derive(Debug, Clone)]
struct Relay {
    requester: PeerId,
    seq: u64,
    target: PeerId,
}

#[derive(Debug, Clone)]
struct Queued {
    update: Update,
    /// Forwards its receivers may still make.
    hops: u8,
    remaining: u32,
}

crate::machine::internal_struct! {
    /// The SWIM state machine.
    #[derive(Debug)]
    struct Swim {
        config: Config,
        me: PeerId,
        incarnation: u64,
        members: BTreeMap<PeerId, Member>,
        next_seq: u64,
        probes: BTreeMap<u64, Probe>,
        relays: BTreeMap<u64, Relay>,
        queue: VecDeque<Queued>,
        seen: BTreeSet<message::UpdateKey>,
        seen_order: VecDeque<message::UpdateKey>,
        health: u32,
        /// An update to pass on was queued since the last early round (see [`Swim::hurry`]).
        news: bool,
        /// When the last early round started.
        hurried_at: Option<Timestamp>,
        /// When this node last signed a refutation (at most one per probe period).
        refuted_at: Option<Timestamp>,
        /// The highest claimed incarnation of this node still to refute ([`Timer::Refute`]).
        pending_refute: Option<u64>,
        /// This node's latest signed ALIVE (incarnation, signature), passed on again to peers
        /// that still suspect an older incarnation.
        alive: Option<(u64, SignatureBytes)>,
        /// When that ALIVE was last queued again.
        respread_at: Option<Timestamp>,
        /// This node's probe rounds start at `phase` modulo the probe interval (random per node,
        /// so nodes do not probe in lockstep); all active peers are probed in the same round.
        phase: Option<u64>,
        /// Every timer: probes, relays, suspicions, suspects' pings, members' next probes.
        deadlines: Deadlines<Timer>,
        out: VecDeque<Output>,
        counters: Counters,
    }
}

const MAX_QUEUE: usize = 64;
const MAX_SEEN: usize = 1024;
/// An ack's view older than this is asked for again (ten times this for a slow member).
const VIEW_REFRESH: TimeDelta = TimeDelta::from_secs(60);

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl Swim {
    /// A detector for `me`, starting at `incarnation` (derived from the boot count so that it
    /// grows across restarts).
    pub fn new(config: Config, me: PeerId, incarnation: u64) -> Self {
        Self {
            config,
            me,
            incarnation,
            members: BTreeMap::new(),
            next_seq: 1,
            probes: BTreeMap::new(),
            relays: BTreeMap::new(),
            queue: VecDeque::new(),
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
            health: 0,
            news: false,
            hurried_at: None,
            refuted_at: None,
            pending_refute: None,
            alive: None,
            respread_at: None,
            phase: None,
            deadlines: Deadlines::new(),
            out: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The first round boundary after `after`.
    fn next_round(&self, after: Timestamp) -> Timestamp {
        let interval = self.scale(self.config.probe_interval).as_micros().max(1);
        let phase = self.phase.unwrap_or(0) % interval;
        let t = after.as_micros();
        let k = t.saturating_sub(phase) / interval + 1;
        Timestamp::from_micros(phase.saturating_add(k.saturating_mul(interval)))
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Lifeguard's local health multiplier (0 = healthy).
    pub fn health(&self) -> u32 {
        self.health
    }

    /// Peers currently suspected.
    pub fn suspects(&self) -> impl Iterator<Item = &PeerId> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| m.suspicion.is_some())
            .map(|(p, _)| p)
    }

    /// Running totals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Shorthand for [`StateMachine::poll`].
    pub fn poll(&mut self) -> Option<Output> {
        StateMachine::poll(self)
    }

    /// Shorthand for [`StateMachine::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        StateMachine::poll_timeout(self)
    }

    /// Shorthand for [`StateMachine::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        StateMachine::handle_timeout(self, now, rng)
    }

    /// Shorthand for `handle(now, Input::AddMember { peer }, rng)`.
    pub fn add_member(&mut self, now: Timestamp, peer: PeerId, rng: &mut machine::Rng) {
        self.handle(now, Input::AddMember { peer }, rng)
    }

    /// Shorthand for `handle(now, Input::RemoveMember { peer }, rng)` (which needs neither).
    pub fn remove_member(&mut self, peer: &PeerId) {
        self.remove(peer)
    }

    /// Shorthand for `handle(now, Input::PublishAlive { incarnation, signature }, rng)` (which
    /// needs neither).
    pub fn publish_alive(&mut self, incarnation: u64, signature: SignatureBytes) {
        self.publish(incarnation, signature)
    }

    /// Shorthand for `handle(now, Input::Message { from, message, active_view }, rng)` (which
    /// needs no randomness).
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        from: PeerId,
        message: Message,
        active_view: &[PeerId],
    ) {
        self.receive(now, from, message, active_view);
        self.hurry(now);
    }

    fn scale(&self, d: TimeDelta) -> TimeDelta {
        if self.config.lifeguard {
            d.saturating_mul(u64::from(self.health) + 1)
        } else {
            d
        }
    }

    /// [`Input::Pace`]: a member sped up is probed from the next round.
    fn pace(&mut self, now: Timestamp, peer: PeerId, slow: bool) {
        let next = self.next_round(now);
        let Some(m) = self.members.get_mut(&peer) else {
            return;
        };
        m.slow = slow;
        if !slow && m.probing.is_none() && m.next_probe > next {
            m.next_probe = next;
            self.deadlines.set(Timer::NextProbe(peer), next);
        }
    }

    /// [`Input::Busy`].
    fn busy(&mut self, now: Timestamp, peer: PeerId) {
        let until = now + self.config.busy_window;
        let next = self.next_round(now);
        let Some(m) = self.members.get_mut(&peer) else {
            return;
        };
        m.busy_until = until;
        // A slow member waiting for its next probe is probed from the next round.
        if m.probing.is_none() && m.next_probe > next {
            m.next_probe = next;
            self.deadlines.set(Timer::NextProbe(peer), next);
        }
    }

    /// Start probing `peer` (it entered the active view).
    fn add(&mut self, now: Timestamp, peer: PeerId, rng: &mut machine::Rng) {
        if peer == self.me || self.members.contains_key(&peer) {
            return;
        }
        if self.phase.is_none() {
            self.phase = Some(rng.next_u64() % self.config.probe_interval.as_micros().max(1));
        }
        let next_probe = self.next_round(now);
        self.members.insert(
            peer,
            Member {
                incarnation: 0,
                suspicion: None,
                next_probe,
                probing: None,
                view: Vec::new(),
                view_at: None,
                slow: false,
                busy_until: Timestamp::from_micros(0),
                pinged_at: None,
            },
        );
        self.deadlines.set(Timer::NextProbe(peer), next_probe);
    }

    /// Stop probing `peer` (it left the active view).
    fn remove(&mut self, peer: &PeerId) {
        if let Some(m) = self.members.remove(peer) {
            if let Some(seq) = m.probing {
                self.probes.remove(&seq);
                self.deadlines.cancel(&Timer::Probe(seq));
            }
            self.deadlines.cancel(&Timer::NextProbe(*peer));
            self.deadlines.cancel(&Timer::Verdict(*peer));
            self.deadlines.cancel(&Timer::SuspectPing(*peer));
            self.deadlines.cancel(&Timer::Announce(*peer));
        }
    }

    fn seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn send_ping(&mut self, now: Timestamp, target: PeerId, seq: u64) {
        let want_view = self.members.get(&target).is_some_and(|m| {
            let refresh = VIEW_REFRESH.saturating_mul(if m.slow { 10 } else { 1 });
            m.view_at.is_none_or(|t| now.saturating_since(t) > refresh)
        });
        let updates = self.piggyback(&target);
        self.out.push_back(Output::Send {
            to: target,
            message: Message::Ping {
                seq,
                want_view,
                updates,
                rtt_us: None,
            },
        });
    }

    /// A SWIM message from `from`. ALIVE updates must already be verified by the owner.
    fn receive(&mut self, now: Timestamp, from: PeerId, message: Message, active_view: &[PeerId]) {
        match message {
            Message::Ping {
                seq,
                want_view,
                updates,
                ..
            } => {
                // A PING from a suspect, over its own authenticated connection, is as good as
                // an ACK: it is alive and reaches this node.
                if self.clear_suspicion(&from) {
                    self.counters.cleared += 1;
                }
                if let Some(m) = self.members.get_mut(&from) {
                    m.pinged_at = Some(now);
                    // Paired probing: a smaller-id member that pings this node each round is
                    // alive and probing it; this side waits for the next PING instead, and
                    // probes only if that is overdue (or the prober's view needs refreshing).
                    let full_pace = !m.slow || m.busy_until > now;
                    let view_fresh = m
                        .view_at
                        .is_some_and(|t| now.saturating_since(t) <= VIEW_REFRESH);
                    if self.config.paired_probes
                        && from < self.me
                        && full_pace
                        && view_fresh
                        && m.probing.is_none()
                        && m.suspicion.is_none()
                    {
                        let overdue =
                            now + self.config.probe_interval + self.config.probe_timeout.div(4);
                        if overdue > m.next_probe {
                            m.next_probe = overdue;
                            self.deadlines.set(Timer::NextProbe(from), overdue);
                        }
                    }
                }
                self.absorb(now, from, updates);
                let view = want_view.then(|| {
                    BoundedVec::new(active_view.iter().copied().take(MAX_VIEW).collect())
                        .unwrap_or_default()
                });
                let updates = self.piggyback(&from);
                self.out.push_back(Output::Send {
                    to: from,
                    message: Message::Ack { seq, view, updates },
                });
            }
            Message::Ack { seq, view, updates } => {
                self.absorb(now, from, updates);
                if let Some(v) = view
                    && let Some(m) = self.members.get_mut(&from)
                {
                    m.view = v.into_vec();
                    m.view_at = Some(now);
                }
                if let Some(r) = self.relays.get(&seq).cloned() {
                    if r.target == from {
                        self.relays.remove(&seq);
                        self.deadlines.cancel(&Timer::Relay(seq));
                        self.out.push_back(Output::Send {
                            to: r.requester,
                            message: Message::IndirectAck {
                                seq: r.seq,
                                target: from,
                            },
                        });
                    } else {
                        self.counters.unexpected += 1;
                    }
                    return;
                }
                self.probe_answered(now, seq, from);
            }
            Message::PingReq { seq, target } => {
                if !self.members.contains_key(&target) || target == from {
                    self.out.push_back(Output::Send {
                        to: from,
                        message: Message::Nack { seq, target },
                    });
                    return;
                }
                if self.relays.len() >= self.config.max_relays {
                    self.counters.relays_refused += 1;
                    self.out.push_back(Output::Send {
                        to: from,
                        message: Message::Nack { seq, target },
                    });
                    return;
                }
                let mine = self.seq();
                self.relays.insert(
                    mine,
                    Relay {
                        requester: from,
                        seq,
                        target,
                    },
                );
                let deadline = now + self.scale(self.config.probe_timeout);
                self.deadlines.set(Timer::Relay(mine), deadline);
                self.send_ping(now, target, mine);
            }
            Message::IndirectAck { seq, target } => {
                if self
                    .probes
                    .get(&seq)
                    .is_some_and(|p| p.target == target && p.indirect)
                {
                    self.probe_answered(now, seq, target);
                } else {
                    self.counters.unexpected += 1;
                }
            }
            Message::Nack { seq, target } => match self.probes.get_mut(&seq) {
                Some(p) if p.target == target => p.nacks += 1,
                _ => self.counters.unexpected += 1,
            },
        }
    }

    fn probe_answered(&mut self, now: Timestamp, seq: u64, target: PeerId) {
        match self.probes.get(&seq) {
            Some(p) if p.target == target => {}
            _ => {
                // A late ack for a probe that already ended still proves the peer is alive.
                if self.clear_suspicion(&target) {
                    self.counters.cleared += 1;
                } else {
                    self.counters.unexpected += 1;
                }
                return;
            }
        }
        self.probes.remove(&seq);
        self.deadlines.cancel(&Timer::Probe(seq));
        if self.config.lifeguard {
            self.health = self.health.saturating_sub(1);
        }
        let next = self.next_round(now);
        if let Some(m) = self.members.get_mut(&target) {
            m.probing = None;
            // Keep the round rhythm.
            if m.next_probe <= now {
                m.next_probe = next;
            }
            let next_probe = m.next_probe;
            self.deadlines.set(Timer::NextProbe(target), next_probe);
            if self.clear_suspicion(&target) {
                self.counters.cleared += 1;
            }
        }
    }

    /// Ends the suspicion of `peer`, if any (and its timers); returns whether there was one.
    fn clear_suspicion(&mut self, peer: &PeerId) -> bool {
        let cleared = self
            .members
            .get_mut(peer)
            .is_some_and(|m| m.suspicion.take().is_some());
        if cleared {
            self.deadlines.cancel(&Timer::Verdict(*peer));
            self.deadlines.cancel(&Timer::SuspectPing(*peer));
            self.deadlines.cancel(&Timer::Announce(*peer));
        }
        cleared
    }

    /// Time passed: start probes, escalate to indirect probes, start and end suspicions. Each
    /// kind of timer runs in turn, as [`Timer`] lists them.
    fn run_timers(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        // Relays that timed out: tell the requester.
        let late = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Relay(seq) => Some(*seq),
            _ => None,
        });
        for s in late {
            if let Some(r) = self.relays.remove(&s) {
                self.out.push_back(Output::Send {
                    to: r.requester,
                    message: Message::Nack {
                        seq: r.seq,
                        target: r.target,
                    },
                });
            }
        }
        // Probes whose deadline passed.
        let due = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Probe(seq) => Some(*seq),
            _ => None,
        });
        for seq in due {
            let Some(p) = self.probes.get(&seq).cloned() else {
                continue;
            };
            if !p.indirect {
                self.go_indirect(now, seq, p.target, rng);
            } else {
                self.probes.remove(&seq);
                self.probe_failed(now, p);
            }
        }
        // Suspicions that ran out.
        let expired = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Verdict(peer) => Some(*peer),
            _ => None,
        });
        for peer in expired {
            let inc = self.members.get(&peer).map_or(0, |m| m.incarnation);
            self.remove(&peer);
            self.counters.verdicts += 1;
            self.enqueue(Update::Dead {
                peer,
                incarnation: inc,
            });
            self.out.push_back(Output::Dead { peer });
        }
        // Suspects are pinged every (unscaled) probe timeout until one answers or the verdict
        // falls: a suspicion needs many independent chances to be cleared before it stands.
        let ping_every = self.config.probe_timeout;
        let suspects = take_due(&mut self.deadlines, now, |t| match t {
            Timer::SuspectPing(peer) => Some(*peer),
            _ => None,
        });
        for target in suspects {
            self.deadlines
                .set(Timer::SuspectPing(target), now + ping_every);
            let seq = self.seq();
            self.send_ping(now, target, seq);
        }
        // Suspicions that outlived their first direct ping are spread.
        let announced = take_due(&mut self.deadlines, now, |t| match t {
            Timer::Announce(peer) => Some(*peer),
            _ => None,
        });
        for peer in announced {
            if let Some(m) = self.members.get(&peer)
                && m.suspicion.is_some()
            {
                let incarnation = m.incarnation;
                let by = Some(self.me);
                self.enqueue(Update::Suspect {
                    peer,
                    incarnation,
                    by,
                });
            }
        }
        // A refutation that waited for the end of the probe period.
        if !take_due(&mut self.deadlines, now, |t| {
            (*t == Timer::Refute).then_some(())
        })
        .is_empty()
            && let Some(claimed) = self.pending_refute.take()
        {
            self.refute(now, claimed);
        }
        // News that waited for its early round.
        if !take_due(&mut self.deadlines, now, |t| {
            (*t == Timer::Hurry).then_some(())
        })
        .is_empty()
        {
            self.hurry(now);
        }
        // New probes.
        let starting = take_due(&mut self.deadlines, now, |t| match t {
            Timer::NextProbe(peer) => Some(*peer),
            _ => None,
        });
        let next = self.next_round(now);
        let next_slow = self.next_round(
            now + TimeDelta::from_micros(
                self.config
                    .slow_probe_interval
                    .as_micros()
                    .saturating_sub(self.config.probe_interval.as_micros()),
            ),
        );
        let timeout = self.scale(self.config.probe_timeout);
        let slow_round = self.config.slow_probe_interval;
        for target in starting {
            if let Some(m) = self.members.get_mut(&target) {
                let slow = m.slow && m.busy_until <= now;
                m.next_probe = if slow { next_slow } else { next };
                // A slow member whose own PING came within the round is alive and probing
                // this node: one prober per pair is enough.
                if slow
                    && m.suspicion.is_none()
                    && m.pinged_at
                        .is_some_and(|t| now.saturating_since(t) < slow_round)
                {
                    self.deadlines.set(Timer::NextProbe(target), m.next_probe);
                    self.counters.probes_skipped += 1;
                    continue;
                }
            }
            self.start_probe(now, target, timeout);
        }
        self.hurry(now);
    }

    /// Probes `target` now: a PING, then the indirect probe if no ACK comes within `timeout`.
    fn start_probe(&mut self, now: Timestamp, target: PeerId, timeout: TimeDelta) {
        let seq = self.seq();
        if let Some(m) = self.members.get_mut(&target) {
            m.probing = Some(seq);
        }
        self.deadlines.cancel(&Timer::NextProbe(target));
        self.counters.probes += 1;
        self.probes.insert(
            seq,
            Probe {
                target,
                indirect: false,
                nacks: 0,
                helpers: 0,
            },
        );
        self.deadlines.set(Timer::Probe(seq), now + timeout);
        self.send_ping(now, target, seq);
    }

    fn go_indirect(&mut self, now: Timestamp, seq: u64, target: PeerId, rng: &mut machine::Rng) {
        self.counters.indirect += 1;
        let mut helpers: Vec<PeerId> = self
            .members
            .iter()
            .filter(|(p, m)| **p != target && m.view.contains(&target))
            .map(|(p, _)| *p)
            .collect();
        // A random k of them.
        let k = self.config.indirect_probes.min(helpers.len());
        for i in 0..k {
            let j = i + (rng.next_u64() % (helpers.len() - i) as u64) as usize;
            helpers.swap(i, j);
        }
        helpers.truncate(k);
        for h in &helpers {
            self.out.push_back(Output::Send {
                to: *h,
                message: Message::PingReq { seq, target },
            });
        }
        // And one more direct try.
        self.send_ping(now, target, seq);
        let deadline = now + self.scale(self.config.indirect_timeout);
        if let Some(p) = self.probes.get_mut(&seq) {
            p.indirect = true;
            p.helpers = helpers.len() as u32;
            self.deadlines.set(Timer::Probe(seq), deadline);
        }
    }

    fn probe_failed(&mut self, now: Timestamp, p: Probe) {
        // Lifeguard: if helpers answered (with nacks) the target is the problem; if nobody
        // answered at all, this node may be the slow one.
        if self.config.lifeguard && (p.helpers == 0 || p.nacks == 0) {
            self.health = (self.health + 1).min(self.config.max_health);
        }
        let Some(m) = self.members.get_mut(&p.target) else {
            return;
        };
        m.probing = None;
        self.deadlines.set(Timer::NextProbe(p.target), m.next_probe);
        if m.suspicion.is_none() {
            m.suspicion = Some(Suspicion {
                since: now,
                confirmations: BTreeSet::new(),
            });
            let end = now + suspicion_timeout(&self.config, 0);
            self.deadlines.set(Timer::Verdict(p.target), end);
            // The first direct ping goes at once; the suspicion is spread only if it is still
            // held `announce_after` later (most suspicions under loss end with that ping's ACK,
            // and each one spread makes the suspect sign and spread an ALIVE of ~3.4 KB).
            self.deadlines.set(Timer::SuspectPing(p.target), now);
            let at = now + self.config.announce_after;
            self.deadlines.set(Timer::Announce(p.target), at);
            self.counters.suspicions += 1;
        }
    }

    #[cfg(test)]
    fn suspicion_timeout(&self, confirmations: usize) -> TimeDelta {
        suspicion_timeout(&self.config, confirmations)
    }
}

impl StateMachine for Swim {
    type Input<'a> = Input<'a>;
    type Output = Output;
    type Reply = ();

    fn handle(&mut self, now: Timestamp, input: Input<'_>, rng: &mut machine::Rng) {
        match input {
            Input::AddMember { peer } => self.add(now, peer, rng),
            Input::Pace { peer, slow } => self.pace(now, peer, slow),
            Input::Busy { peer } => self.busy(now, peer),
            Input::RemoveMember { peer } => self.remove(&peer),
            Input::Message {
                from,
                message,
                active_view,
            } => self.receive(now, from, message, active_view),
            Input::PublishAlive {
                incarnation,
                signature,
            } => self.publish(incarnation, signature),
        }
        self.hurry(now);
    }

    fn handle_timeout(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        self.run_timers(now, rng);
    }

    fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

/// How long a suspicion with `confirmations` independent confirmations lasts.
fn suspicion_timeout(config: &Config, confirmations: usize) -> TimeDelta {
    let (min, max) = (
        config.suspicion_min.as_micros(),
        config.suspicion_max.as_micros(),
    );
    if !config.lifeguard || max <= min {
        return config.suspicion_max;
    }
    // max − (max − min) · log(C + 1) / log(K + 1), with integer steps (no floats in core).
    let k = u64::from(config.suspicion_confirmations.max(1));
    let c = (confirmations as u64).min(k);
    let frac_num = log2_fixed(c + 1);
    let frac_den = log2_fixed(k + 1).max(1);
    TimeDelta::from_micros(max - (max - min).saturating_mul(frac_num) / frac_den)
}

/// log2(x) in 1/1024 units, for small x (enough precision for a timeout curve).
fn log2_fixed(x: u64) -> u64 {
    if x <= 1 {
        return 0;
    }
    let int = 63 - u64::from(x.leading_zeros());
    // Linear interpolation between powers of two.
    let base = 1u64 << int;
    let frac = ((x - base) << 10) / base;
    (int << 10) + frac
}

#[cfg(test)]
mod bounds_tests;
#[cfg(test)]
mod tests;
