//! The node's side of topics: subscriptions, discovery of a topic's first member, routing of
//! topic frames to each topic's HyParView, Plumtree and reconciler, and sharing of connections
//! and failure-detector verdicts between the node-level overlay and the topic overlays.

use super::{Event, Node, NodeError};
use crate::antientropy::{self, Reconciler};
use crate::broadcast::message::SignedMessage;
use crate::broadcast::plumtree::{self, Plumtree, SignatureValidator, Validator};
use crate::broadcast::topic::{MAX_SUBSCRIPTIONS, ReconcileMessage, Topic, TopicMessage};
use crate::broadcast::tree::{self, RootTree};
use crate::frame::Frame;
use crate::id::{MessageId, PeerId, TopicId};
use crate::machine::StateMachine;
use crate::membership::group::Source;
use crate::membership::hyparview::{self, HyParView, PeerInfo};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use rand_core::Rng;

/// A FIND walk's fields.
struct Walk {
    topic: TopicId,
    origin: PeerInfo,
    ttl: u8,
    merge: Option<PeerId>,
}

/// Invalid payloads a peer may send within [`STRIKE_WINDOW`] before its connection is closed.
const MAX_STRIKES: u32 = 3;
/// Most peers whose strikes are remembered at once.
const MAX_STRIKE_ENTRIES: usize = 1024;
/// The window over which strikes add up.
const STRIKE_WINDOW: crate::time::TimeDelta = crate::time::TimeDelta::from_secs(60);

impl Node {
    /// Subscribes to `topic`: joins its overlay (found through the node-level overlay) and
    /// delivers its messages as [`Event::Delivered`]. Subscribing twice changes nothing.
    pub fn subscribe(&mut self, now: Timestamp, topic: TopicId) -> Result<(), NodeError> {
        let now = self.advance(now);
        if self.topics.contains_key(&topic) {
            return Ok(());
        }
        if self.topics.len() >= MAX_SUBSCRIPTIONS {
            return Err(NodeError::TooManySubscriptions {
                max: MAX_SUBSCRIPTIONS,
            });
        }
        let me = self.identity.peer_id();
        let cfg = &self.config.topics;
        let hyparview = HyParView::new(
            cfg.hyparview.clone(),
            me,
            self.record.addresses.clone(),
            now,
            &mut self.rng,
        );
        let reconciler = Reconciler::new(cfg.antientropy.clone(), now, &mut self.rng);
        let first_beacon = now + TimeDelta::from_micros(self.rng.next_u64() % 1_000_000);
        let beacons = RootTree::new(cfg.beacon.clone(), me, now, first_beacon);
        let plumtree = Plumtree::new(cfg.plumtree.clone(), topic);
        let validator: Box<dyn Validator> =
            Box::new(SignatureValidator(self.config.crypto.clone()));
        self.topics.insert(
            topic,
            Box::new(Topic {
                hyparview,
                plumtree,
                reconciler,
                validator,
                sequence: self.boot_count << 32,
                next_discovery: now,
                discovery_backoff: cfg.discovery_backoff_min,
                beacons,
                next_merge_walk: now + cfg.discovery_backoff_min,
                merge_walk_backoff: cfg.discovery_backoff_min,
                followed_root: me,
            }),
        );
        self.advertise_subscriptions();
        self.discover(now, topic);
        self.drain_protocols(now);
        Ok(())
    }

    /// Leaves `topic`'s overlay; its messages are no longer delivered or carried.
    pub fn unsubscribe(&mut self, now: Timestamp, topic: TopicId) -> Result<(), NodeError> {
        let now = self.advance(now);
        let Some(mut t) = self.topics.remove(&topic) else {
            return Err(NodeError::NotSubscribed { topic });
        };
        let members: Vec<PeerId> = t.hyparview.active().copied().collect();
        t.hyparview
            .handle(now, hyparview::Input::Leave, &mut self.rng);
        for peer in members {
            self.send_frame(peer, &Frame::Topic(TopicMessage::Left { topic }));
            self.member_down(&peer);
            if let Some(l) = self.links.get_mut(&peer) {
                l.last_used = now;
            }
        }
        self.advertise_subscriptions();
        self.drain_protocols(now);
        Ok(())
    }

