//! Presence through the control API, in groups whose secrets are kept in the home directory.

use super::State;
use super::routes::{Body, error, json};
use hyper::{Response, StatusCode};
use std::sync::Arc;

/// `POST /v1/presence/{start,stop}?group=NAME`, `GET /v1/presence/online?group=NAME`: the
/// group's secret is read from this node's home (`hearsay group ...`).
pub(super) async fn presence(state: &Arc<State>, action: &str, name: &str) -> Response<Body> {
    let groups = crate::presence_groups::PresenceGroups::new(&state.home);
    let secret = match groups.secret(name) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::NOT_FOUND, &e.to_string()),
    };
    let topic = hearsay_proto::discovery::presence::presence_topic(&secret);
    let node = &state.node;
    let result = match action {
        "start" => node.presence_start(*secret).await.map(|_| Vec::new()),
        "stop" => node.presence_stop(topic).await.map(|()| Vec::new()),
        _ => node.presence_online(topic).await,
    };
    match result {
        Ok(online) => {
            if action == "start"
                && let Ok(mut topics) = state.topics.lock()
            {
                topics.insert(topic, format!("presence:{name}"));
            }
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "group": name,
                    "topic": topic.to_string(),
                    "online": online.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                }),
            )
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &format!("presence {action}: {e}")),
    }
}
