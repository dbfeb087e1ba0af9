//! Topics the node subscribes to: their names (for status and metrics), the latest deliveries
//! kept for `subscribe --replay`, and joining a topic before publishing on it.

use super::State;
use super::mailbox::restore_mailbox;
use hearsay_proto::TopicId;
use hearsay_tokio::{NodeHandle, Received};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deliveries kept per topic for `subscribe --replay`.
const RECENT_PER_TOPIC: usize = 1024;
/// Payload bytes kept per topic for `subscribe --replay` (1,024 full payloads would be
/// ~254 MB: the bound that matters is in bytes).
const RECENT_BYTES_PER_TOPIC: usize = 8 << 20;

/// The latest deliveries of one topic, within [`RECENT_PER_TOPIC`] and
/// [`RECENT_BYTES_PER_TOPIC`] (the oldest go first).
#[derive(Debug, Default)]
pub(super) struct Recent {
    deliveries: VecDeque<hearsay_tokio::Delivery>,
    bytes: usize,
}

impl Recent {
    /// Keeps `d`, dropping the oldest deliveries until both bounds hold.
    pub(super) fn push(&mut self, d: hearsay_tokio::Delivery) {
        self.bytes += d.payload.len();
        self.deliveries.push_back(d);
        while self.deliveries.len() > RECENT_PER_TOPIC || self.bytes > RECENT_BYTES_PER_TOPIC {
            let Some(old) = self.deliveries.pop_front() else {
                break;
            };
            self.bytes -= old.payload.len();
        }
    }

    /// The deliveries kept, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &hearsay_tokio::Delivery> {
        self.deliveries.iter()
    }
}

pub(super) async fn subscribe_topic(
    state: &Arc<State>,
    name: &str,
) -> Result<hearsay_tokio::Subscription, hearsay_tokio::Error> {
    let topic = TopicId::from_name(name);
    let sub = state.node.subscribe(topic).await?;
    let new = state
        .topics
        .lock()
        .map(|mut topics| topics.insert(topic, name.to_owned()).is_none())
        .unwrap_or(false);
    if new {
        // Keep the latest deliveries for `subscribe --replay`.
        let recorder = state.node.subscribe(topic).await?;
        tokio::spawn(record_recent(recorder, state.clone()));
        // An anchor's mailbox, or this node's own messages (kept by every node).
        restore_mailbox(state, topic, name).await;
    }
    Ok(sub)
}

/// Keeps the latest deliveries of one topic ([`Recent`]).
async fn record_recent(mut sub: hearsay_tokio::Subscription, state: Arc<State>) {
    let topic = sub.topic();
    while let Some(item) = sub.recv().await {
        if let Received::Message(m) = item
            && let Ok(mut recent) = state.recent.lock()
        {
            let now = hearsay_tokio::timestamp_from_system_time(std::time::SystemTime::now());
            let age = now.as_micros().saturating_sub(m.timestamp.as_micros());
            state.latency.observe(age as f64 / 1e6);
            recent.entry(topic).or_default().push(m);
        }
    }
}

/// Waits (at most 5 s) until `topic` has a neighbour, unless the node has no neighbour at all.
pub(super) async fn await_topic_neighbour(node: &NodeHandle, topic: TopicId) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let (has_topic_peers, has_peers) = node
            .inspect(move |v| {
                (
                    !v.topic_neighbors(&topic).is_empty(),
                    v.neighbors().next().is_some(),
                )
            })
            .await
            .unwrap_or((true, true));
        if has_topic_peers || !has_peers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Subscribes to `topic` (named `label` in status) if needed and gives a new topic a moment to
/// find neighbours, so that what is published next does not wait for anti-entropy.
pub(super) async fn join_topic(
    state: &Arc<State>,
    topic: TopicId,
    label: &str,
) -> Result<(), hearsay_tokio::Error> {
    let node = &state.node;
    let subscribed = node
        .inspect(move |v| v.is_subscribed(&topic))
        .await
        .unwrap_or(false);
    if subscribed {
        return Ok(());
    }
    node.subscribe(topic).await?;
    if let Ok(mut topics) = state.topics.lock() {
        topics.insert(topic, label.to_owned());
    }
    await_topic_neighbour(node, topic).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hearsay_proto::{MessageId, PeerId, Timestamp};

    fn delivery(n: u32, size: usize) -> hearsay_tokio::Delivery {
        hearsay_tokio::Delivery {
            topic: TopicId::from_name("t"),
            author: PeerId::from_bytes([1; 32]),
            id: MessageId::from_bytes([(n % 251) as u8; 32]),
            sequence: u64::from(n),
            timestamp: Timestamp::from_micros(u64::from(n)),
            payload: Bytes::from(vec![0u8; size]),
            hops: 1,
        }
    }

    #[test]
    fn recent_deliveries_are_bounded_in_bytes_and_in_count() {
        let mut big = Recent::default();
        for n in 0..1024 {
            big.push(delivery(n, 248 * 1024));
        }
        let kept: Vec<u64> = big.iter().map(|d| d.sequence).collect();
        assert_eq!(kept.len(), RECENT_BYTES_PER_TOPIC / (248 * 1024));
        assert_eq!(kept.last(), Some(&1023), "the newest stay");
        assert!(big.bytes <= RECENT_BYTES_PER_TOPIC);
        let mut small = Recent::default();
        for n in 0..5000 {
            small.push(delivery(n, 10));
        }
        assert_eq!(small.iter().count(), RECENT_PER_TOPIC);
        assert_eq!(small.iter().next().map(|d| d.sequence), Some(5000 - 1024));
    }
}
