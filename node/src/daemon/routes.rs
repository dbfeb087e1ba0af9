//! The control API over HTTP: the accept loop (shared with the metrics listener), the
//! response helpers, and the routes for status, peers, publish and subscribe.

use super::State;
use super::inbox::{inbox_stream, send};
use super::mailbox::keep_own;
use super::metrics::{core_numbers, metrics_response};
use super::presence::presence;
use super::topics::{await_topic_neighbour, subscribe_topic};
use crate::api::{self, ApiRequest};
use bytes::Bytes;
use hearsay_proto::TopicId;
use hearsay_tokio::Received;
use http_body_util::{BodyExt, Channel, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;

pub(super) async fn accept_loop(listener: TcpListener, state: Arc<State>, metrics: bool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move {
                    let response = if metrics {
                        metrics_response(&state, &req).await
                    } else {
                        handle(&state, req).await
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(super) type Body = Either<Full<Bytes>, Channel<Bytes>>;

pub(super) fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(body.into())));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

pub(super) fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

pub(super) fn error(status: StatusCode, text: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": text }))
}

/// One neighbour in `peers` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its peer id (hex).
    pub peer_id: String,
    /// The remote address of the connection.
    pub address: String,
}

/// The `status` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusInfo {
    /// This node's peer id.
    pub peer_id: String,
    /// The identity's name.
    pub identity: String,
    /// The QUIC address.
    pub listen: String,
    /// `PEERID@ADDR`, for others' `--bootstrap`.
    pub bootstrap: String,
    /// The control API's address.
    pub control: String,
    /// The metrics address, if any.
    pub metrics: Option<String>,
    /// Roles asked for.
    pub roles_requested: Vec<String>,
    /// Roles in effect.
    pub roles_active: Vec<String>,
    /// An anchor's stored mailbox messages (all topics), if it is one.
    #[serde(default)]
    pub mailbox_messages: Option<u64>,
    /// Mailbox messages taken back by the core at this start.
    #[serde(default)]
    pub mailbox_restored: u64,
    /// Archived messages the anchor failed to store (its writer fell behind).
    #[serde(default)]
    pub mailbox_lost: u64,
    /// Addresses reflectors see this node at (`ADDR (by PEERID)`).
    #[serde(default)]
    pub observed_addresses: Vec<String>,
    /// Subscribed topics by name.
    pub topics: Vec<String>,
    /// Neighbours in the active view.
    pub neighbors: usize,
    /// Peer records held.
    pub known_records: usize,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Messages delivered to this node on all topics.
    pub delivered: u64,
    /// Messages this node published.
    pub published: u64,
    /// How many times a node has started with this home (this run included).
    pub starts: u64,
    /// The core's boot count (restored across restarts; sequence numbers start at
    /// `boot_count << 32`, so a restarted node never reuses one).
    pub boot_count: u64,
}