    /// Replaces the validator of a subscribed topic (the default checks the author's signature).
    pub fn set_validator(
        &mut self,
        topic: TopicId,
        validator: Box<dyn Validator>,
    ) -> Result<(), NodeError> {
        let t = self
            .topics
            .get_mut(&topic)
            .ok_or(NodeError::NotSubscribed { topic })?;
        t.validator = validator;
        Ok(())
    }

    /// Publishes `payload` on a subscribed topic: signs it once and broadcasts it. Returns its
    /// id. Fails, naming the limit, if the payload is over
    /// [`MAX_PAYLOAD`](crate::broadcast::message::MAX_PAYLOAD).
    pub fn publish(
        &mut self,
        now: Timestamp,
        topic: TopicId,
        payload: &[u8],
    ) -> Result<MessageId, NodeError> {
        let now = self.advance(now);
        let t = self
            .topics
            .get_mut(&topic)
            .ok_or(NodeError::NotSubscribed { topic })?;
        let message = SignedMessage::publish(&self.identity, topic, t.sequence, now, payload)
            .map_err(NodeError::Message)?;
        t.sequence += 1;
        let id = message.id();
        let author_key = self.identity.verifying_key().clone();
        t.plumtree.handle(
            now,
            plumtree::Input::Publish {
                message,
                author_key,
            },
            &mut self.rng,
        );
        t.reconciler
            .handle(now, antientropy::Input::Changed, &mut self.rng);
        self.counters.published += 1;
        self.drain_protocols(now);
        Ok(id)
    }

    /// Tells every node-level neighbour which topics this node subscribes to.
    fn advertise_subscriptions(&mut self) {
        let peers: Vec<PeerId> = self.hyparview.active().copied().collect();
        for peer in peers {
            self.send_subscriptions(peer);
        }
    }

    pub(super) fn send_subscriptions(&mut self, peer: PeerId) {
        let topics: Vec<TopicId> = self.topics.keys().copied().collect();
        if let Ok(topics) = BoundedVec::new(topics) {
            self.send_frame(peer, &Frame::Topic(TopicMessage::Subscriptions { topics }));
        }
    }

    /// Node-level neighbours (but `avoid`) that said they subscribe to `topic`.
    fn subscribed_neighbors(&self, topic: TopicId, avoid: &[PeerId]) -> Vec<PeerId> {
        self.hyparview
            .active()
            .filter(|p| !avoid.contains(p))
            .filter(|p| {
                self.neighbor_topics
                    .get(*p)
                    .is_some_and(|s| s.contains(&topic))
            })
            .copied()
            .collect()
    }

    fn my_info(&self) -> PeerInfo {
        PeerInfo {
            peer: self.identity.peer_id(),
            addresses: self.record.addresses.clone(),
        }
    }

    fn info_of(&self, peer: PeerId) -> Option<PeerInfo> {
        self.records.get(&peer).map(|r| PeerInfo {
            peer,
            addresses: r.addresses.clone(),
        })
    }

    /// One discovery round for a topic in which this node is alone: join through a node-level
    /// neighbour that subscribes to it, or send FIND walks.
    fn discover(&mut self, now: Timestamp, topic: TopicId) {
        let Some(t) = self.topics.get_mut(&topic) else {
            return;
        };
        if !(t.alone() && t.hyparview.attempts() == 0) {
            return;
        }
        t.next_discovery = now + t.discovery_backoff;
        t.discovery_backoff = (t.discovery_backoff + t.discovery_backoff)
            .min(self.config.topics.discovery_backoff_max);
        let subscribed = self.subscribed_neighbors(topic, &[]);
        if !subscribed.is_empty() {
            let pick = (self.rng.next_u64() % subscribed.len() as u64) as usize;
            if let Some(info) = subscribed.get(pick).and_then(|p| self.info_of(*p))
                && let Some(t) = self.topics.get_mut(&topic)
            {
                let input = hyparview::Input::Join {
                    contacts: alloc::vec![info],
                };
                t.hyparview.handle(now, input, &mut self.rng);
                self.counters.topic_joins += 1;
                return;
            }
        }
        let neighbors: Vec<PeerId> = self.hyparview.active().copied().collect();
        if neighbors.is_empty() {
            return;
        }
        let origin = self.my_info();
        let ttl = self.config.topics.find_ttl;
        for _ in 0..self.config.topics.find_walks {
            let pick = (self.rng.next_u64() % neighbors.len() as u64) as usize;
            if let Some(p) = neighbors.get(pick) {
                self.counters.finds_sent += 1;
                self.send_frame(
                    *p,
                    &Frame::Topic(TopicMessage::Find {
                        topic,
                        origin: origin.clone(),
                        ttl,
                        merge: None,
                    }),
                );
            }
        }
    }

