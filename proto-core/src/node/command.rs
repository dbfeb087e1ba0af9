//! The application's requests: every one is a [`Command`] through [`Node::handle_command`],
//! so a driver drains the node's outputs after exactly one kind of call (SPEC.md §8.2).

use super::{Contact, Node, NodeError, Transmit};
use crate::broadcast::plumtree::Validator;
use crate::crypto::EncapsulationKeyBytes;
use crate::discovery::foaf::{QueryId, Target};
use crate::frame::{Frame, Goodbye, GoodbyeReason, SessionMessage};
use crate::id::{MessageId, PeerId, TopicId};
use crate::identity::record::{Address, Addresses};
use crate::machine::StateMachine;
use crate::membership::hyparview::{self, PeerInfo};
use crate::membership::swim;
use crate::privacy::group::ShardKey;
use crate::time::Timestamp;
use crate::wire::BoundedVec;
use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use zeroize::Zeroizing;

/// What the application asks of the node: the input of [`Node::handle_command`].
#[non_exhaustive]
pub enum Command {
    /// Connect to these peers and exchange records with them.
    Join {
        /// Bootstrap contacts.
        contacts: Vec<Contact>,
    },
    /// Advertise new addresses: re-issues the record and sends it to every neighbour.
    SetAddresses {
        /// The new addresses (at most [`MAX_ADDRESSES`](crate::identity::record::MAX_ADDRESSES)).
        addresses: Vec<Address>,
    },
    /// Leave gracefully: say goodbye to every neighbour and close every connection.
    Leave,
    /// Subscribe to a topic (as [`Node::subscribe`]).
    Subscribe {
        /// The topic.
        topic: TopicId,
    },
    /// Unsubscribe from a topic (as [`Node::unsubscribe`]).
    Unsubscribe {
        /// The topic.
        topic: TopicId,
    },
    /// Replace a subscribed topic's validator (as [`Node::set_validator`]).
    SetValidator {
        /// The topic.
        topic: TopicId,
        /// What decides whether a message on the topic is accepted.
        validator: Box<dyn Validator>,
    },
    /// Publish on a subscribed topic (as [`Node::publish`]); accepted as
    /// [`Accepted::Message`] with the message's id.
    Publish {
        /// The topic.
        topic: TopicId,
        /// The payload, at most [`MAX_PAYLOAD`](crate::broadcast::message::MAX_PAYLOAD) bytes.
        payload: Bytes,
    },
    /// Take back an archived message (as [`Node::restore_message`], SPEC.md §15.7); accepted
    /// as [`Accepted::Message`].
    RestoreMessage {
        /// The record that [`Event::Archived`](super::Event::Archived) gave.
        record: Bytes,
    },
    /// Publish `plaintext` encrypted for `readers` (as [`Node::publish_private`], SPEC.md
    /// §17.10); accepted as [`Accepted::Message`].
    PublishPrivate {
        /// A subscribed topic.
        topic: TopicId,
        /// The content.
        plaintext: Bytes,
        /// The readers' ML-KEM encapsulation keys.
        readers: Vec<EncapsulationKeyBytes>,
    },
    /// Change who may read an encrypted message this node authored (as
    /// [`Node::update_readers`]); accepted as [`Accepted::ReadersUpdated`].
    UpdateReaders {
        /// The message.
        id: MessageId,
        /// Its readers from now on.
        readers: Vec<EncapsulationKeyBytes>,
    },
    /// Re-encrypt a message this node authored under a new content key for `readers` (as
    /// [`Node::reencrypt`]); accepted as [`Accepted::Message`] with the new message's id.
    Reencrypt {
        /// The message.
        id: MessageId,
        /// Its readers from now on.
        readers: Vec<EncapsulationKeyBytes>,
    },
    /// Hold a group shard key (as [`Node::add_group_key`]).
    AddGroupKey {
        /// The key, from a group key package.
        key: ShardKey,
    },
    /// Ask the overlay for a peer or a capability (as [`Node::find`], SPEC.md §18); accepted as
    /// [`Accepted::Query`].
    Find {
        /// What to find.
        target: Target,
        /// How many hops deep (default 3, at most 4).
        ttl: Option<u8>,
    },
    /// Join a presence group and start beaconing (as [`Node::presence_start`], SPEC.md §19);
    /// accepted as [`Accepted::PresenceGroup`].
    PresenceStart {
        /// The group's secret (wiped when the command is dropped; never shown by `Debug`).
        group_secret: Zeroizing<[u8; 32]>,
    },
    /// Stop beaconing in a presence group (as [`Node::presence_stop`]).
    PresenceStop {
        /// The group's presence topic.
        group: TopicId,
    },
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Join { contacts } => {
                f.debug_struct("Join").field("contacts", contacts).finish()
            }
            Command::SetAddresses { addresses } => f
                .debug_struct("SetAddresses")
                .field("addresses", addresses)
                .finish(),
            Command::Leave => f.write_str("Leave"),
            Command::Subscribe { topic } => {
                f.debug_struct("Subscribe").field("topic", topic).finish()
            }
            Command::Unsubscribe { topic } => {
                f.debug_struct("Unsubscribe").field("topic", topic).finish()
            }
            Command::SetValidator { topic, .. } => f
                .debug_struct("SetValidator")
                .field("topic", topic)
                .finish_non_exhaustive(),
            Command::Publish { topic, payload } => f
                .debug_struct("Publish")
                .field("topic", topic)
                .field("len", &payload.len())
                .finish(),
            Command::RestoreMessage { record } => f
                .debug_struct("RestoreMessage")
                .field("len", &record.len())
                .finish(),
            Command::PublishPrivate {
                topic,
                plaintext,
                readers,
            } => f
                .debug_struct("PublishPrivate")
                .field("topic", topic)
                .field("len", &plaintext.len())
                .field("readers", &readers.len())
                .finish(),
            Command::UpdateReaders { id, readers } => f
                .debug_struct("UpdateReaders")
                .field("id", id)
                .field("readers", &readers.len())
                .finish(),
            Command::Reencrypt { id, readers } => f
                .debug_struct("Reencrypt")
                .field("id", id)
                .field("readers", &readers.len())
                .finish(),
            Command::AddGroupKey { key } => {
                f.debug_struct("AddGroupKey").field("key", key).finish()
            }
            Command::Find { target, ttl } => f
                .debug_struct("Find")
                .field("target", target)
                .field("ttl", ttl)
                .finish(),
            Command::PresenceStart { .. } => {
                f.debug_struct("PresenceStart").finish_non_exhaustive()
            }
            Command::PresenceStop { group } => f
                .debug_struct("PresenceStop")
                .field("group", group)
                .finish(),
        }
    }
}

