//! Topics the node subscribes to: their names (for status and metrics), the latest deliveries
//! kept for `subscribe --replay`, and joining a topic before publishing on it.

use super::State;
use super::mailbox::restore_mailbox;
use hearsay_proto::TopicId;
use hearsay_tokio::{NodeHandle, Received};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deliveries kept per topic for `subscribe --replay`.
const RECENT_PER_TOPIC: usize = 1024;

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

/// Keeps the latest [`RECENT_PER_TOPIC`] deliveries of one topic.
async fn record_recent(mut sub: hearsay_tokio::Subscription, state: Arc<State>) {
    let topic = sub.topic();
    while let Some(item) = sub.recv().await {
        if let Received::Message(m) = item
            && let Ok(mut recent) = state.recent.lock()
        {
            let now = hearsay_tokio::timestamp_from_system_time(std::time::SystemTime::now());
            let age = now.as_micros().saturating_sub(m.timestamp.as_micros());
            state.latency.observe(age as f64 / 1e6);
            let ring = recent.entry(topic).or_default();
            if ring.len() >= RECENT_PER_TOPIC {
                ring.pop_front();
            }
            ring.push_back(m);
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
