//! The node's side of presence (SPEC.md §19): one [`Presence`] per group this node is a member
//! of, its beacons published on the group's presence topic, the beacons it receives on that
//! topic handed to it instead of the application.

use super::{Event, Node, NodeError};
use crate::broadcast::message::SignedMessage;
use crate::discovery::presence::{self, Presence, PresenceEvent};
use crate::id::{PeerId, TopicId};
use crate::machine::StateMachine;
use crate::time::Timestamp;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Most presence groups a node is a member of at once.
pub const MAX_PRESENCE_GROUPS: usize = 16;

impl Node {
    /// Joins the presence group whose 32-byte secret is `group_secret` (shared by its members
    /// out of band, or from a group's key package): subscribes to the group's presence topic,
    /// installs the group's validator there and starts beaconing. Returns the topic, which
    /// names the group in [`Event::PresenceOnline`] and [`Event::PresenceOffline`]. Starting a
    /// stopped group again resumes its beacons.
    pub fn presence_start(
        &mut self,
        now: Timestamp,
        group_secret: [u8; 32],
    ) -> Result<TopicId, NodeError> {
        let now = self.advance(now);
        let topic = crate::discovery::presence::presence_topic(&group_secret);
        if !self.presence.contains_key(&topic) {
            if self.presence.len() >= MAX_PRESENCE_GROUPS {
                return Err(NodeError::TooManyGroups {
                    max: MAX_PRESENCE_GROUPS,
                });
            }
            let p = Presence::new(
                self.config.presence.clone(),
                group_secret,
                &self.identity,
                self.record.clone(),
                self.config.crypto.clone(),
            )
            .map_err(|_| NodeError::InvalidConfig("presence"))?;
            self.subscribe(now, topic)?;
            // A beacon is useless after two intervals; keeping them for the default ten
            // minutes would cost every member ~20 beacons of ~16 KB per member.
            let retention =
                self.config.presence.beacon_interval + self.config.presence.beacon_interval;
            if let Some(t) = self.topics.get_mut(&topic) {
                crate::machine::StateMachine::handle(
                    &mut t.plumtree,
                    now,
                    crate::broadcast::plumtree::Input::SetRetention(retention),
                    &mut self.rng,
                );
            }
            self.presence.insert(topic, p);
        }
        if let Some(p) = self.presence.get_mut(&topic) {
            // Starting cannot be refused.
            let _ = p.handle(now, presence::Input::Start, &mut self.rng);
            StateMachine::handle_timeout(p, now, &mut self.rng);
        }
        self.drain_protocols(now);
        Ok(topic)
    }

    /// Leaves the presence group `group` gracefully: a signed offline beacon goes out, so the
    /// other members see this node offline within seconds. The node still relays the group's
    /// beacons and tracks who is online until it unsubscribes from the topic.
    pub fn presence_stop(&mut self, now: Timestamp, group: TopicId) -> Result<(), NodeError> {
        let now = self.advance(now);
        let p = self
            .presence
            .get_mut(&group)
            .ok_or(NodeError::NotSubscribed { topic: group })?;
        // Stopping cannot be refused.
        let _ = p.handle(now, presence::Input::Stop, &mut self.rng);
        self.drain_protocols(now);
        Ok(())
    }

    /// The members of `group` seen online (fresh beacons) at `now`, this node excluded.
    pub fn presence_online(&self, now: Timestamp, group: &TopicId) -> Vec<PeerId> {
        self.presence
            .get(group)
            .map(|p| p.online(now).collect())
            .unwrap_or_default()
    }

    /// Stops every group's beacons before the node leaves: the offline beacons are pushed
    /// to the topics' neighbours now, while the connections are still up.
    pub(super) fn presence_leave(&mut self, now: Timestamp) {
        for p in self.presence.values_mut() {
            if p.is_running() {
                let _ = p.handle(now, presence::Input::Stop, &mut self.rng);
            }
        }
        self.drain_protocols(now);
    }

    /// A message on a presence topic passed the group's validator: it is a beacon.
    /// Returns `false` if `topic` is not a presence topic of this node.
    pub(super) fn presence_delivery(
        &mut self,
        now: Timestamp,
        topic: TopicId,
        message: &SignedMessage,
    ) -> bool {
        let Some(p) = self.presence.get_mut(&topic) else {
            return false;
        };
        // Refusals are counted by the group's state machine.
        let _ = p.handle(now, presence::Input::Beacon(message), &mut self.rng);
        true
    }

    /// Runs the timers of every group that has one due, in group order.
    pub(super) fn presence_timeout(&mut self, now: Timestamp) {
        for p in self.presence.values_mut() {
            if StateMachine::poll_timeout(p).is_some_and(|t| t <= now) {
                StateMachine::handle_timeout(p, now, &mut self.rng);
            }
        }
    }

    pub(super) fn presence_poll_timeout(&self) -> Option<Timestamp> {
        self.presence
            .values()
            .filter_map(StateMachine::poll_timeout)
            .min()
    }

    /// Tells every group the node's new record.
    pub(super) fn presence_record(&mut self) {
        let (now, record) = (self.now, self.record.clone());
        for p in self.presence.values_mut() {
            // The node's own record is always the member's.
            let _ = p.handle(
                now,
                presence::Input::SetRecord(record.clone()),
                &mut self.rng,
            );
        }
    }

    /// Installs new validators, publishes queued beacons and reports changes, in the order
    /// each group asked. Returns whether anything was done.
    pub(super) fn drain_presence(&mut self, now: Timestamp) -> bool {
        let mut progressed = false;
        let groups: Vec<TopicId> = self.presence.keys().copied().collect();
        for group in groups {
            while let Some(out) = self.presence.get_mut(&group).and_then(Presence::poll) {
                progressed = true;
                match out {
                    presence::Output::Validator(v) => {
                        if let Some(t) = self.topics.get_mut(&group) {
                            t.validator = Box::new(v);
                        }
                    }
                    presence::Output::Beacon(beacon) => {
                        if let Some(t) = self.topics.get_mut(&group) {
                            crate::machine::StateMachine::handle(
                                &mut t.plumtree,
                                now,
                                crate::broadcast::plumtree::Input::Publish {
                                    message: beacon.message,
                                    author_key: beacon.author_key,
                                },
                                &mut self.rng,
                            );
                        }
                    }
                    presence::Output::Event(e) => self.push_event(match e {
                        PresenceEvent::Online { member, record } => Event::PresenceOnline {
                            group,
                            member,
                            record,
                        },
                        PresenceEvent::Offline { member, reason } => Event::PresenceOffline {
                            group,
                            member,
                            reason,
                        },
                    }),
                }
            }
        }
        progressed
    }
}