    pub(super) fn on_topic_frame(&mut self, now: Timestamp, from: PeerId, message: TopicMessage) {
        match message {
            TopicMessage::Subscriptions { topics } => {
                let set: BTreeSet<TopicId> = topics.iter().copied().collect();
                let ours: Vec<TopicId> = self
                    .topics
                    .iter()
                    .filter(|(id, t)| set.contains(id) && t.alone())
                    .map(|(id, _)| *id)
                    .collect();
                self.neighbor_topics.insert(from, set);
                for topic in ours {
                    if let Some(t) = self.topics.get_mut(&topic) {
                        t.discovery_backoff = self.config.topics.discovery_backoff_min;
                    }
                    self.discover(now, topic);
                }
            }
            TopicMessage::Find {
                topic,
                origin,
                ttl,
                merge,
            } => self.on_find(
                now,
                from,
                Walk {
                    topic,
                    origin,
                    ttl,
                    merge,
                },
            ),
            TopicMessage::Membership { topic, message } => {
                let addresses = self.records.get(&from).map(|r| r.addresses.clone());
                let scores = self
                    .topics
                    .get(&topic)
                    .and_then(|t| self.scores_for(from, &message, t.hyparview.active().copied()));
                match self.topics.get_mut(&topic) {
                    Some(t) => {
                        if let Some(scores) = scores {
                            let admit = self.scores.config().admit_threshold;
                            t.hyparview.note_scores(admit, scores);
                        }
                        let input = hyparview::Input::Message {
                            from,
                            addresses,
                            message,
                        };
                        t.hyparview.handle(now, input, &mut self.rng);
                    }
                    None => self.not_a_member(from, topic),
                }
            }
            TopicMessage::Left { topic } => {
                if let Some(s) = self.neighbor_topics.get_mut(&from) {
                    s.remove(&topic);
                }
                if let Some(t) = self.topics.get_mut(&topic) {
                    let input = hyparview::Input::Left { peer: from };
                    t.hyparview.handle(now, input, &mut self.rng);
                }
            }
            TopicMessage::Beacon { topic, beacon } => match self.topics.get_mut(&topic) {
                Some(t) if t.hyparview.is_active(&from) => {
                    let input = tree::Input::Beacon { from, beacon };
                    StateMachine::handle(&mut t.beacons, now, input, &mut self.rng);
                }
                Some(_) => self.counters.topic_frames_unsubscribed += 1,
                None => self.not_a_member(from, topic),
            },
            TopicMessage::Broadcast { topic, message } => match self.topics.get_mut(&topic) {
                Some(t) => {
                    let validator = super::private::KindValidator {
                        application: &*t.validator,
                        crypto: &*self.config.crypto,
                        now,
                    };
                    let input = plumtree::Input::Message {
                        from,
                        message,
                        validator: &validator,
                    };
                    t.plumtree.handle(now, input, &mut self.rng);
                }
                None => self.not_a_member(from, topic),
            },
        }
    }

    /// A topic frame for a topic this node is not in: say so, so the sender drops it.
    fn not_a_member(&mut self, from: PeerId, topic: TopicId) {
        self.counters.topic_frames_unsubscribed += 1;
        self.send_frame(from, &Frame::Topic(TopicMessage::Left { topic }));
    }

