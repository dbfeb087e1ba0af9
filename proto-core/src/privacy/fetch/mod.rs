//! Fetching an encrypted message's content (frame kind 6, SPEC.md §17.10): both sides of the
//! exchange, as one [`StateMachine`], [`FetchExchange`].
//!
//! - The **author** serves the messages it sealed ([`Input::Serve`]): a FETCH gets a fresh
//!   challenge from its [`FetchGuard`], a PROVE that passes the guard gets the content, and
//!   anything else REFUSED.
//! - A **reader** that found its slot in an announcement fetches ([`Input::Fetch`]): it asks
//!   the author ([`Output::Ask`], over a connection the node dials if need be), answers the
//!   challenge with its fetch key, checks the content against the announcement and opens it
//!   ([`Output::Fetched`]). An attempt lasts `fetch_timeout` and is made `fetch_attempts` times;
//!   a REFUSED ends the fetch.
//!
//! One [`Deadlines`] holds both kinds of timer: the fetch attempts' and the outstanding
//! challenges' expiry. The node keeps the rest (`node/private.rs`): announcements, access
//! records, which messages were delivered, events. The wire messages are in [`message`].

pub mod message;
#[cfg(test)]
mod tests;

pub use message::{Announcement, MAX_READERS, PrivateConfig, PrivateCounters, PrivateMessage};

use crate::broadcast::message::{MessageKind, SignedMessage};
use crate::crypto::{CryptoProvider, VerifyingKeyBytes};
use crate::id::{MessageId, PeerId, TopicId};
use crate::machine::{Deadlines, Rng, StateMachine};
use crate::privacy::envelope::{self, ContentKey, Sealed};
use crate::privacy::fetch_guard::{self, FetchGuard, FetchKey, Nonce};
use crate::time::{TimeDelta, Timestamp};
use crate::wire::BoundedVec;
use crate::wire::codec::FixedBytes;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use foldhash::fast::FixedState;
use hashbrown::HashMap;
use zeroize::Zeroizing;

/// A message this node authored and serves: what it needs to serve and re-wrap it.
pub struct Authored {
    /// The topic it was published on.
    pub topic: TopicId,
    /// The content: the signed message of kind [`MessageKind::Sealed`] handed to proven
    /// readers.
    pub content: SignedMessage,
    /// The content key (the author is not a reader of its own message and keeps it instead).
    pub key: ContentKey,
    /// The access record's current version.
    pub version: u64,
}

impl fmt::Debug for Authored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the content key.
        f.debug_struct("Authored")
            .field("topic", &self.topic)
            .field("id", &self.content.id())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What a reader needs to fetch one message: from its announcement and the reader's slot.
pub struct Wanted {
    /// The message.
    pub message: MessageId,
    /// The topic it was announced on (the content must be on it too).
    pub topic: TopicId,
    /// Its author, who serves it.
    pub author: PeerId,
    /// The author's signature key (the content must verify under it).
    pub author_key: VerifyingKeyBytes,
    /// The content key from the reader's slot.
    pub key: ContentKey,
    /// The reader's slot's fetch key (§17.8).
    pub fetch_key: FetchKey,
    /// BLAKE3 of the content ciphertext, as announced.
    pub content_hash: [u8; 32],
    /// The access-record version that named the reader.
    pub version: u64,
}

impl fmt::Debug for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the keys.
        f.debug_struct("Wanted")
            .field("message", &self.message)
            .field("topic", &self.topic)
            .field("author", &self.author)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Everything that can happen to a [`FetchExchange`] but the passage of time.
