//! How SWIM's news spreads (SPEC.md §14.4): updates queued with a hop budget, piggybacked on
//! PINGs and ACKs (news about the receiver first), absorbed from others' frames, refuted when
//! they are about this node, and sent early when paired probing would make them wait (§14.1).

use super::{
    Gossip, MAX_QUEUE, MAX_SEEN, MAX_UPDATES, NO_ISSUER, Output, Queued, Swim, Timer, Update,
    Updates, suspicion_timeout,
};
use crate::crypto::SignatureBytes;
use crate::id::PeerId;
use crate::time::Timestamp;
use crate::wire::BoundedVec;
use alloc::vec::Vec;

impl Swim {
    /// The latest incarnation of `peer` this node knows it signed: a member's, or the highest
    /// of the ALIVEs still remembered as seen (0 when none).
    pub(super) fn known_incarnation(&self, peer: &PeerId) -> u64 {
        let member = self.members.get(peer).map_or(0, |m| m.incarnation);
        let seen = self
            .seen
            .range(
                (*peer, 0, 0, NO_ISSUER)
                    ..=(*peer, u64::MAX, u8::MAX, PeerId::from_bytes([0xff; 32])),
            )
            .filter(|(_, _, kind, _)| *kind == 0)
            .map(|(_, inc, _, _)| *inc)
            .max()
            .unwrap_or(0);
        member.max(seen)
    }

    /// The owner signed our ALIVE claim for `incarnation`: spread it.
    pub(super) fn publish(&mut self, incarnation: u64, signature: SignatureBytes) {
        if incarnation != self.incarnation {
            return;
        }
        self.alive = Some((incarnation, signature.clone()));
        self.enqueue(Update::Alive {
            peer: self.me,
            incarnation,
            signature,
        });
    }

    /// Our own news travels `gossip_hops`.
    pub(super) fn enqueue(&mut self, update: Update) {
        let hops = self.config.gossip_hops.saturating_sub(1);
        self.enqueue_with(update, Some(hops));
    }

