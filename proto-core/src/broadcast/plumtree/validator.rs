//! What a topic accepts: the [`Validator`] trait and the default, the author's signature; and
//! why a stored message is not taken back ([`RestoreError`]).

use crate::broadcast::message::{MessageError, SignedMessage};
use crate::crypto::{CryptoProvider, VerifyingKeyBytes};
use alloc::sync::Arc;

/// Decides whether a topic accepts a message. The default, [`SignatureValidator`], checks the
/// author's signature; a topic may install another (a group-key MAC, an application rule).
pub trait Validator: Send + Sync {
    /// `Ok` if `message`, claimed to be signed with `author_key`, may be delivered and forwarded.
    fn validate(
        &self,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), MessageError>;
}

/// The default validator: the author's ML-DSA-65 signature.
pub struct SignatureValidator(pub Arc<dyn CryptoProvider>);

impl core::fmt::Debug for SignatureValidator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("SignatureValidator")
            .field(&self.0.name())
            .finish()
    }
}

impl Validator for SignatureValidator {
    fn validate(
        &self,
        message: &SignedMessage,
        author_key: &VerifyingKeyBytes,
    ) -> Result<(), MessageError> {
        message.verify(&*self.0, author_key).map(|_| ())
    }
}

/// Why an [`super::Input::Restore`] did not take a stored message back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// It names another topic.
    WrongTopic,
    /// It is already retained (or was seen).
    AlreadySeen,
    /// It is older than the retention window (or dated in the future).
    Expired,
    /// The topic's validator refused it.
    Invalid,
    /// The seen-cache has no room (every id in it is unexpired, or its author holds its
    /// share, §15.4).
    Full,
}

impl core::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            RestoreError::WrongTopic => "the message names another topic",
            RestoreError::AlreadySeen => "the message is already retained",
            RestoreError::Expired => "the message is outside the retention window",
            RestoreError::Invalid => "the topic's validator refused the message",
            RestoreError::Full => "no room in the seen-cache for the message",
        })
    }
}

impl core::error::Error for RestoreError {}