pub enum Input<'a> {
    /// Serve `message`, which this node authored (replacing what was served under that id,
    /// which keeps its place). The oldest served message is forgotten beyond `max_authored`.
    Serve {
        /// The message.
        message: MessageId,
        /// Its content and what re-wrapping it needs.
        authored: Authored,
        /// The fetch keys of its slots.
        fetch_keys: Vec<FetchKey>,
    },
    /// A served message has a new access-record version: its slots' fetch keys replace the
    /// old ones, so a removed reader's proofs fail.
    Rekey {
        /// The message.
        message: MessageId,
        /// The new version.
        version: u64,
        /// The fetch keys of the new version's slots.
        fetch_keys: Vec<FetchKey>,
    },
    /// Fetch a message whose announcement named this node (a fetch of it in flight starts
    /// over with this one). Beyond `max_fetches` fetches in flight it is not started
    /// ([`Failure::Full`]).
    Fetch(Wanted),
    /// Stop fetching `message` (a newer announcement has no slot of this node's).
    Cancel {
        /// The message.
        message: MessageId,
    },
    /// `message` was withdrawn by its author's delete request: neither served nor fetched.
    Withdraw {
        /// The message.
        message: MessageId,
    },
    /// A connection to `peer` is established: fetches waiting for it ask now.
    LinkUp {
        /// The peer.
        peer: PeerId,
    },
    /// The FETCH an [`Output::Ask`] asked for could not go out: there is no established
    /// connection to the author yet (the node is making one). The fetch asks again on
    /// [`Input::LinkUp`].
    NoLink {
        /// The message of the `Ask`.
        message: MessageId,
    },
    /// A frame of kind 6 arrived from `from` over an established connection.
    Frame {
        /// The sender.
        from: PeerId,
        /// The frame's message.
        message: PrivateMessage,
        /// Verifies a content's signature.
        crypto: &'a dyn CryptoProvider,
    },
}

impl fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Serve {
                message, authored, ..
            } => f
                .debug_struct("Serve")
                .field("message", message)
                .field("authored", authored)
                .finish_non_exhaustive(),
            Input::Rekey {
                message, version, ..
            } => f
                .debug_struct("Rekey")
                .field("message", message)
                .field("version", version)
                .finish_non_exhaustive(),
            Input::Fetch(wanted) => f.debug_tuple("Fetch").field(wanted).finish(),
            Input::Cancel { message } => {
                f.debug_struct("Cancel").field("message", message).finish()
            }
            Input::Withdraw { message } => f
                .debug_struct("Withdraw")
                .field("message", message)
                .finish(),
            Input::LinkUp { peer } => f.debug_struct("LinkUp").field("peer", peer).finish(),
            Input::NoLink { message } => {
                f.debug_struct("NoLink").field("message", message).finish()
            }
            Input::Frame { from, message, .. } => f
                .debug_struct("Frame")
                .field("from", from)
                .field("message", message)
                .finish_non_exhaustive(),
        }
    }
}

/// What a [`FetchExchange`] asks of its owner, in the order it decided.
#[derive(Debug)]
pub enum Output {
    /// Send FETCH for `message` to `author` over the established connection; when there is
    /// none, make one and answer [`Input::NoLink`].
    Ask {
        /// The author.
        author: PeerId,
        /// The message.
        message: MessageId,
    },
    /// Send `message` to `to` over the established connection (dropped if there is none).
    /// The author's CONTENT and REFUSED answers are its fetches served and refused.
    Send {
        /// The peer.
        to: PeerId,
        /// The frame's message.
        message: PrivateMessage,
    },
    /// A fetched content checked out against its announcement and opened.
    Fetched {
        /// The topic it was announced on.
        topic: TopicId,
        /// Its author.
        author: PeerId,
        /// The message.
        message: MessageId,
        /// The access-record version that named this node.
        version: u64,
        /// The decrypted bytes.
        plaintext: Zeroizing<Vec<u8>>,
    },
    /// A fetch ended without content.
    Failed {
        /// The message.
        message: MessageId,
        /// Why.
        reason: Failure,
    },
}

/// Why a fetch ended without content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// `max_fetches` fetches were in flight: this one never started.
    Full,
    /// The author refused it: it does not count this node among the readers (any more).
    Refused,
    /// Every attempt timed out.
    TimedOut,
    /// The content checked out but did not open with the slot's key.
    Corrupt,
}