    fn on_find(&mut self, now: Timestamp, from: PeerId, walk: Walk) {
        let Walk {
            topic,
            origin,
            ttl,
            merge,
        } = walk;
        let group = self.links.get(&from).and_then(|l| l.group);
        if !self.find_limits.take(now, Source::of(group, from)) {
            self.counters.finds_over_source_budget += 1;
            return;
        }
        if origin.peer == self.identity.peer_id() || !self.find_tokens.take(now) {
            self.counters.finds_dropped += 1;
            return;
        }
        if let Some(t) = self.topics.get_mut(&topic) {
            let Some(their_root) = merge else {
                // A seeker alone in the topic: bring it in as a JOIN would.
                let input = hyparview::Input::Introduce { origin };
                if t.hyparview.handle(now, input, &mut self.rng) {
                    self.counters.finds_answered += 1;
                }
                return;
            };
            if ttl == 0 {
                // The end of a merge walk: link the seeker if it is in another part.
                let input = hyparview::Input::Link { peer: origin };
                if their_root != t.beacons.root() && t.hyparview.handle(now, input, &mut self.rng) {
                    self.counters.merge_links += 1;
                }
                return;
            }
        }
        let avoid = [from, origin.peer];
        let subscribed = self.subscribed_neighbors(topic, &avoid);
        // A discovery walk heads for a subscriber at once; a merge walk wanders its full length
        // first (a nearby member is likely in the seeker's own part), then takes one more hop
        // to a subscriber if it did not end on one.
        let candidates: Vec<PeerId> = if ttl == 0 {
            if merge.is_none() {
                return;
            }
            subscribed
        } else if subscribed.is_empty() || merge.is_some() {
            self.hyparview
                .active()
                .filter(|p| !avoid.contains(p))
                .copied()
                .collect()
        } else {
            subscribed
        };
        if candidates.is_empty() {
            return;
        }
        let pick = (self.rng.next_u64() % candidates.len() as u64) as usize;
        if let Some(next) = candidates.get(pick).copied() {
            self.send_frame(
                next,
                &Frame::Topic(TopicMessage::Find {
                    topic,
                    origin,
                    ttl: ttl.saturating_sub(1),
                    merge,
                }),
            );
        }
    }

    /// The node-level overlay changed (a new neighbour): parts of a topic's overlay may now be
    /// reachable from each other, so each topic sends a merge walk soon (after
    /// `discovery_backoff_min`), then goes on at no less than `discovery_backoff_max`, doubling.
    pub(super) fn restart_merge_walks(&mut self, now: Timestamp) {
        let cfg = &self.config.topics;
        for t in self.topics.values_mut() {
            t.merge_walk_backoff = t
                .merge_walk_backoff
                .max(cfg.discovery_backoff_max)
                .min(cfg.merge_walk_max);
            t.next_merge_walk = t.next_merge_walk.min(now + cfg.discovery_backoff_min);
        }
    }

    /// Sends one merge walk for `topic` to a random node-level neighbour.
    fn send_merge_walk(&mut self, topic: TopicId, root: PeerId) {
        let neighbors: Vec<PeerId> = self.hyparview.active().copied().collect();
        let pick = (self.rng.next_u64() % neighbors.len().max(1) as u64) as usize;
        let Some(p) = neighbors.get(pick).copied() else {
            return;
        };
        self.counters.finds_sent += 1;
        let origin = self.my_info();
        let ttl = self.config.topics.find_ttl;
        self.send_frame(
            p,
            &Frame::Topic(TopicMessage::Find {
                topic,
                origin,
                ttl,
                merge: Some(root),
            }),
        );
    }

    pub(super) fn on_reconcile_frame(&mut self, now: Timestamp, from: PeerId, m: ReconcileMessage) {
        let Some(t) = self.topics.get_mut(&m.topic) else {
            self.not_a_member(from, m.topic);
            return;
        };
        if !t.hyparview.is_active(&from) {
            self.counters.topic_frames_unsubscribed += 1;
            return;
        }
        // A DIGEST covers the ids up to the cutoff it states, so that both sides hash the same
        // stretch of time.
        let cutoff = match &m.message {
            antientropy::Message::Digest { cutoff, .. } => *cutoff,
            _ => now - self.config.topics.antientropy.settle,
        };
        let ids: Vec<MessageId> = t.plumtree.retained_ids_before(cutoff).copied().collect();
        let plumtree = &t.plumtree;
        let input = antientropy::Input::Message {
            from,
            message: m.message,
            ids: &ids,
            seen: &|id| plumtree.has_seen(id),
        };
        t.reconciler.handle(now, input, &mut self.rng);
    }

