//! The methods Plumtree had before it became a [`StateMachine`], kept for callers outside the
//! core (benchmarks, fuzz targets, integration tests). Each does what the call it names does;
//! the core itself uses the [`StateMachine`] calls.

use super::{Message, Output, Payload, Plumtree, RestoreError, Validator};
use crate::broadcast::message::SignedMessage;
use crate::crypto::VerifyingKeyBytes;
use crate::id::{MessageId, PeerId};
use crate::machine::StateMachine;
use crate::time::Timestamp;

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
impl Plumtree {
    /// Shorthand for [`StateMachine::poll`].
    pub fn poll(&mut self) -> Option<Output> {
        StateMachine::poll(self)
    }

    /// Shorthand for [`StateMachine::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        StateMachine::poll_timeout(self)
    }

    /// Shorthand for [`StateMachine::handle_timeout`] (Plumtree draws no randomness).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.run_timers(now);
    }

    /// Shorthand for `handle(now, Input::NeighborUp(peer))`.
    pub fn neighbor_up(&mut self, peer: PeerId) {
        self.neighbor_joined(peer);
    }

    /// Shorthand for `handle(now, Input::NeighborDown(*peer))`.
    pub fn neighbor_down(&mut self, peer: &PeerId) {
        self.neighbor_left(peer);
    }

    /// Shorthand for `handle(now, Input::SetTree(links))`.
    pub fn set_tree(&mut self, links: &[PeerId]) {
        self.follow_tree(links);
    }

    /// Shorthand for `handle(now, Input::Publish { message, author_key })`.
    pub fn publish(
        &mut self,
        now: Timestamp,
        message: SignedMessage,
        author_key: VerifyingKeyBytes,
    ) {
        self.publish_own(now, message, author_key);
    }

    /// Shorthand for `handle(now, Input::Message { from, message, validator })`.
    pub fn handle_message(
        &mut self,
        now: Timestamp,
        from: PeerId,
        message: Message,
        validator: &dyn Validator,
    ) {
        self.on_message(now, from, message, validator);
    }

    /// Shorthand for `handle(now, Input::Serve { to, ids, repair })`.
    pub fn serve(&mut self, to: PeerId, ids: &[MessageId], repair: bool) {
        self.send_retained(to, ids, repair);
    }

    /// Shorthand for `handle(now, Input::Restore { payload, validator })` that also answers
    /// the restored message's id.
    pub fn restore(
        &mut self,
        now: Timestamp,
        payload: Payload,
        validator: &dyn Validator,
    ) -> Result<MessageId, RestoreError> {
        self.restore_payload(now, payload, validator)
    }
}