    /// Queues `update` to be passed on, with `hops` further forwards for its receivers (`None`:
    /// do not pass it on, only remember having seen it).
    pub(super) fn enqueue_with(&mut self, update: Update, hops: Option<u8>) {
        let key = update.key();
        if !self.seen.insert(key) {
            return;
        }
        self.seen_order.push_back(key);
        if self.seen_order.len() > MAX_SEEN
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        let Some(hops) = hops else { return };
        if !self.news {
            // Spread early (see `hurry`): at once where the input allows it, else at the next
            // wake, which this asks for.
            self.news = true;
            let at = self
                .hurried_at
                .map_or(Timestamp::from_micros(0), |t| t + self.config.probe_timeout);
            self.deadlines.set(Timer::Hurry, at);
        }
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
        }
        self.queue.push_back(Queued {
            update,
            hops,
            remaining: self.config.retransmit_limit,
        });
    }

    /// Updates to piggyback on a frame to `to`: news about `to` itself first (the buddy system),
    /// then the least-sent others.
    pub(super) fn piggyback(&mut self, to: &PeerId) -> Updates {
        let mut picked: Vec<Gossip> = Vec::new();
        if self.config.lifeguard {
            for q in self.queue.iter() {
                if picked.len() < MAX_UPDATES && q.update.peer() == *to {
                    picked.push(Gossip {
                        update: q.update.clone(),
                        hops: q.hops,
                    });
                }
            }
        }
        let mut order: Vec<usize> = (0..self.queue.len()).collect();
        order.sort_by_key(|&i| core::cmp::Reverse(self.queue.get(i).map_or(0, |q| q.remaining)));
        for i in order {
            if picked.len() >= MAX_UPDATES {
                break;
            }
            if let Some(q) = self.queue.get_mut(i)
                && q.remaining > 0
                && !picked.iter().any(|g| g.update == q.update)
            {
                q.remaining -= 1;
                picked.push(Gossip {
                    update: q.update.clone(),
                    hops: q.hops,
                });
            }
        }
        self.queue.retain(|q| q.remaining > 0);
        BoundedVec::new(picked).unwrap_or_default()
    }

    pub(super) fn absorb(&mut self, now: Timestamp, from: PeerId, updates: Updates) {
        for Gossip { update: u, hops } in updates.into_vec() {
            let onward = hops.checked_sub(1);
            match u {
                Update::Alive {
                    peer, incarnation, ..
                } => {
                    if peer == self.me {
                        continue;
                    }
                    if let Some(m) = self.members.get_mut(&peer)
                        && incarnation > m.incarnation
                    {
                        m.incarnation = incarnation;
                        if self.clear_suspicion(&peer) {
                            self.counters.cleared += 1;
                        }
                    }
                    self.enqueue_with(u, onward);
                }
                Update::Suspect {
                    peer, incarnation, ..
                }
                | Update::Dead { peer, incarnation } => {
                    // Who suspects (a DEAD, or a SUSPECT without an issuer: the sender).
                    let issuer = match &u {
                        Update::Suspect { by: Some(by), .. } => *by,
                        _ => from,
                    };
                    if peer == self.me {
                        if incarnation > self.incarnation {
                            // Only this node issues its incarnations, and honest nodes pass
                            // on no claim above one they saw it sign: the sender lies.
                            self.out.push_back(Output::Evidence {
                                peer: from,
                                evidence: crate::score::Evidence::Abuse,
                            });
                        }
                        self.refute(now, incarnation);
                        continue;
                    }
                    // Honest nodes name the incarnation they know from the subject's signed
                    // ALIVEs; a claim above the latest this node knows cannot be checked, and a
                    // liar could use it to make the subject sign without end: neither acted on
                    // nor passed on.
                    if incarnation > self.known_incarnation(&peer) {
                        self.counters.unverifiable_claims += 1;
                        continue;
                    }
                    if let Some(m) = self.members.get_mut(&peer)
                        && incarnation >= m.incarnation
                    {
                        match m.suspicion.as_mut() {
                            // Beyond `suspicion_confirmations` more change nothing: not kept.
                            // Each issuer confirms once: our own suspicion passed back by a
                            // neighbour, or one issuer's heard from several, is not
                            // independent.
                            Some(s)
                                if issuer != self.me
                                    && s.confirmations.len()
                                        < self.config.suspicion_confirmations.max(1) as usize =>
                            {
                                s.confirmations.insert(issuer);
                                // More confirmations, a shorter suspicion.
                                let end = s.since
                                    + suspicion_timeout(&self.config, s.confirmations.len());
                                self.deadlines.set(Timer::Verdict(peer), end);
                            }
                            Some(_) => {}
                            // A hint: probe now rather than at the next period.
                            None if m.probing.is_none() => {
                                m.next_probe = now;
                                self.deadlines.set(Timer::NextProbe(peer), now);
                            }
                            None => {}
                        }
                    }
                    self.enqueue_with(u, onward);
                }
            }
        }
    }

    pub(super) fn refute(&mut self, now: Timestamp, claimed: u64) {
        if claimed > self.incarnation {
            // Nobody can know an incarnation this node never had (only it issues them, and
            // honest nodes pass on no claim above the latest it signed): a lie, ignored.
            self.counters.future_incarnations += 1;
            return;
        }
        let signed = self
            .alive
            .as_ref()
            .is_some_and(|(inc, _)| *inc == self.incarnation);
        if claimed < self.incarnation && signed {
            // The claimant has not seen our latest ALIVE: pass the same one on again.
            self.respread_alive(now);
            return;
        }
        // A signature is needed: for the next incarnation if this one is suspected, or for this
        // one if it was never signed (a node starts at an incarnation derived from its boot
        // count, which its peers learn only from an ALIVE). At most one per probe period,
        // whoever keeps suspecting this node; one asked for sooner is made when it ends.
        if let Some(t) = self.refuted_at
            && now.saturating_since(t) < self.config.probe_interval
        {
            self.counters.refutations_deferred += 1;
            self.pending_refute = Some(self.pending_refute.map_or(claimed, |c| c.max(claimed)));
            self.deadlines
                .set_earlier(Timer::Refute, t + self.config.probe_interval);
            return;
        }
        self.refuted_at = Some(now);
        if claimed == self.incarnation {
            self.incarnation = self.incarnation.saturating_add(1);
        }
        self.counters.refutations += 1;
        if self.config.lifeguard {
            self.health = (self.health + 1).min(self.config.max_health);
        }
        self.out.push_back(Output::Refute {
            incarnation: self.incarnation,
        });
    }

    /// Passes this node's latest ALIVE on again (its `retransmit_limit` afresh), unless it is
    /// still being passed on or was passed on again within the last probe period: a peer that
    /// keeps repeating an old suspicion costs no signature and a bounded number of bytes.
    fn respread_alive(&mut self, now: Timestamp) {
        let Some((incarnation, signature)) = self.alive.clone() else {
            return;
        };
        let me = self.me;
        let queued = self
            .queue
            .iter()
            .any(|q| matches!(q.update, Update::Alive { peer, .. } if peer == me));
        let recent = self
            .respread_at
            .is_some_and(|t| now.saturating_since(t) < self.config.probe_interval);
        if queued || recent {
            return;
        }
        self.respread_at = Some(now);
        if self.queue.len() >= MAX_QUEUE {
            self.queue.pop_front();
        }
        self.queue.push_back(Queued {
            update: Update::Alive {
                peer: me,
                incarnation,
                signature,
            },
            hops: self.config.gossip_hops.saturating_sub(1),
            remaining: self.config.retransmit_limit,
        });
        self.news = true;
        self.deadlines.set_earlier(Timer::Hurry, now);
    }

    /// News (a suspicion, a verdict, a refutation, a hint to pass on) rides on PINGs and ACKs,
    /// and with paired probing a link carries one exchange per round: news that waited for the
    /// rounds would reach the suspect's neighbourhood, and the confirmations that shorten its
    /// suspicion, late. So a node with news probes every full-pace member at once (an early
    /// round: members with a probe in flight or under suspicion are already pinged), at most
    /// once per `probe_timeout`; news queued sooner waits for that.
    pub(super) fn hurry(&mut self, now: Timestamp) {
        if !self.news {
            return;
        }
        if let Some(t) = self.hurried_at {
            let ready = t + self.config.probe_timeout;
            if ready > now {
                self.deadlines.set(Timer::Hurry, ready);
                return;
            }
        }
        self.news = false;
        self.hurried_at = Some(now);
        self.deadlines.cancel(&Timer::Hurry);
        let timeout = self.scale(self.config.probe_timeout);
        let targets: Vec<PeerId> = self
            .members
            .iter()
            .filter(|(_, m)| {
                (!m.slow || m.busy_until > now) && m.probing.is_none() && m.suspicion.is_none()
            })
            .map(|(p, _)| *p)
            .collect();
        for target in targets {
            self.start_probe(now, target, timeout);
        }
    }
}