async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let auth = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // Token, path and method first: a body is read only for an authorised request to a route
    // that takes one (node/src/api.rs parses, and is fuzzed).
    let route = match api::parse_head(method, target, auth, &state.token) {
        Ok(route) => route,
        Err(e) => return api_error(&e),
    };
    let payload = if route.takes_body() {
        match Limited::new(body, api::MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the message is larger than 1 MiB",
                );
            }
        }
    } else {
        Bytes::new()
    };
    let request = match api::parse(method, target, auth, &payload, &state.token) {
        Ok(request) => request,
        Err(e) => return api_error(&e),
    };
    let node = &state.node;
    match request {
        ApiRequest::Status => {
            let Some(core) = core_numbers(node).await else {
                return error(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping");
            };
            let c = node.counters();
            let topics = state
                .topics
                .lock()
                .map(|t| t.values().cloned().collect())
                .unwrap_or_default();
            json(
                StatusCode::OK,
                &StatusInfo {
                    peer_id: node.peer_id().to_string(),
                    identity: state.identity.clone(),
                    listen: node.local_addr().to_string(),
                    bootstrap: node.bootstrap_peer().to_string(),
                    control: state.control.to_string(),
                    metrics: state.metrics.map(|m| m.to_string()),
                    roles_requested: state.roles.clone(),
                    roles_active: state.roles.clone(),
                    mailbox_messages: if state.roles.iter().any(|r| r == "anchor") {
                        state.store.mailbox_len().ok()
                    } else {
                        None
                    },
                    mailbox_restored: state.restored.load(Ordering::Relaxed),
                    mailbox_lost: state.mailbox_lost.load(Ordering::Relaxed),
                    observed_addresses: node
                        .observed_addresses()
                        .iter()
                        .map(|(by, a)| format!("{a} (by {by})"))
                        .collect(),
                    topics,
                    neighbors: core.neighbors,
                    known_records: core.known_records,
                    uptime_secs: state.started.elapsed().as_secs(),
                    frames_in: c.frames_in,
                    frames_out: c.frames_out,
                    bytes_in: c.bytes_in,
                    bytes_out: c.bytes_out,
                    delivered: core.topics.iter().map(|t| t.2).sum(),
                    published: core.published,
                    starts: state.store.starts().unwrap_or(0),
                    boot_count: core.boot_count,
                },
            )
        }
        ApiRequest::Peers => match node.peers().await {
            Ok(peers) => {
                let list: Vec<PeerInfo> = peers
                    .iter()
                    .map(|n| PeerInfo {
                        peer_id: n.peer.to_string(),
                        address: n.address.to_string(),
                    })
                    .collect();
                json(StatusCode::OK, &list)
            }
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        },
        ApiRequest::Publish { topic, .. } => publish(state, &topic, payload.clone()).await,
        ApiRequest::Subscribe {
            topic: name,
            replay,
        } => {
            let mut sub = match subscribe_topic(state, &name).await {
                Ok(sub) => sub,
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            };
            // Taken after the live subscription exists: nothing falls between the two, and
            // what is in both is sent once.
            let earlier: Vec<hearsay_tokio::Delivery> = if replay {
                let topic = TopicId::from_name(&name);
                state
                    .recent
                    .lock()
                    .map(|r| r.get(&topic).map(|q| q.iter().cloned().collect()))
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let (mut tx, body) = Channel::<Bytes>::new(16);
            tokio::spawn(async move {
                // An empty line at once, so the client sees the response head now rather than
                // with the first message (clients skip empty lines).
                if tx.send_data(Bytes::from_static(b"\n")).await.is_err() {
                    return;
                }
                let replayed: BTreeSet<hearsay_proto::MessageId> =
                    earlier.iter().map(|m| m.id).collect();
                for m in &earlier {
                    let mut bytes =
                        serde_json::to_vec(&delivery_json(&name, m)).unwrap_or_default();
                    bytes.push(b'\n');
                    if tx.send_data(Bytes::from(bytes)).await.is_err() {
                        return;
                    }
                }
                while let Some(item) = sub.recv().await {
                    let line = match item {
                        Received::Message(m) if replayed.contains(&m.id) => continue,
                        Received::Message(m) => delivery_json(&name, &m),
                        Received::Lagged(n) => serde_json::json!({ "lagged": n }),
                    };
                    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
                    bytes.push(b'\n');
                    if tx.send_data(Bytes::from(bytes)).await.is_err() {
                        break; // the client went away
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
        ApiRequest::Presence { action, group } => presence(state, action.as_str(), &group).await,
        ApiRequest::Send { to, .. } => send(state, to, payload.clone()).await,
        ApiRequest::Inbox { replay } => inbox_stream(state, replay),
    }
}

/// The answer to a refused control request.
fn api_error(e: &api::ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = error(status, &e.message);
    if let Some(allow) = e.allow {
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static(allow),
        );
    }
    response
}

fn delivery_json(name: &str, m: &hearsay_tokio::Delivery) -> serde_json::Value {
    let mut v = serde_json::json!({
        "topic": name,
        "author": m.author.to_string(),
        "id": m.id.to_string(),
        "sequence": m.sequence,
        "hops": m.hops,
    });
    match std::str::from_utf8(&m.payload) {
        Ok(text) => v["payload"] = text.into(),
        Err(_) => {
            v["payload"] = m
                .payload
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into();
            v["payload_encoding"] = "hex".into();
        }
    }
    v
}

async fn publish(state: &Arc<State>, name: &str, payload: Bytes) -> Response<Body> {
    let topic = TopicId::from_name(name);
    let node = &state.node;
    let subscribed = node
        .inspect(move |v| v.is_subscribed(&topic))
        .await
        .unwrap_or(false);
    if !subscribed {
        if let Err(e) = subscribe_topic(state, name).await {
            return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
        // A topic joined just now has no overlay yet: give it a moment to find neighbours,
        // or the message would wait for anti-entropy to spread.
        await_topic_neighbour(node, topic).await;
    }
    match node.publish(topic, payload).await {
        Ok(id) => {
            // Durable before it is acknowledged: a node killed from here on restores it and
            // serves it by reconciliation when it returns (SPEC.md §21.2).
            if let Err(e) = keep_own(state, topic, id).await {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("published {id} but could not store it: {e}"),
                );
            }
            json(
                StatusCode::OK,
                &serde_json::json!({ "topic": name, "id": id.to_string() }),
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &format!("cannot publish: {e}")),
    }
}
