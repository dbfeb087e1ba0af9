use super::*;
use crate::id::PeerId;
use crate::identity::record::Addresses;
use crate::membership::DownReason;
use crate::time::Timestamp;
use crate::wire::BoundedVec;
use alloc::vec::Vec;

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl HyParView {
    /// A message from `from`, over an established connection.
    pub(super) fn receive(
        &mut self,
        now: Timestamp,
        from: PeerId,
        sender_addresses: Option<Addresses>,
        message: Message,
        rng: &mut machine::Rng,
    ) {
        if self.left {
            return;
        }
        match message {
            Message::Join => {
                let accepted = Message::NeighborReply { accepted: true };
                if self.active.contains_key(&from) {
                    // A retransmitted JOIN: our answer was lost; answer again.
                    self.out.push_back(Output::Send {
                        to: from,
                        message: accepted,
                    });
                    return;
                }
                if !self.take_join_tokens_of(now, from) {
                    return; // the joiner asks again
                }
                if !self.admits(&from) {
                    self.out.push_back(Output::Disconnect { peer: from });
                    return;
                }
                let Some(addresses) = sender_addresses else {
                    self.counters.unexpected += 1;
                    return;
                };
                self.add_active(from, addresses.clone(), false, rng);
                self.out.push_back(Output::Send {
                    to: from,
                    message: accepted,
                });
                // Announce a joiner once per connection, however often it asks, and one
                // joiner per address group per `announce_interval` (§13.7).
                if self.joined_links.insert(from) && self.may_announce(now, &from, &addresses) {
                    let info = PeerInfo {
                        peer: from,
                        addresses,
                    };
                    let others: Vec<PeerId> =
                        self.active.keys().copied().filter(|p| *p != from).collect();
                    for p in others {
                        self.out.push_back(Output::Send {
                            to: p,
                            message: Message::ForwardJoin {
                                node: info.clone(),
                                ttl: self.config.arwl,
                            },
                        });
                    }
                }
            }
            Message::ForwardJoin { node, ttl } => {
                // A walk is no longer than this node would start one (a peer's ttl 255
                // would make it travel that far, §13.7).
                let ttl = ttl.min(self.config.arwl);
                if !self.active.contains_key(&from) {
                    // Walks travel active links: a stranger's FORWARD_JOIN is its own
                    // introduction of whomever it names (§13.7).
                    self.counters.not_neighbor += 1;
                    self.walk_from_stranger(from);
                    return;
                }
                if !self.take_join_tokens_of(now, from) {
                    return;
                }
                if node.peer == self.me {
                    return;
                }
                // The walk ends here (ttl spent, or nowhere else to go): ask the joiner to be
                // our neighbour. Otherwise remember it at PRWL and pass the walk on.
                let next = if ttl == 0 || self.active.len() <= 1 {
                    None
                } else {
                    if ttl == self.config.prwl {
                        self.add_passive(node.peer, node.addresses.clone(), &[], rng);
                    }
                    self.random_active_except(&[from, node.peer], rng)
                };
                match next {
                    Some(p) => self.out.push_back(Output::Send {
                        to: p,
                        message: Message::ForwardJoin {
                            node,
                            ttl: ttl.saturating_sub(1),
                        },
                    }),
                    None if self.active.contains_key(&node.peer) => {}
                    None if !self.admits(&node.peer) => {}
                    None => {
                        self.attempt(
                            now,
                            node.peer,
                            node.addresses,
                            Purpose::Neighbor(Priority::High),
                            Origin::Invited,
                            false,
                        );
                    }
                }
            }
            Message::Neighbor { priority } => {
                // High takes the place of an unprotected neighbour; where every place is
                // protected (`active_view` at most `reserved + 1`) there is none to take.
                let accept = self.active.contains_key(&from)
                    || self.active.len() < self.config.active_view
                    || (priority == Priority::High
                        && self.admits(&from)
                        && self
                            .eviction_victim(self.groups.get(&from).copied(), rng)
                            .is_some());
                self.answer_neighbor(from, sender_addresses, accept, accept, rng);
            }
            Message::NeighborReply { accepted } => {
                let Some(a) = self.take_attempt(&from) else {
                    if !accepted || !self.active.contains_key(&from) {
                        self.counters.unexpected += 1;
                    }
                    return;
                };
                if a.purpose == Purpose::Probe {
                    self.probe_answered(now, from, a.addresses, accepted, rng);
                    return;
                }
                if accepted {
                    if a.retry {
                        self.counters.retries_succeeded += 1;
                    }
                    self.repair_backoff = self.config.repair_interval;
                    self.lost.remove(&from);
                    self.arm_lost(from);
                    self.add_active(from, a.addresses, a.chosen, rng);
                } else {
                    self.counters.refused += 1;
                    self.add_passive(from, a.addresses, &[], rng);
                    if !self.active.contains_key(&from) {
                        self.out.push_back(Output::Disconnect { peer: from });
                    }
                    // Try another candidate later: back off while everyone is full.
                    let doubled = self
                        .repair_backoff
                        .max(self.config.repair_interval)
                        .saturating_mul(2);
                    self.repair_backoff = doubled.min(self.config.repair_backoff_max);
                    self.next_repair = self.next_repair.max(now + self.repair_backoff);
                }
            }
            Message::Disconnect => {
                if let Some(addresses) = self.remove_active(&from, false) {
                    self.out.push_back(Output::NeighborDown {
                        peer: from,
                        reason: DownReason::Replaced,
                    });
                    self.add_passive(from, addresses, &[], rng);
                    self.out.push_back(Output::Disconnect { peer: from });
                    self.repair(now, rng, true, &[from]);
                }
            }
            Message::Shuffle { origin, ttl, nodes } => {
                let ttl = ttl.min(self.config.shuffle_ttl);
                if origin.peer == self.me {
                    return;
                }
                if !self.active.contains_key(&from) {
                    self.counters.not_neighbor += 1;
                    self.walk_from_stranger(from);
                    return;
                }
                if ttl > 0
                    && self.active.len() > 1
                    && let Some(p) = self.random_active_except(&[from, origin.peer], rng)
                {
                    self.remember_route(now, origin.peer, from);
                    self.out.push_back(Output::Send {
                        to: p,
                        message: Message::Shuffle {
                            origin,
                            ttl: ttl - 1,
                            nodes,
                        },
                    });
                    return;
                }
                let reply = self.sample_passive(nodes.len().max(1), rng);
                let reply = BoundedVec::new(reply).unwrap_or_default();
                let sent: Vec<PeerId> = reply.iter().map(|i| i.peer).collect();
                let intake = self.shuffle_intake();
                for info in nodes.into_vec().into_iter().take(intake) {
                    self.add_passive(info.peer, info.addresses, &sent, rng);
                }
                self.answer_shuffle(from, origin.peer, reply);
                self.add_passive(origin.peer, origin.addresses, &[], rng);
            }
            Message::ShuffleReply { nodes } => self.shuffle_reply(nodes, rng),
            Message::ShuffleBack { origin, nodes } => self.shuffle_back(now, origin, nodes, rng),
            Message::Beacon { beacon } => self.component_beacon(now, from, beacon),
            Message::Probe { root } => self.probed(now, from, root, sender_addresses, rng),
        }
    }

    /// A walk (SHUFFLE, FORWARD_JOIN) came from `from`, outside the active view: evidence for
    /// its score (§13.8). An honest peer sends one only in the moment after it lost its place.
    fn walk_from_stranger(&mut self, from: PeerId) {
        self.out.push_back(Output::Evidence {
            peer: from,
            evidence: crate::score::Evidence::StrayWalk,
        });
    }

    /// Answers a NEIGHBOR (or a PROBE, which asks the same): `link` adds the sender to the
    /// active view first; a refused sender that this node is not dialling itself is let go.
    pub(super) fn answer_neighbor(
        &mut self,
        from: PeerId,
        addresses: Option<Addresses>,
        accept: bool,
        link: bool,
        rng: &mut machine::Rng,
    ) {
        if link {
            self.add_active(from, addresses.unwrap_or_default(), false, rng);
            self.take_attempt(&from);
        }
        self.out.push_back(Output::Send {
            to: from,
            message: Message::NeighborReply { accepted: accept },
        });
        if !accept && !self.attempts.contains_key(&from) {
            self.out.push_back(Output::Disconnect { peer: from });
        }
    }
}