/// What [`Node::handle_command`] answers when it accepted a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accepted {
    /// Done; nothing to report.
    Done,
    /// A message was published, restored or re-encrypted: its id.
    Message {
        /// The message's id.
        id: MessageId,
    },
    /// The readers of an encrypted message changed: the access record's new version.
    ReadersUpdated {
        /// The new version.
        version: u64,
    },
    /// A discovery query started: answers carry this id.
    Query {
        /// The query's id.
        id: QueryId,
    },
    /// A presence group started: its topic names it in presence events.
    PresenceGroup {
        /// The group's presence topic.
        topic: TopicId,
    },
}

impl Node {
    /// The application asks for something: the one entry point for every request (SPEC.md
    /// §8.2). After it, drain [`Node::poll_transmit`] and [`Node::poll_event`] as after any
    /// other input. The convenience methods ([`Node::publish`], [`Node::subscribe`], ...) do the
    /// same work and return the same results.
    pub fn handle_command(
        &mut self,
        now: Timestamp,
        command: Command,
    ) -> Result<Accepted, NodeError> {
        let now = self.advance(now);
        match command {
            Command::Join { contacts } => {
                let mut infos = Vec::new();
                for contact in contacts {
                    let addresses = BoundedVec::new(contact.addresses).map_err(|_| {
                        NodeError::TooManyAddresses {
                            max: crate::identity::record::MAX_ADDRESSES,
                        }
                    })?;
                    infos.push(PeerInfo {
                        peer: contact.peer,
                        addresses,
                    });
                }
                let input = hyparview::Input::Join { contacts: infos };
                self.hyparview.handle(now, input, &mut self.rng);
                self.drain_protocols(now);
                Ok(Accepted::Done)
            }
            Command::SetAddresses { addresses } => {
                let addresses =
                    Addresses::new(addresses).map_err(|_| NodeError::TooManyAddresses {
                        max: crate::identity::record::MAX_ADDRESSES,
                    })?;
                self.config.addresses = addresses.as_slice().to_vec();
                let input = hyparview::Input::SetAddresses {
                    addresses: addresses.clone(),
                };
                self.hyparview.handle(now, input, &mut self.rng);
                self.reissue_record(now, addresses).map(|()| Accepted::Done)
            }
            Command::Subscribe { topic } => self.subscribe(now, topic).map(|()| Accepted::Done),
            Command::Unsubscribe { topic } => self.unsubscribe(now, topic).map(|()| Accepted::Done),
            Command::SetValidator { topic, validator } => self
                .set_validator(topic, validator)
                .map(|()| Accepted::Done),
            Command::Publish { topic, payload } => self
                .publish(now, topic, &payload)
                .map(|id| Accepted::Message { id }),
            Command::RestoreMessage { record } => self
                .restore_message(now, &record)
                .map(|id| Accepted::Message { id }),
            Command::PublishPrivate {
                topic,
                plaintext,
                readers,
            } => self
                .publish_private(now, topic, &plaintext, &readers)
                .map(|id| Accepted::Message { id }),
            Command::UpdateReaders { id, readers } => self
                .update_readers(now, id, &readers)
                .map(|version| Accepted::ReadersUpdated { version }),
            Command::Reencrypt { id, readers } => self
                .reencrypt(now, id, &readers)
                .map(|id| Accepted::Message { id }),
            Command::AddGroupKey { key } => {
                self.add_group_key(key);
                Ok(Accepted::Done)
            }
            Command::Find { target, ttl } => {
                self.find(now, target, ttl).map(|id| Accepted::Query { id })
            }
            Command::PresenceStart { group_secret } => self
                .presence_start(now, *group_secret)
                .map(|topic| Accepted::PresenceGroup { topic }),
            Command::PresenceStop { group } => {
                self.presence_stop(now, group).map(|()| Accepted::Done)
            }
            Command::Leave => {
                self.presence_leave(now);
                let goodbye = Frame::Session(SessionMessage::Goodbye(Goodbye {
                    reason: GoodbyeReason::Leaving,
                }))
                .encode()
                .ok();
                self.hyparview
                    .handle(now, hyparview::Input::Leave, &mut self.rng);
                for t in self.topics.values_mut() {
                    t.hyparview
                        .handle(now, hyparview::Input::Leave, &mut self.rng);
                }
                let members: Vec<PeerId> = self.member_refs.keys().copied().collect();
                for peer in members {
                    let input = swim::Input::RemoveMember { peer };
                    self.swim.handle(now, input, &mut self.rng);
                }
                self.member_refs.clear();
                let links = core::mem::take(&mut self.links);
                for (peer, link) in links {
                    if let (true, Some(goodbye)) = (link.established, &goodbye) {
                        self.send(peer, goodbye.clone());
                    }
                    self.push_transmit(Transmit::Disconnect { peer });
                }
                self.dialing.clear();
                self.drain_protocols(now);
                Ok(Accepted::Done)
            }
        }
    }
}