/// What [`FetchExchange::handle`](StateMachine::handle) answers at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to report.
    Done,
    /// [`Input::Fetch`] started a fetch.
    Started,
    /// The frame made no sense here (a challenge, content or refusal nobody asked for, or a
    /// content that does not match its announcement) and was dropped.
    Unsolicited,
}

/// A fetch in flight.
struct InFlight {
    wanted: Wanted,
    attempts: u8,
    /// Whether the current attempt's FETCH went out (the owner says [`Input::NoLink`] if not).
    asked: bool,
}

/// The exchange's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The current attempt of the fetch of a message times out.
    Attempt(MessageId),
    /// A challenge this node issued expires.
    Challenge(Nonce),
}

crate::machine::internal_struct! {
    /// Both sides of the fetch exchange (see the module documentation).
    struct FetchExchange {
        max_authored: usize,
        max_fetches: usize,
        fetch_timeout: TimeDelta,
        fetch_attempts: u8,
        authored: HashMap<MessageId, Authored, FixedState>,
        authored_order: VecDeque<MessageId>,
        guard: FetchGuard,
        fetches: HashMap<MessageId, InFlight, FixedState>,
        deadlines: Deadlines<Timer>,
        outputs: VecDeque<Output>,
    }
}

impl fmt::Debug for FetchExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchExchange")
            .field("authored", &self.authored.len())
            .field("guard", &self.guard)
            .field("fetches", &self.fetches.len())
            .field("timers", &self.deadlines.len())
            .finish_non_exhaustive()
    }
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl FetchExchange {
    /// Nothing served, nothing fetched.
    pub fn new(config: &PrivateConfig) -> Self {
        Self {
            max_authored: config.max_authored.max(1),
            max_fetches: config.max_fetches.max(1),
            fetch_timeout: config.fetch_timeout,
            fetch_attempts: config.fetch_attempts.max(1),
            authored: HashMap::with_hasher(FixedState::with_seed(0)),
            authored_order: VecDeque::new(),
            guard: FetchGuard::new(
                config.max_authored,
                config.max_challenges,
                config.challenge_ttl,
            ),
            fetches: HashMap::with_hasher(FixedState::with_seed(0)),
            deadlines: Deadlines::new(),
            outputs: VecDeque::new(),
        }
    }

    /// A message this node serves.
    pub fn authored(&self, message: &MessageId) -> Option<&Authored> {
        self.authored.get(message)
    }

    /// The guard of the served messages (its counters: refusals by reason).
    pub fn guard(&self) -> &FetchGuard {
        &self.guard
    }

    /// Whether `message` is being fetched.
    pub fn is_fetching(&self, message: &MessageId) -> bool {
        self.fetches.contains_key(message)
    }

    /// Fetches in flight.
    pub fn fetches_len(&self) -> usize {
        self.fetches.len()
    }

    /// Whether a fetch needs a connection to `peer` (its author).
    pub fn wants_link(&self, peer: &PeerId) -> bool {
        self.fetches.values().any(|f| f.wanted.author == *peer)
    }

    fn serve(&mut self, message: MessageId, authored: Authored, fetch_keys: Vec<FetchKey>) {
        if self.authored.insert(message, authored).is_none() {
            self.authored_order.push_back(message);
        }
        while self.authored.len() > self.max_authored {
            let Some(old) = self.authored_order.pop_front() else {
                break;
            };
            self.authored.remove(&old);
            self.guard.unregister(&old);
        }
        self.guard.register(message, fetch_keys);
    }

    fn start(&mut self, now: Timestamp, wanted: Wanted) -> Reply {
        let message = wanted.message;
        if !self.fetches.contains_key(&message) && self.fetches.len() >= self.max_fetches {
            self.outputs.push_back(Output::Failed {
                message,
                reason: Failure::Full,
            });
            return Reply::Done;
        }
        self.fetches.insert(
            message,
            InFlight {
                wanted,
                attempts: 1,
                asked: false,
            },
        );
        self.deadlines
            .set(Timer::Attempt(message), now + self.fetch_timeout);
        self.ask(message);
        Reply::Started
    }

    /// Ends the fetch of `message` (no output).
    fn stop(&mut self, message: &MessageId) -> Option<InFlight> {
        self.deadlines.cancel(&Timer::Attempt(*message));
        self.fetches.remove(message)
    }

    /// Asks the author of `message` for a challenge.
    fn ask(&mut self, message: MessageId) {
        if let Some(f) = self.fetches.get_mut(&message) {
            f.asked = true;
            self.outputs.push_back(Output::Ask {
                author: f.wanted.author,
                message,
            });
        }
    }

    fn send(&mut self, to: PeerId, message: PrivateMessage) {
        self.outputs.push_back(Output::Send { to, message });
    }

    fn on_frame(
        &mut self,
        now: Timestamp,
        from: PeerId,
        m: PrivateMessage,
        crypto: &dyn CryptoProvider,
        rng: &mut Rng,
    ) -> Reply {
        match m {
            PrivateMessage::Fetch { message } => {
                if !self.authored.contains_key(&message) {
                    self.send(from, PrivateMessage::Refused { message });
                    return Reply::Done;
                }
                let deadlines = &mut self.deadlines;
                let (nonce, expires) = self.guard.issue(rng, now, |dropped| {
                    deadlines.cancel(&Timer::Challenge(dropped));
                });
                self.deadlines.set(Timer::Challenge(nonce), expires);
                self.send(
                    from,
                    PrivateMessage::Challenge {
                        message,
                        nonce: FixedBytes::from_array(nonce),
                    },
                );
                Reply::Done
            }
            PrivateMessage::Challenge { message, nonce } => {
                let Some(f) = self.fetches.get(&message) else {
                    return Reply::Unsolicited;
                };
                if f.wanted.author != from {
                    return Reply::Unsolicited;
                }
                let nonce: Nonce = to_array(nonce.as_bytes());
                let proof = fetch_guard::prove(&f.wanted.fetch_key, &nonce, &message);
                self.send(
                    from,
                    PrivateMessage::Prove {
                        message,
                        nonce: FixedBytes::from_array(nonce),
                        proof: FixedBytes::from_array(proof),
                    },
                );
                Reply::Done
            }
            PrivateMessage::Prove {
                message,
                nonce,
                proof,
            } => {
                let nonce: Nonce = to_array(nonce.as_bytes());
                let proof = to_array(proof.as_bytes());
                let allowed = self.guard.check(&message, &nonce, &proof, now);
                // The check spent the challenge, if it was outstanding.
                self.deadlines.cancel(&Timer::Challenge(nonce));
                match (allowed, self.authored.get(&message)) {
                    (Ok(()), Some(a)) => {
                        let content = a.content.clone();
                        self.send(from, PrivateMessage::Content { message: content });
                    }
                    _ => self.send(from, PrivateMessage::Refused { message }),
                }
                Reply::Done
            }
            PrivateMessage::Content { message } => self.on_content(from, message, crypto),
            PrivateMessage::Refused { message } => match self.fetches.get(&message) {
                Some(f) if f.wanted.author == from => {
                    // A refusal is final: the author does not count us among the readers
                    // (any more). A newer announcement may start a new fetch.
                    self.stop(&message);
                    self.outputs.push_back(Output::Failed {
                        message,
                        reason: Failure::Refused,
                    });
                    Reply::Done
                }
                _ => Reply::Unsolicited,
            },
        }
    }

    fn on_content(
        &mut self,
        from: PeerId,
        content: SignedMessage,
        crypto: &dyn CryptoProvider,
    ) -> Reply {
        let id = content.id();
        let Some(f) = self.fetches.get(&id) else {
            return Reply::Unsolicited;
        };
        let w = &f.wanted;
        let genuine = w.author == from
            && content.author == w.author
            && content.kind == MessageKind::Sealed
            && content.topic == w.topic
            && *blake3::hash(&content.payload).as_bytes() == w.content_hash
            && content.verify(crypto, &w.author_key).is_ok();
        if !genuine {
            return Reply::Unsolicited;
        }
        let Some(f) = self.stop(&id) else {
            return Reply::Done;
        };
        let sealed = Sealed {
            content: match envelope::Content::new(content.payload.to_bytes()) {
                Ok(c) => c,
                Err(_) => return Reply::Done,
            },
            slots: BoundedVec::default(),
        };
        let w = f.wanted;
        self.outputs
            .push_back(match envelope::open_with_key(&sealed, &w.key) {
                Ok(plaintext) => Output::Fetched {
                    topic: w.topic,
                    author: w.author,
                    message: id,
                    version: w.version,
                    plaintext,
                },
                Err(_) => Output::Failed {
                    message: id,
                    reason: Failure::Corrupt,
                },
            });
        Reply::Done
    }

    /// The current attempt of the fetch of `message` timed out: try again or give up.
    fn attempt_timed_out(&mut self, now: Timestamp, message: MessageId) {
        let Some(f) = self.fetches.get_mut(&message) else {
            return;
        };
        if f.attempts >= self.fetch_attempts {
            self.stop(&message);
            self.outputs.push_back(Output::Failed {
                message,
                reason: Failure::TimedOut,
            });
            return;
        }
        f.attempts += 1;
        f.asked = false;
        self.deadlines
            .set(Timer::Attempt(message), now + self.fetch_timeout);
        self.ask(message);
    }
}