    /// Runs every topic's timers and discovery.
    pub(super) fn topics_timeout(&mut self, now: Timestamp) {
        self.strikes
            .retain(|_, (_, since)| now < *since + STRIKE_WINDOW);
        // Only topics with something due: an idle topic costs nothing per node timer.
        for topic in self.topics.maybe_due(now) {
            let Some(t) = self.topics.get(&topic) else {
                continue;
            };
            if Self::topic_deadline(t).is_none_or(|due| due > now) {
                continue;
            }
            let Some(t) = self.topics.get_mut(&topic) else {
                continue;
            };
            t.hyparview.handle_timeout(now, &mut self.rng);
            StateMachine::handle_timeout(&mut t.plumtree, now, &mut self.rng);
            // The id and neighbour lists a round needs are built only when the reconciler
            // has work due, not on every timer of the node.
            if t.reconciler.poll_timeout().is_some_and(|due| due <= now) {
                let neighbors: Vec<PeerId> = t.hyparview.active().copied().collect();
                let cutoff = now - self.config.topics.antientropy.settle;
                let ids: Vec<MessageId> = t.plumtree.retained_ids_before(cutoff).copied().collect();
                let input = antientropy::Input::Timers {
                    neighbors: &neighbors,
                    ids: &ids,
                };
                t.reconciler.handle(now, input, &mut self.rng);
            }
            StateMachine::handle_timeout(&mut t.beacons, now, &mut self.rng);
            if now >= t.next_merge_walk {
                t.next_merge_walk = now + t.merge_walk_backoff;
                t.merge_walk_backoff = (t.merge_walk_backoff + t.merge_walk_backoff)
                    .min(self.config.topics.merge_walk_max);
                if !t.alone() {
                    let root = t.beacons.root();
                    self.send_merge_walk(topic, root);
                }
            }
            let Some(t) = self.topics.get_mut(&topic) else {
                continue;
            };
            if t.alone() && now >= t.next_discovery {
                self.discover(now, topic);
            }
        }
    }

    /// Discovery for topics left alone while the timers ran (a topic neighbour or a join attempt
    /// went away when the protocols' outputs were carried out): their discovery time may have
    /// passed, and no timer may be left due after `handle_timeout` (found by fuzzing).
    pub(super) fn discover_due(&mut self, now: Timestamp) {
        // Such a topic's deadline is its discovery time, so only topics that may be due are
        // looked at.
        let due: Vec<TopicId> = self
            .topics
            .maybe_due(now)
            .into_iter()
            .filter(|topic| {
                self.topics.get(topic).is_some_and(|t| {
                    t.alone() && t.hyparview.attempts() == 0 && t.next_discovery <= now
                })
            })
            .collect();
        for topic in due {
            self.discover(now, topic);
        }
    }

    /// The earliest timer of any topic.
    pub(super) fn topics_poll_timeout(&self) -> Option<Timestamp> {
        self.topics.poll_timeout(Self::topic_deadline)
    }

