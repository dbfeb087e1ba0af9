//! The shuffle: a random walk carrying a sample of this node's views, answered by the walk's
//! end with a sample of its passive view. The answer goes over a connection the end already has
//! to the origin, or else back along the walk (SHUFFLE_BACK): a shuffle never opens a
//! connection. The pause between shuffles grows fourfold while the active view loses no one, up to
//! `shuffle_interval_max`, and drops back to `shuffle_interval` once a neighbour was lost.

use super::*;

/// Most walks a node remembers having forwarded (their way back); the oldest goes first.
pub(super) const MAX_SHUFFLE_ROUTES: usize = 32;

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl HyParView {
    /// The shuffle timer fired: start a walk and set the next one.
    pub(super) fn shuffle(&mut self, now: Timestamp, rng: &mut machine::Rng) {
        let view: Vec<PeerId> = self.active.keys().copied().collect();
        // Only a neighbour lost calls for fresher samples; one gained (a view filling up)
        // does not.
        let kept = self
            .shuffle_view
            .iter()
            .all(|p| self.active.contains_key(p));
        self.shuffle_pause = if kept && !view.is_empty() {
            self.shuffle_pause
                .saturating_mul(4)
                .max(self.config.shuffle_interval)
                .min(
                    self.config
                        .shuffle_interval_max
                        .max(self.config.shuffle_interval),
                )
        } else {
            self.config.shuffle_interval
        };
        self.shuffle_view = view;
        self.next_shuffle = now + jitter(rng, self.shuffle_pause);
        let Some(target) = self.random_active_except(&[], rng) else {
            return;
        };
        let active: Vec<PeerInfo> = self
            .active
            .iter()
            .filter(|(p, _)| **p != target)
            .map(|(p, a)| PeerInfo {
                peer: *p,
                addresses: a.clone(),
            })
            .collect();
        let mut nodes = sample(active, self.config.shuffle_active, rng);
        nodes.extend(self.sample_passive(self.config.shuffle_passive, rng));
        nodes.truncate(MAX_SHUFFLE_NODES);
        self.last_shuffle_sent = nodes.iter().map(|i| i.peer).collect();
        self.shuffle_awaited = true;
        let origin = PeerInfo {
            peer: self.me,
            addresses: self.my_addresses.clone(),
        };
        let nodes = BoundedVec::new(nodes).unwrap_or_default();
        self.out.push_back(Output::Send {
            to: target,
            message: Message::Shuffle {
                origin,
                ttl: self.config.shuffle_ttl,
                nodes,
            },
        });
    }

    /// A walk from `origin` came from `from` and goes on: remember the way back for
    /// `attempt_timeout`.
    pub(super) fn remember_route(&mut self, now: Timestamp, origin: PeerId, from: PeerId) {
        self.shuffle_routes.retain(|_, (_, until)| *until > now);
        if self.shuffle_routes.len() >= MAX_SHUFFLE_ROUTES
            && !self.shuffle_routes.contains_key(&origin)
            && let Some(oldest) = self
                .shuffle_routes
                .iter()
                .min_by_key(|(p, (_, until))| (*until, **p))
                .map(|(p, _)| *p)
        {
            self.shuffle_routes.remove(&oldest);
        }
        let until = now + self.config.attempt_timeout;
        self.shuffle_routes.insert(origin, (from, until));
    }

    /// The walk ended here: answer `origin` directly if connected to it, else back along the
    /// walk through `from`.
    pub(super) fn answer_shuffle(
        &mut self,
        from: PeerId,
        origin: PeerId,
        nodes: BoundedVec<PeerInfo, MAX_SHUFFLE_NODES>,
    ) {
        let (to, message) = if self.active.contains_key(&origin) || self.links.contains(&origin) {
            (origin, Message::ShuffleReply { nodes })
        } else {
            (from, Message::ShuffleBack { origin, nodes })
        };
        self.out.push_back(Output::Send { to, message });
    }

    /// A SHUFFLE_BACK: the answer to this node's walk, or one to pass on the way it came.
    pub(super) fn shuffle_back(
        &mut self,
        now: Timestamp,
        origin: PeerId,
        nodes: BoundedVec<PeerInfo, MAX_SHUFFLE_NODES>,
        rng: &mut machine::Rng,
    ) {
        if origin == self.me {
            self.shuffle_reply(nodes, rng);
            return;
        }
        match self.shuffle_routes.remove(&origin) {
            Some((back, until)) if until > now && self.links.contains(&back) => {
                self.out.push_back(Output::Send {
                    to: back,
                    message: Message::ShuffleBack { origin, nodes },
                });
            }
            _ => self.counters.unexpected += 1,
        }
    }

    /// The answer to this node's last walk: take its entries in, evicting first those sent.
    /// A reply nobody asked for, or a second one, is ignored: only a walk this node started
    /// may put a peer's sample into its passive view.
    pub(super) fn shuffle_reply(
        &mut self,
        nodes: BoundedVec<PeerInfo, MAX_SHUFFLE_NODES>,
        rng: &mut machine::Rng,
    ) {
        if !core::mem::take(&mut self.shuffle_awaited) {
            self.counters.not_neighbor += 1;
            return;
        }
        self.counters.shuffles += 1;
        let sent = core::mem::take(&mut self.last_shuffle_sent);
        let intake = self.shuffle_intake();
        for info in nodes.into_vec().into_iter().take(intake) {
            self.add_passive(info.peer, info.addresses, &sent, rng);
        }
    }
}
