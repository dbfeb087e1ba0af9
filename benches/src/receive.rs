//! Fixtures of Plumtree's receive path (`benches/plumtree.rs`, perf-report's section 6): a
//! topic's state machine with the default five neighbours, and pre-signed GOSSIP messages.

use crate::fixture_topic;
use hearsay_proto::broadcast::message::SignedMessage;
use hearsay_proto::broadcast::plumtree::{Announcement, Config, Message, Payload, Plumtree};
use hearsay_proto::testing::{T0, identity, identity_with};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{CryptoProvider, Identity, MessageId, PeerId};
use std::time::{Duration, Instant};

/// The neighbour every message arrives from.
pub fn sender() -> PeerId {
    identity(2).peer_id()
}

/// A topic's Plumtree whose eager peers are [`sender`] and four more (the default active view
/// is five): a new message is delivered and pushed on to four peers.
pub fn fresh() -> Plumtree {
    let mut p = Plumtree::new(Config::default(), fixture_topic());
    p.neighbor_up(sender());
    for k in 10..14 {
        p.neighbor_up(PeerId::from_bytes([k; 32]));
    }
    p
}

/// The messages' author, its keys expanded by `provider` (the same seeds whatever the
/// provider: the pure-Rust and aws-lc-rs providers give the same keys).
pub fn author(provider: &dyn CryptoProvider) -> Identity {
    identity_with(provider, 77)
}

/// `n` distinct GOSSIP messages of `len` bytes by `author`, one hop from it.
pub fn gossip(author: &Identity, n: usize, len: usize) -> Vec<Message> {
    (0..n as u64)
        .map(|seq| {
            let mut payload = vec![0x33u8; len.max(8)];
            payload[..8].copy_from_slice(&seq.to_le_bytes());
            payload.truncate(len);
            let message = SignedMessage::publish(author, fixture_topic(), seq + 1, T0, &payload)
                .expect("the message signs");
            Message::Gossip(Payload {
                message,
                author_key: author.verifying_key().clone(),
                hops: 1,
            })
        })
        .collect()
}

/// The ids of GOSSIP messages (others are skipped).
pub fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Gossip(p) | Message::Repair(p) => Some(p.message.id()),
            _ => None,
        })
        .collect()
}

/// An IHAVE announcing `ids` (at most 64).
pub fn ihave(ids: &[MessageId]) -> Message {
    Message::IHave(
        BoundedVec::new(
            ids.iter()
                .map(|id| Announcement { id: *id, hops: 3 })
                .collect(),
        )
        .expect("at most 64 entries"),
    )
}

/// Times `iters` calls of `feed` on the items of `pool` in order, starting a fresh `state`
/// (untimed, as is dropping it) for each pool's worth: for paths that need a new message per
/// call.
pub fn replay<S, T: Clone>(
    iters: u64,
    pool: &[T],
    mut state: impl FnMut() -> S,
    mut feed: impl FnMut(&mut S, T),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = usize::try_from(iters).unwrap_or(usize::MAX);
    while left > 0 && !pool.is_empty() {
        let n = left.min(pool.len());
        let mut s = state();
        let batch: Vec<T> = pool[..n].to_vec();
        let start = Instant::now();
        for item in batch {
            feed(&mut s, item);
        }
        total += start.elapsed();
        drop(s);
        left -= n;
    }
    total
}
