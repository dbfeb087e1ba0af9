//! SWIM driven alone (see main.rs for the input format and what is checked).

use super::*;

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
                1 => Update::Suspect { peer, incarnation, by: None },
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
            rtt_us: input.bool().then(|| u32::from(input.u16()) << 4),
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
    /// The incarnation whose ALIVE was last signed (published) for this node.
    signed: Option<u64>,
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
                swim::Output::Evidence { peer, .. } => {
                    assert_ne!(peer, me(), "evidence about itself");
                }
                swim::Output::Refute { incarnation } => {
                    // A refutation asks for a signature on a higher incarnation, or asks again
                    // for one that was never signed (the owner did not publish it).
                    assert!(
                        incarnation > self.last_refute
                            || (incarnation == self.last_refute
                                && self.signed != Some(incarnation)),
                        "a refutation neither raises the incarnation nor asks again for an \
                         unsigned one"
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
pub(super) fn run_swim(input: &mut Input<'_>) {
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
        signed: None,
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
                if incarnation == s.incarnation() {
                    c.signed = Some(incarnation);
                }
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
