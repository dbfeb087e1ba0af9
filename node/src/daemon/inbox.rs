//! Encrypted direct messages: `send` (find the recipient's record, announce the letter on its
//! inbox topic) and the inbox (letters this node opened, kept and streamed to `hearsay inbox`);
//! presence changes are logged by the same event watcher.

use super::State;
use super::routes::{Body, error, json};
use super::topics::join_topic;
use bytes::Bytes;
use hearsay_proto::{PeerId, TopicId};
use hearsay_tokio::NodeEvent;
use http_body_util::{Channel, Either};
use hyper::{Response, StatusCode};
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The topic where `peer` receives encrypted direct messages (`hearsay send`): every `run`
/// subscribes to its own; a sender joins the recipient's to announce a letter there.
pub fn inbox_topic(peer: &PeerId) -> TopicId {
    TopicId::from_name(&format!("hearsay/inbox/{peer}"))
}

/// Deliveries kept for `inbox --replay`.
const INBOX_KEPT: usize = 1024;
/// How long `send` looks for a recipient it has no record of.
const FIND_LIMIT: Duration = Duration::from_secs(10);

/// An encrypted message this node opened, as `inbox` prints it.
#[derive(Debug, Clone)]
struct Letter {
    from: PeerId,
    id: hearsay_proto::MessageId,
    topic: TopicId,
    plaintext: Bytes,
}

/// What the inbox task shares with `/v1/inbox`.
#[derive(Debug)]
pub(super) struct Inbox {
    kept: Mutex<VecDeque<Letter>>,
    live: tokio::sync::broadcast::Sender<Letter>,
}

impl Default for Inbox {
    fn default() -> Self {
        Self {
            kept: Mutex::default(),
            live: tokio::sync::broadcast::channel(256).0,
        }
    }
}

/// Keeps and forwards every encrypted message this node opens; logs presence changes.
pub(super) async fn watch_services(mut events: hearsay_tokio::Events, state: Arc<State>) {
    while let Some(event) = events.recv().await {
        match event {
            NodeEvent::PrivateDelivered {
                topic,
                author,
                id,
                plaintext,
            } => {
                let letter = Letter {
                    from: author,
                    id,
                    topic,
                    plaintext,
                };
                if let Ok(mut kept) = state.inbox.kept.lock() {
                    if kept.len() >= INBOX_KEPT {
                        kept.pop_front();
                    }
                    kept.push_back(letter.clone());
                }
                let _ = state.inbox.live.send(letter);
            }
            NodeEvent::PresenceOnline { group, member, .. } => {
                tracing::info!(%group, %member, "presence: online");
            }
            NodeEvent::PresenceOffline {
                group,
                member,
                reason,
            } => {
                tracing::info!(%group, %member, ?reason, "presence: offline");
            }
            NodeEvent::Lagged(n) => tracing::warn!(lost = n, "the inbox watcher fell behind"),
            _ => {}
        }
    }
}

fn letter_json(state: &State, l: &Letter) -> serde_json::Value {
    let mut v = serde_json::json!({
        "from": l.from.to_string(),
        "id": l.id.to_string(),
        "direct": l.topic == inbox_topic(&state.node.peer_id()),
    });
    match std::str::from_utf8(&l.plaintext) {
        Ok(text) => v["payload"] = text.into(),
        Err(_) => {
            v["payload"] = l
                .plaintext
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into();
            v["payload_encoding"] = "hex".into();
        }
    }
    v
}

/// `GET /v1/inbox[?replay=1]`: the encrypted messages this node opens, as JSON lines.
pub(super) fn inbox_stream(state: &Arc<State>, replay: bool) -> Response<Body> {
    let mut live = state.inbox.live.subscribe();
    let earlier: Vec<Letter> = if replay {
        state
            .inbox
            .kept
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (mut tx, body) = Channel::<Bytes>::new(16);
    let state = state.clone();
    tokio::spawn(async move {
        if tx.send_data(Bytes::from_static(b"\n")).await.is_err() {
            return;
        }
        let replayed: BTreeSet<hearsay_proto::MessageId> = earlier.iter().map(|l| l.id).collect();
        let line = |v: serde_json::Value| {
            let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
        for l in &earlier {
            if tx.send_data(line(letter_json(&state, l))).await.is_err() {
                return;
            }
        }
        loop {
            let v = match live.recv().await {
                Ok(l) if replayed.contains(&l.id) => continue,
                Ok(l) => letter_json(&state, &l),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    serde_json::json!({ "lagged": n })
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            if tx.send_data(line(v)).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(Either::Right(body));
    if let Ok(v) = "application/x-ndjson".parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

/// `POST /v1/send?to=PEERID`: an encrypted direct message. The recipient's record comes from
/// the records this node holds, else from a friends-of-friends lookup; the letter is announced
/// on the recipient's inbox topic, which this node joins, and fetched from this node by the
/// recipient alone (SPEC.md §17.10, §21.5).
pub(super) async fn send(state: &Arc<State>, peer: PeerId, payload: Bytes) -> Response<Body> {
    let node = &state.node;
    if peer == node.peer_id() {
        return error(StatusCode::BAD_REQUEST, "that is this node's own id");
    }
    let known = node
        .inspect(move |v| v.known_record(&peer).cloned())
        .await
        .ok()
        .flatten();
    let record = match known {
        Some(r) => r,
        None => {
            let mut events = node.events();
            let query = match node
                .find(hearsay_proto::discovery::foaf::Target::Peer(peer), None)
                .await
            {
                Ok(q) => q,
                Err(e) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("cannot look for {peer}: {e}"),
                    );
                }
            };
            let found = tokio::time::timeout(FIND_LIMIT, async {
                loop {
                    match events.recv().await {
                        Some(NodeEvent::Found { query: q, records }) if q == query => {
                            if let Some(r) = records.into_iter().find(|r| r.peer_id == peer) {
                                return Some(r);
                            }
                        }
                        Some(NodeEvent::FindDone { query: q, .. }) if q == query => return None,
                        Some(_) => {}
                        None => return None,
                    }
                }
            })
            .await
            .ok()
            .flatten();
            match found {
                Some(r) => r,
                None => {
                    return error(
                        StatusCode::NOT_FOUND,
                        &format!(
                            "cannot find {peer}: no node within three hops knows it; is it \
                             running and joined to this overlay?"
                        ),
                    );
                }
            }
        }
    };
    let topic = inbox_topic(&peer);
    if let Err(e) = join_topic(state, topic, &format!("inbox:{peer}")).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    match node
        .publish_private(topic, payload, vec![record.encapsulation_key.clone()])
        .await
    {
        Ok(id) => json(
            StatusCode::OK,
            &serde_json::json!({ "to": peer.to_string(), "id": id.to_string() }),
        ),
        Err(e) => error(StatusCode::BAD_REQUEST, &format!("cannot send: {e}")),
    }
}