    /// The earliest timer of one topic.
    pub(super) fn topic_deadline(t: &Topic) -> Option<Timestamp> {
        [
            t.hyparview.poll_timeout(),
            t.plumtree.poll_timeout(),
            t.reconciler.poll_timeout(),
            (t.alone() && t.hyparview.attempts() == 0).then_some(t.next_discovery),
            Some(t.next_merge_walk),
            t.beacons.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether any overlay (node-level or a topic's) wants the connection to `peer`.
    pub(super) fn link_wanted(&self, peer: &PeerId) -> bool {
        self.hyparview.wants_link(peer)
            || self
                .topics
                .wants_link(peer, |t| t.hyparview.wants_link(peer))
            || self.private.wants_link(peer)
    }

    /// A connection's handshake completed: every topic overlay may use it.
    pub(super) fn topics_link_up(&mut self, now: Timestamp, peer: PeerId) {
        let group = self.links.get(&peer).and_then(|l| l.group);
        for t in self.topics.values_mut() {
            if let Some(g) = group {
                t.hyparview.note_group(peer, g);
            }
            let input = hyparview::Input::LinkUp { peer };
            t.hyparview.handle(now, input, &mut self.rng);
        }
    }

    /// A connection is gone, for every overlay.
    pub(super) fn link_down(&mut self, now: Timestamp, peer: PeerId) {
        let input = hyparview::Input::LinkDown { peer };
        self.hyparview.handle(now, input.clone(), &mut self.rng);
        self.neighbor_topics.remove(&peer);
        for t in self.topics.values_mut() {
            t.hyparview.handle(now, input.clone(), &mut self.rng);
        }
    }

    /// The failure detector declared `peer` dead: every overlay drops it.
    pub(super) fn peer_failed(&mut self, now: Timestamp, peer: PeerId) {
        let input = hyparview::Input::Failed { peer };
        self.hyparview.handle(now, input.clone(), &mut self.rng);
        for t in self.topics.values_mut() {
            t.hyparview.handle(now, input.clone(), &mut self.rng);
        }
    }

    /// This node cut `peer` off for misbehaving: every overlay forgets it (§13.7).
    pub(super) fn peer_misbehaved(&mut self, now: Timestamp, peer: PeerId) {
        let input = hyparview::Input::Misbehaved { peer };
        self.hyparview.handle(now, input.clone(), &mut self.rng);
        for t in self.topics.values_mut() {
            t.hyparview.handle(now, input.clone(), &mut self.rng);
        }
    }

    /// `peer` said goodbye for good.
    pub(super) fn peer_left(&mut self, now: Timestamp, peer: PeerId) {
        let input = hyparview::Input::Left { peer };
        self.hyparview.handle(now, input.clone(), &mut self.rng);
        for t in self.topics.values_mut() {
            t.hyparview.handle(now, input.clone(), &mut self.rng);
        }
    }

    /// `peer` became a neighbour in some overlay: the failure detector probes it while any
    /// overlay keeps it.
    pub(super) fn member_up(&mut self, now: Timestamp, peer: PeerId) {
        let refs = self.member_refs.entry(peer).or_insert(0);
        *refs += 1;
        if *refs == 1 {
            let input = crate::membership::swim::Input::AddMember { peer };
            self.swim.handle(now, input, &mut self.rng);
        }
        self.pace_member(now, peer);
    }

    /// A member that is a node-level neighbour is probed every round; one that only topic
    /// overlays keep, at the slow pace (SPEC.md §10).
    pub(super) fn pace_member(&mut self, now: Timestamp, peer: PeerId) {
        if self.member_refs.contains_key(&peer) {
            let slow = !self.hyparview.is_active(&peer);
            let input = crate::membership::swim::Input::Pace { peer, slow };
            self.swim.handle(now, input, &mut self.rng);
        }
    }

    pub(super) fn member_down(&mut self, peer: &PeerId) {
        if let Some(refs) = self.member_refs.get_mut(peer) {
            *refs = refs.saturating_sub(1);
            if *refs == 0 {
                self.member_refs.remove(peer);
                let input = crate::membership::swim::Input::RemoveMember { peer: *peer };
                self.swim.handle(self.now, input, &mut self.rng);
            }
        }
    }

    /// Carries out what the topics' state machines asked for. Returns whether anything was.
    pub(super) fn drain_topics(&mut self, now: Timestamp) -> bool {
        let mut progressed = false;
        // Only topics handed out mutably since the last settle can have outputs waiting; they
        // are drained in id order, a topic that one of them touches in the same pass.
        let mut last: Option<TopicId> = None;
        while let Some(topic) = self.topics.next_dirty_after(last) {
            last = Some(topic);
            while let Some(t) = self.topics.get_mut(&topic) {
                if let Some(out) = t.hyparview.poll() {
                    progressed = true;
                    self.on_topic_membership_output(now, topic, out);
                } else if let Some(out) = t.plumtree.poll() {
                    progressed = true;
                    self.on_plumtree_output(now, topic, out);
                } else if let Some(out) = t.reconciler.poll() {
                    progressed = true;
                    self.on_reconciler_output(now, topic, out);
                } else if let Some(out) = StateMachine::poll(&mut t.beacons) {
                    match out {
                        tree::Output::Send { to, beacon } => {
                            progressed = true;
                            self.send_frame(
                                to,
                                &Frame::Topic(TopicMessage::Beacon { topic, beacon }),
                            );
                        }
                        tree::Output::Tree { links } => {
                            let root = t.beacons.root();
                            if root > t.followed_root {
                                // A root was lost (this node or a neighbour took over): the
                                // part that follows the new one may be cut off from another
                                // that still follows something else, so merge walks start
                                // again soon.
                                let soon = self.config.topics.discovery_backoff_min;
                                t.merge_walk_backoff = soon;
                                t.next_merge_walk = t.next_merge_walk.min(now + soon);
                            }
                            t.followed_root = root;
                            if self.config.topics.beacon_tree {
                                let input = plumtree::Input::SetTree(&links);
                                t.plumtree.handle(now, input, &mut self.rng);
                                let input = plumtree::Input::Parent(t.beacons.parent());
                                t.plumtree.handle(now, input, &mut self.rng);
                            }
                        }
                    }
                } else {
                    break;
                }
            }
        }
        progressed
    }

    fn on_topic_membership_output(
        &mut self,
        now: Timestamp,
        topic: TopicId,
        out: hyparview::Output,
    ) {
        match out {
            hyparview::Output::Send { to, message } => self.send_frame(
                to,
                &Frame::Topic(TopicMessage::Membership { topic, message }),
            ),
            hyparview::Output::Connect { peer, addresses } => {
                let group = self.links.get(&peer).and_then(|l| l.group);
                if self.link_ready_or_dial(now, peer, addresses)
                    && let Some(t) = self.topics.get_mut(&topic)
                {
                    if let Some(g) = group {
                        t.hyparview.note_group(peer, g);
                    }
                    let input = hyparview::Input::LinkUp { peer };
                    t.hyparview.handle(now, input, &mut self.rng);
                }
            }
            hyparview::Output::Disconnect { peer } => {
                // The topic is done with the link; the connection closes once no overlay uses it
                // (after `unused_link_timeout`).
                if let Some(t) = self.topics.get_mut(&topic) {
                    let input = hyparview::Input::LinkDown { peer };
                    t.hyparview.handle(now, input, &mut self.rng);
                }
                if let Some(l) = self.links.get_mut(&peer) {
                    l.last_used = now;
                }
            }
            hyparview::Output::NeighborUp { peer } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.plumtree
                        .handle(now, plumtree::Input::NeighborUp(peer), &mut self.rng);
                    if let Some(rtt) = self.links.get(&peer).and_then(|l| l.rtt) {
                        let input = plumtree::Input::Rtt { peer, rtt };
                        t.plumtree.handle(now, input, &mut self.rng);
                    }
                    let input = tree::Input::NeighborUp(peer);
                    StateMachine::handle(&mut t.beacons, now, input, &mut self.rng);
                    t.reconciler
                        .handle(now, antientropy::Input::NeighborUp(peer), &mut self.rng);
                    t.discovery_backoff = self.config.topics.discovery_backoff_min;
                }
                self.member_up(now, peer);
                if let Some(l) = self.links.get_mut(&peer) {
                    l.last_used = now;
                }
                self.push_event(Event::TopicNeighborUp { topic, peer });
            }
            hyparview::Output::NeighborDown { peer, .. } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.plumtree
                        .handle(now, plumtree::Input::NeighborDown(peer), &mut self.rng);
                    t.reconciler
                        .handle(now, antientropy::Input::NeighborDown(peer), &mut self.rng);
                    let input = tree::Input::NeighborDown(peer);
                    StateMachine::handle(&mut t.beacons, now, input, &mut self.rng);
                    if t.alone() {
                        t.next_discovery = now + t.discovery_backoff;
                    }
                }
                self.member_down(&peer);
                if let Some(l) = self.links.get_mut(&peer) {
                    l.last_used = now;
                }
                self.push_event(Event::TopicNeighborDown { topic, peer });
            }
            hyparview::Output::Evidence { peer, evidence } => {
                self.note_evidence(now, peer, evidence)
            }
        }
    }

    fn on_plumtree_output(&mut self, now: Timestamp, topic: TopicId, out: plumtree::Output) {
        match out {
            plumtree::Output::Send { to, message } => {
                if matches!(message, plumtree::Message::Gossip(_)) && !self.hyparview.is_active(&to)
                {
                    // A busy topic link is probed at the full pace (SPEC.md §14.1).
                    let input = crate::membership::swim::Input::Busy { peer: to };
                    self.swim.handle(now, input, &mut self.rng);
                }
                self.send_frame(
                    to,
                    &Frame::Topic(TopicMessage::Broadcast { topic, message }),
                )
            }
            plumtree::Output::Deliver {
                message,
                id,
                hops,
                author_key,
            } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    t.reconciler
                        .handle(now, antientropy::Input::Changed, &mut self.rng);
                }
                if message.kind.is_application() {
                    if self.presence_delivery(now, topic, &message) {
                        return;
                    }
                    self.push_event(Event::Delivered {
                        topic,
                        author: message.author,
                        id,
                        sequence: message.sequence,
                        timestamp: message.timestamp,
                        payload: message.payload.to_bytes(),
                        hops,
                    })
                } else {
                    self.on_private_delivery(now, topic, message, author_key);
                }
            }
            plumtree::Output::Penalise { peer } => {
                self.counters.invalid_payloads += 1;
                if !self.strikes.contains_key(&peer) && self.strikes.len() >= MAX_STRIKE_ENTRIES {
                    // Full: forget the peer whose window started first (a peer that struck
                    // once and went away must not hold memory for ever).
                    let oldest = self
                        .strikes
                        .iter()
                        .min_by_key(|(_, (_, t))| *t)
                        .map(|(p, _)| *p);
                    if let Some(oldest) = oldest {
                        self.strikes.remove(&oldest);
                    }
                }
                let strikes = self.strikes.entry(peer).or_insert((0, now));
                if now >= strikes.1 + STRIKE_WINDOW {
                    *strikes = (0, now);
                }
                strikes.0 += 1;
                if strikes.0 >= MAX_STRIKES {
                    self.strikes.remove(&peer);
                    self.counters.peers_penalised += 1;
                    self.cut_off(now, peer);
                } else {
                    self.note_evidence(now, peer, crate::score::Evidence::Invalid);
                }
            }
            plumtree::Output::Evidence { peer, evidence } => {
                self.note_evidence(now, peer, evidence)
            }
            plumtree::Output::Archive {
                payload,
                id,
                expires,
            } => {
                // An encoding failure cannot happen for a payload that was decoded or signed
                // here; if it did, the message is only not archived.
                if let Ok(record) = crate::wire::codec::to_vec(&payload) {
                    self.push_event(Event::Archived {
                        topic,
                        author: payload.message.author,
                        id,
                        expires,
                        record: bytes::Bytes::from(record),
                    });
                }
            }
        }
    }

    /// Takes back one message an anchor stored from [`Event::Archived`] before a restart: it is
    /// checked like a received one (its topic must be subscribed, it must be inside the
    /// retention window and pass the topic's validator), then retained and served to peers that
    /// lack it (GRAFT, IWANT, reconciliation), never delivered again (SPEC.md §15.7).
    pub fn restore_message(
        &mut self,
        now: Timestamp,
        record: &[u8],
    ) -> Result<MessageId, NodeError> {
        let now = self.advance(now);
        let payload: plumtree::Payload =
            crate::wire::codec::from_slice(record).map_err(NodeError::State)?;
        let topic = payload.message.topic;
        let t = self
            .topics
            .get_mut(&topic)
            .ok_or(NodeError::NotSubscribed { topic })?;
        let validator = super::private::KindValidator {
            application: &*t.validator,
            crypto: &*self.config.crypto,
            now,
        };
        let id = payload.message.id();
        let input = plumtree::Input::Restore {
            payload,
            validator: &validator,
        };
        match t.plumtree.handle(now, input, &mut self.rng) {
            Some(refused) => Err(NodeError::Restore(refused)),
            None => {
                t.reconciler
                    .handle(now, antientropy::Input::Changed, &mut self.rng);
                Ok(id)
            }
        }
    }

    fn on_reconciler_output(&mut self, now: Timestamp, topic: TopicId, out: antientropy::Output) {
        match out {
            antientropy::Output::Send { to, message } => {
                self.send_frame(to, &Frame::Reconcile(ReconcileMessage { topic, message }))
            }
            antientropy::Output::Push { to, ids } => {
                if let Some(t) = self.topics.get_mut(&topic) {
                    let input = plumtree::Input::Serve {
                        to,
                        ids: &ids,
                        repair: true,
                    };
                    t.plumtree.handle(now, input, &mut self.rng);
                }
            }
            antientropy::Output::Want { to, ids } => {
                for chunk in ids.chunks(plumtree::MAX_IDS) {
                    if let Ok(ids) = BoundedVec::new(chunk.to_vec()) {
                        let message = plumtree::Message::IWant(ids);
                        self.send_frame(
                            to,
                            &Frame::Topic(TopicMessage::Broadcast { topic, message }),
                        );
                    }
                }
            }
        }
    }
}