impl StateMachine for FetchExchange {
    type Input<'a> = Input<'a>;
    type Output = Output;
    type Reply = Reply;

    fn handle(&mut self, now: Timestamp, input: Input<'_>, rng: &mut Rng) -> Reply {
        match input {
            Input::Serve {
                message,
                authored,
                fetch_keys,
            } => {
                self.serve(message, authored, fetch_keys);
                Reply::Done
            }
            Input::Rekey {
                message,
                version,
                fetch_keys,
            } => {
                if let Some(a) = self.authored.get_mut(&message) {
                    a.version = version;
                }
                self.guard.register(message, fetch_keys);
                Reply::Done
            }
            Input::Fetch(wanted) => self.start(now, wanted),
            Input::Cancel { message } => {
                self.stop(&message);
                Reply::Done
            }
            Input::Withdraw { message } => {
                self.stop(&message);
                self.guard.unregister(&message);
                if self.authored.remove(&message).is_some() {
                    self.authored_order.retain(|m| *m != message);
                }
                Reply::Done
            }
            Input::LinkUp { peer } => {
                let waiting: Vec<MessageId> = self
                    .fetches
                    .iter()
                    .filter(|(_, f)| f.wanted.author == peer && !f.asked)
                    .map(|(id, _)| *id)
                    .collect();
                for message in waiting {
                    self.ask(message);
                }
                Reply::Done
            }
            Input::NoLink { message } => {
                if let Some(f) = self.fetches.get_mut(&message) {
                    f.asked = false;
                }
                Reply::Done
            }
            Input::Frame {
                from,
                message,
                crypto,
            } => self.on_frame(now, from, message, crypto, rng),
        }
    }

    fn handle_timeout(&mut self, now: Timestamp, _rng: &mut Rng) {
        let mut attempts = BTreeSet::new();
        while let Some((_, timer)) = self.deadlines.pop_due(now) {
            match timer {
                Timer::Challenge(nonce) => self.guard.expire(&nonce),
                Timer::Attempt(message) => {
                    attempts.insert(message);
                }
            }
        }
        if attempts.is_empty() {
            return;
        }
        // Attempts that time out together go in the fetch table's order (the order the node
        // has always used), not their ids'.
        let due: Vec<MessageId> = self
            .fetches
            .keys()
            .filter(|id| attempts.contains(*id))
            .copied()
            .collect();
        for message in due {
            self.attempt_timed_out(now, message);
        }
    }

    fn poll(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.deadlines.next()
    }
}

fn to_array(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}
