//! Messages kept in the store: an anchor's mailbox (every archived message, written in
//! batches) and this node's own messages, handed back to the core when a topic is joined again.

use super::State;
use crate::store::MailboxEntry;
use crate::{Error, failed};
use bytes::Bytes;
use hearsay_proto::TopicId;
use hearsay_tokio::NodeEvent;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Most archived messages written to the store in one transaction.
const MAILBOX_BATCH: usize = 512;

/// Hands an anchor's stored messages of `topic` back to the core (checked there again).
pub(super) async fn restore_mailbox(state: &State, topic: TopicId, name: &str) {
    let store = state.store.clone();
    let records =
        match tokio::task::spawn_blocking(move || store.mailbox(&topic, unix_micros())).await {
            Ok(Ok(records)) => records,
            Ok(Err(e)) => {
                tracing::warn!(topic = name, "cannot read the mailbox: {e}");
                return;
            }
            Err(_) => return,
        };
    if records.is_empty() {
        return;
    }
    let total = records.len();
    match state
        .node
        .restore_messages(records.into_iter().map(Bytes::from).collect())
        .await
    {
        Ok(results) => {
            let ok = results.iter().filter(|r| r.is_ok()).count();
            state.restored.fetch_add(ok as u64, Ordering::Relaxed);
            tracing::info!(
                topic = name,
                restored = ok,
                refused = total - ok,
                "mailbox restored"
            );
        }
        Err(e) => tracing::warn!(topic = name, "cannot restore the mailbox: {e}"),
    }
}

/// An anchor's writer: every message the core archives goes into the store, in batches (one
/// transaction each, durable once committed).
pub(super) async fn archive_messages(mut events: hearsay_tokio::Events, state: Arc<State>) {
    loop {
        let mut batch = Vec::new();
        // Wait for one, then take whatever else is already there.
        let Some(first) = events.recv().await else {
            return;
        };
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match event {
                NodeEvent::Archived {
                    topic,
                    author,
                    id,
                    expires,
                    record,
                } => batch.push(MailboxEntry {
                    topic,
                    id,
                    author,
                    expires_us: expires.as_micros(),
                    record: record.to_vec(),
                }),
                NodeEvent::Lagged(n) => {
                    state.mailbox_lost.fetch_add(n, Ordering::Relaxed);
                    tracing::warn!(lost = n, "the mailbox writer fell behind");
                }
                _ => {}
            }
            if batch.len() < MAILBOX_BATCH {
                next = events.try_recv();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let store = state.store.clone();
        let max = state.mailbox;
        let written = batch.len();
        let own = state.node.peer_id();
        let write = move || store.archive(&batch, max, unix_micros(), &own);
        match tokio::task::spawn_blocking(write).await {
            Ok(Ok(dropped)) => {
                tracing::debug!(written, dropped, "mailbox updated");
            }
            Ok(Err(e)) => tracing::warn!("cannot write the mailbox: {e}"),
            Err(_) => return,
        }
    }
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Writes one of this node's own messages into the store's mailbox (one committed transaction).
pub(super) async fn keep_own(
    state: &Arc<State>,
    topic: TopicId,
    id: hearsay_proto::MessageId,
) -> Result<(), Error> {
    let found = state
        .node
        .inspect(move |v| v.retained_record(&topic, &id))
        .await
        .ok()
        .flatten();
    let Some((record, expires)) = found else {
        return Err(failed("the node no longer holds it"));
    };
    let own = state.node.peer_id();
    let entry = MailboxEntry {
        topic,
        id,
        author: own,
        expires_us: expires.as_micros(),
        record,
    };
    let store = state.store.clone();
    let max = state.mailbox;
    tokio::task::spawn_blocking(move || store.archive(&[entry], max, unix_micros(), &own))
        .await
        .map_err(|e| failed(format!("the store task failed: {e}")))?
        .map(|_| ())
}
