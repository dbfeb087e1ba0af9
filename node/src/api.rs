//! The control API's requests, parsed without hyper: [`parse`] turns a request's method, target
//! (`path?query`), `Authorization` header, body and the node's token into an [`ApiRequest`] or an
//! [`ApiError`] carrying the HTTP status to answer with and a one-line message.
//!
//! The API (every route needs `Authorization: Bearer TOKEN`):
//!
//! | request | [`ApiRequest`] |
//! |---|---|
//! | `GET /v1/status` | [`Status`](ApiRequest::Status) |
//! | `GET /v1/peers` | [`Peers`](ApiRequest::Peers) |
//! | `POST /v1/publish?topic=NAME`, the payload as the body | [`Publish`](ApiRequest::Publish) |
//! | `GET /v1/subscribe?topic=NAME[&replay=1]` | [`Subscribe`](ApiRequest::Subscribe) |
//! | `POST /v1/presence/start?group=G`, `POST /v1/presence/stop?group=G`, `GET /v1/presence/online?group=G` | [`Presence`](ApiRequest::Presence) |
//! | `POST /v1/send?to=PEERID`, the message as the body | [`Send`](ApiRequest::Send) |
//! | `GET /v1/inbox[?replay=1]` | [`Inbox`](ApiRequest::Inbox) |
//!
//! Checks run in a fixed order and the first failure is the answer:
//!
//! 1. the token: the header must be exactly `Bearer TOKEN` (compared in constant time); an empty
//!    server token never matches. Otherwise 401, whatever the rest of the request;
//! 2. the path: an unknown one is 404;
//! 3. the method: a known path with the wrong method is 405, with the method to use in
//!    [`ApiError::allow`];
//! 4. the query: every parameter name must percent-decode (`%XX`, `+` is a space); a route's
//!    parameters (`topic`, `group`, `to`, `replay`) may each appear once and must decode to
//!    UTF-8; `topic`, `group` and `to` are required and not empty, `to` is a peer id (64 hex
//!    digits), `replay` is `1`, `true`, `0` or `false`. Other parameters are ignored. Otherwise
//!    400;
//! 5. the body: a payload (publish, send) over [`MAX_BODY`] is 413; a body on a route that takes
//!    none is 400.
//!
//! [`parse_head`] runs steps 1-3 alone, so that a server reads a body only for an authorised
//! request to a route that takes one.
//!
//! The Prometheus endpoint is not part of this API: it is served on its own address, without a
//! token, and [`parse_metrics`] checks its requests.
//!
//! The module depends on `std` and `hearsay_proto` only, so a fuzz target can include it on its
//! own.

use hearsay_proto::PeerId;
use std::fmt;

/// The largest body (a publish or send payload) a request may carry: 1 MiB.
pub const MAX_BODY: usize = 1 << 20;

/// Bytes of a request's path, method or parameter (escaped) quoted back in an error message:
/// past this, the rest is left out.
const MAX_ECHO: usize = 64;

/// The routes, for messages.
const ROUTES: &str = "GET /v1/status, GET /v1/peers, POST /v1/publish?topic=T, \
                      GET /v1/subscribe?topic=T[&replay=1], POST /v1/presence/{start,stop}?group=G, \
                      GET /v1/presence/online?group=G, POST /v1/send?to=PEERID, \
                      GET /v1/inbox[?replay=1]";

/// One route of the control API: what [`parse_head`] recognises before any body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/status`.
    Status,
    /// `GET /v1/peers`.
    Peers,
    /// `POST /v1/publish?topic=NAME`.
    Publish,
    /// `GET /v1/subscribe?topic=NAME[&replay=1]`.
    Subscribe,
    /// `POST /v1/presence/start?group=G`.
    PresenceStart,
    /// `POST /v1/presence/stop?group=G`.
    PresenceStop,
    /// `GET /v1/presence/online?group=G`.
    PresenceOnline,
    /// `POST /v1/send?to=PEERID`.
    Send,
    /// `GET /v1/inbox[?replay=1]`.
    Inbox,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 9] = [
        Route::Status,
        Route::Peers,
        Route::Publish,
        Route::Subscribe,
        Route::PresenceStart,
        Route::PresenceStop,
        Route::PresenceOnline,
        Route::Send,
        Route::Inbox,
    ];

    /// The route's path.
    pub fn path(self) -> &'static str {
        match self {
            Route::Status => "/v1/status",
            Route::Peers => "/v1/peers",
            Route::Publish => "/v1/publish",
            Route::Subscribe => "/v1/subscribe",
            Route::PresenceStart => "/v1/presence/start",
            Route::PresenceStop => "/v1/presence/stop",
            Route::PresenceOnline => "/v1/presence/online",
            Route::Send => "/v1/send",
            Route::Inbox => "/v1/inbox",
        }
    }

    /// The method the route answers.
    pub fn method(self) -> &'static str {
        match self {
            Route::Publish | Route::PresenceStart | Route::PresenceStop | Route::Send => "POST",
            Route::Status
            | Route::Peers
            | Route::Subscribe
            | Route::PresenceOnline
            | Route::Inbox => "GET",
        }
    }

    /// Whether the route reads a body (the others must get none).
    pub fn takes_body(self) -> bool {
        matches!(self, Route::Publish | Route::Send)
    }

    fn from_path(path: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.path() == path)
    }
}

/// What a presence request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceAction {
    /// `POST /v1/presence/start`: start beaconing in the group.
    Start,
    /// `POST /v1/presence/stop`: stop beaconing.
    Stop,
    /// `GET /v1/presence/online`: the members seen online.
    Online,
}

impl PresenceAction {
    /// The last segment of the route's path: `start`, `stop` or `online`.
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceAction::Start => "start",
            PresenceAction::Stop => "stop",
            PresenceAction::Online => "online",
        }
    }
}

/// A well-formed, authorised control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRequest<'a> {
    /// `GET /v1/status`: the node's state.
    Status,
    /// `GET /v1/peers`: the node's neighbours.
    Peers,
    /// `POST /v1/publish?topic=NAME`: publish the body on the topic.
    Publish {
        /// The topic's name (decoded, not empty).
        topic: String,
        /// The message, at most [`MAX_BODY`] bytes (possibly empty).
        payload: &'a [u8],
    },
    /// `GET /v1/subscribe?topic=NAME[&replay=1]`: stream the topic's messages.
    Subscribe {
        /// The topic's name (decoded, not empty).
        topic: String,
        /// Send the node's latest deliveries of the topic first.
        replay: bool,
    },
    /// `POST /v1/presence/{start,stop}?group=G`, `GET /v1/presence/online?group=G`.
    Presence {
        /// What to do.
        action: PresenceAction,
        /// The group's name (decoded, not empty; whether it exists is for the server to say).
        group: String,
    },
    /// `POST /v1/send?to=PEERID`: an encrypted direct message.
    Send {
        /// The recipient.
        to: PeerId,
        /// The message, at most [`MAX_BODY`] bytes (possibly empty).
        payload: &'a [u8],
    },
    /// `GET /v1/inbox[?replay=1]`: stream the encrypted messages opened here.
    Inbox {
        /// Send the messages kept since the node started first.
        replay: bool,
    },
}

impl ApiRequest<'_> {
    /// The request's route.
    pub fn route(&self) -> Route {
        match self {
            ApiRequest::Status => Route::Status,
            ApiRequest::Peers => Route::Peers,
            ApiRequest::Publish { .. } => Route::Publish,
            ApiRequest::Subscribe { .. } => Route::Subscribe,
            ApiRequest::Presence { action, .. } => match action {
                PresenceAction::Start => Route::PresenceStart,
                PresenceAction::Stop => Route::PresenceStop,
                PresenceAction::Online => Route::PresenceOnline,
            },
            ApiRequest::Send { .. } => Route::Send,
            ApiRequest::Inbox { .. } => Route::Inbox,
        }
    }
}

/// A refused request: the HTTP status to answer with and why, in one line of ASCII.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// 400, 401, 404, 405 or 413.
    pub status: u16,
    /// One line for a person, without a trailing newline.
    pub message: String,
    /// For a 405: the method the path answers (the `Allow` header's value).
    pub allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            allow: None,
        }
    }

    fn unauthorized() -> Self {
        Self::new(
            401,
            "missing or wrong token: send `Authorization: Bearer` with the token from the \
             home directory's control.token",
        )
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                405,
                format!("{} is not allowed on {path}: use {allow}", echo(method)),
            )
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// `text` for a message: printable ASCII only (anything else escaped), cut after the first
/// character that brings it to [`MAX_ECHO`] bytes, with `...` when something was left out.
fn echo(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= MAX_ECHO {
            out.push_str("...");
            break;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// Whether `a` and `b` are equal, in a time that depends on the length of `b` (the secret) only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, y) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ y;
    }
    diff == 0
}

/// Whether `authorization` (the `Authorization` header, if any) is exactly `Bearer TOKEN` for
/// the node's `token`. An empty `token` authorises nothing.
pub fn authorized(authorization: Option<&str>, token: &str) -> bool {
    let presented = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Evaluate the comparison even without a header, so its time says nothing.
    let same = constant_time_eq(presented.as_bytes(), token.as_bytes());
    authorization.is_some() && !token.is_empty() && same
}

/// The value of `%XX`-encoded `text` (`+` is a space), if it is well formed and UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = hex(bytes.next()?)?;
                let lo = hex(bytes.next()?)?;
                out.push((hi << 4) | lo);
            }
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// A query string split into parameters with decoded names and raw values.
struct Query<'q> {
    params: Vec<(String, &'q str)>,
}

impl<'q> Query<'q> {
    fn parse(query: Option<&'q str>) -> Result<Self, ApiError> {
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(key) = percent_decode(key) else {
                return Err(ApiError::bad_request(format!(
                    "malformed query parameter name \"{}\": use %XX escapes",
                    echo(key)
                )));
            };
            params.push((key, value));
        }
        Ok(Self { params })
    }

    /// Parameter `name`, decoded, if present (once).
    fn get(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut found = self.params.iter().filter(|(k, _)| k == name);
        let Some((_, raw)) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(ApiError::bad_request(format!("`{name}` is given twice")));
        }
        percent_decode(raw).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("`{name}` is not valid percent-encoded UTF-8"))
        })
    }

    /// Parameter `name`, required and not empty; `what` names its value in messages.
    fn required(&self, name: &str, what: &str) -> Result<String, ApiError> {
        match self.get(name)? {
            None => Err(ApiError::bad_request(format!("missing ?{name}={what}"))),
            Some(v) if v.is_empty() => {
                Err(ApiError::bad_request(format!("`{name}` must not be empty")))
            }
            Some(v) => Ok(v),
        }
    }

    /// `replay`: absent, `0` or `false` for no; `1` or `true` for yes.
    fn replay(&self) -> Result<bool, ApiError> {
        match self.get("replay")?.as_deref() {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "`replay` is 1 or 0 (true or false), not \"{}\"",
                echo(other)
            ))),
        }
    }
}

/// The checks that need no body (token, path, method): the route to serve, so that a server
/// reads a body only for a route that takes one, and only from an authorised client.
pub fn parse_head(
    method: &str,
    path_and_query: &str,
    authorization: Option<&str>,
    token: &str,
) -> Result<Route, ApiError> {
    if !authorized(authorization, token) {
        return Err(ApiError::unauthorized());
    }
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    let Some(route) = Route::from_path(path) else {
        return Err(ApiError::new(
            404,
            format!(
                "unknown request path \"{}\": the API has {ROUTES}",
                echo(path)
            ),
        ));
    };
    if method != route.method() {
        return Err(ApiError::method_not_allowed(
            method,
            route.path(),
            route.method(),
        ));
    }
    Ok(route)
}

/// Parses a control request: `method` as sent (case matters), `path_and_query` the request
/// target (`/v1/publish?topic=news`; an absolute URI's path and query), `authorization` the
/// `Authorization` header if present, `body` the whole body (empty for none), `token` the node's
/// control token. See the [module docs](self) for the routes and the order of the checks.
pub fn parse<'a>(
    method: &str,
    path_and_query: &str,
    authorization: Option<&str>,
    body: &'a [u8],
    token: &str,
) -> Result<ApiRequest<'a>, ApiError> {
    let route = parse_head(method, path_and_query, authorization, token)?;
    let query = Query::parse(path_and_query.split_once('?').map(|(_, q)| q))?;
    let presence = |action| -> Result<ApiRequest<'a>, ApiError> {
        Ok(ApiRequest::Presence {
            action,
            group: query.required("group", "NAME")?,
        })
    };
    let request = match route {
        Route::Status => ApiRequest::Status,
        Route::Peers => ApiRequest::Peers,
        Route::Publish => ApiRequest::Publish {
            topic: query.required("topic", "NAME")?,
            payload: body,
        },
        Route::Subscribe => ApiRequest::Subscribe {
            topic: query.required("topic", "NAME")?,
            replay: query.replay()?,
        },
        Route::PresenceStart => presence(PresenceAction::Start)?,
        Route::PresenceStop => presence(PresenceAction::Stop)?,
        Route::PresenceOnline => presence(PresenceAction::Online)?,
        Route::Send => {
            let to = query.required("to", "PEERID")?;
            let Ok(to) = to.parse::<PeerId>() else {
                return Err(ApiError::bad_request(format!(
                    "bad recipient \"{}\": a peer id is 64 hex digits",
                    echo(&to)
                )));
            };
            ApiRequest::Send { to, payload: body }
        }
        Route::Inbox => ApiRequest::Inbox {
            replay: query.replay()?,
        },
    };
    if route.takes_body() {
        if body.len() > MAX_BODY {
            return Err(ApiError::new(413, "the message is larger than 1 MiB"));
        }
    } else if !body.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{} {} takes no body",
            route.method(),
            route.path()
        )));
    }
    Ok(request)
}

/// Checks a request to the metrics address (no token there): only `GET /metrics` (a query is
/// ignored) is served; otherwise 404, or 405 for another method on `/metrics`.
pub fn parse_metrics(method: &str, path_and_query: &str) -> Result<(), ApiError> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    if path != "/metrics" {
        return Err(ApiError::new(404, "try /metrics"));
    }
    if method != "GET" {
        return Err(ApiError::method_not_allowed(method, "/metrics", "GET"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef";
    const AUTH: Option<&str> = Some("Bearer 0123456789abcdef");
    const PEER: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    fn ok<'a>(method: &str, target: &str, body: &'a [u8]) -> ApiRequest<'a> {
        parse(method, target, AUTH, body, TOKEN).expect("a valid request parses")
    }

    fn refused(method: &str, target: &str, auth: Option<&str>, body: &[u8]) -> ApiError {
        let e = parse(method, target, auth, body, TOKEN).expect_err("the request is refused");
        assert!(
            e.message.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
            "one line of printable ASCII: {e}"
        );
        assert_eq!(e.allow.is_some(), e.status == 405);
        e
    }

    fn status(method: &str, target: &str, body: &[u8]) -> u16 {
        refused(method, target, AUTH, body).status
    }

    fn peer() -> PeerId {
        PEER.parse().expect("a peer id")
    }

    #[test]
    fn status_and_peers() {
        assert_eq!(ok("GET", "/v1/status", b""), ApiRequest::Status);
        assert_eq!(ok("GET", "/v1/peers", b""), ApiRequest::Peers);
        // A query on them is ignored.
        assert_eq!(ok("GET", "/v1/status?verbose=1", b""), ApiRequest::Status);
        assert_eq!(ok("GET", "/v1/peers?", b""), ApiRequest::Peers);
    }

    #[test]
    fn publish_with_topic_and_payload() {
        let request = ok("POST", "/v1/publish?topic=news", b"hello");
        assert_eq!(
            request,
            ApiRequest::Publish {
                topic: "news".into(),
                payload: b"hello"
            }
        );
        assert_eq!(request.route(), Route::Publish);
        // Encoded names, other parameters, an empty payload, a payload of exactly MAX_BODY.
        assert_eq!(
            ok(
                "POST",
                "/v1/publish?x=1&topic=a%20b+c%C3%A7%2F%3F%26&y",
                b""
            ),
            ApiRequest::Publish {
                topic: "a b cç/?&".into(),
                payload: b""
            }
        );
        assert_eq!(
            ok("POST", "/v1/publish?%74opic=t&&", b"x"),
            ApiRequest::Publish {
                topic: "t".into(),
                payload: b"x"
            }
        );
        let big = vec![7u8; MAX_BODY];
        assert!(matches!(
            ok("POST", "/v1/publish?topic=t", &big),
            ApiRequest::Publish { payload, .. } if payload.len() == MAX_BODY
        ));
    }

    #[test]
    fn subscribe_with_topic_and_replay() {
        assert_eq!(
            ok("GET", "/v1/subscribe?topic=chat%2Fgeneral", b""),
            ApiRequest::Subscribe {
                topic: "chat/general".into(),
                replay: false
            }
        );
        for (query, replay) in [
            ("&replay=1", true),
            ("&replay=true", true),
            ("&replay=0", false),
            ("&replay=false", false),
            ("&count=3", false),
        ] {
            assert_eq!(
                ok("GET", &format!("/v1/subscribe?topic=t{query}"), b""),
                ApiRequest::Subscribe {
                    topic: "t".into(),
                    replay
                },
                "{query}"
            );
        }
        for query in ["&replay", "&replay=", "&replay=yes", "&replay=1&replay=1"] {
            assert_eq!(
                status("GET", &format!("/v1/subscribe?topic=t{query}"), b""),
                400,
                "{query}"
            );
        }
    }

    #[test]
    fn presence_start_stop_online() {
        for (method, action) in [
            ("POST", PresenceAction::Start),
            ("POST", PresenceAction::Stop),
            ("GET", PresenceAction::Online),
        ] {
            let path = format!("/v1/presence/{}", action.as_str());
            let request = ok(method, &format!("{path}?group=friends%20club"), b"");
            assert_eq!(
                request,
                ApiRequest::Presence {
                    action,
                    group: "friends club".into()
                }
            );
            assert_eq!(request.route().path(), path);
            for query in ["", "?group", "?group=", "?group=a&group=b", "?group=%C3"] {
                assert_eq!(
                    status(method, &format!("{path}{query}"), b""),
                    400,
                    "{path}{query}"
                );
            }
            assert_eq!(status(method, &format!("{path}?group=g"), b"x"), 400);
        }
        assert_eq!(
            refused("GET", "/v1/presence/start?group=g", AUTH, b"").allow,
            Some("POST")
        );
    }

    #[test]
    fn send_to_a_peer() {
        let target = format!("/v1/send?to={PEER}");
        assert_eq!(
            ok("POST", &target, b"secret"),
            ApiRequest::Send {
                to: peer(),
                payload: b"secret"
            }
        );
        assert_eq!(ok("POST", &target, b"").route(), Route::Send);
        for query in [
            String::new(),
            "?to=".into(),
            "?to=abc".into(),
            format!("?to={}", &PEER[1..]),
            format!("?to={PEER}0"),
            format!("?to={}g", &PEER[1..]),
            format!("?to={PEER}&to={PEER}"),
        ] {
            assert_eq!(
                status("POST", &format!("/v1/send{query}"), b"m"),
                400,
                "{query}"
            );
        }
        let big = vec![0u8; MAX_BODY + 1];
        assert_eq!(status("POST", &target, &big), 413);
        assert_eq!(status("GET", &target, b""), 405);
    }

    #[test]
    fn inbox_with_and_without_replay() {
        assert_eq!(
            ok("GET", "/v1/inbox", b""),
            ApiRequest::Inbox { replay: false }
        );
        assert_eq!(
            ok("GET", "/v1/inbox?replay=1", b""),
            ApiRequest::Inbox { replay: true }
        );
        assert_eq!(status("GET", "/v1/inbox?replay=2", b""), 400);
        assert_eq!(status("GET", "/v1/inbox", b"x"), 400);
        assert_eq!(status("POST", "/v1/inbox", b""), 405);
    }

    #[test]
    fn every_route_round_trips_through_parse_head() {
        for route in Route::ALL {
            let target = format!("{}?topic=t&group=g&to={PEER}", route.path());
            let body: &[u8] = if route.takes_body() { b"p" } else { b"" };
            assert_eq!(parse_head(route.method(), &target, AUTH, TOKEN), Ok(route));
            assert_eq!(ok(route.method(), &target, body).route(), route);
        }
    }

    #[test]
    fn a_missing_or_wrong_token_is_401_whatever_else() {
        let wrong = [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("bearer 0123456789abcdef"),
            Some("Basic 0123456789abcdef"),
            Some("Bearer  0123456789abcdef"),
            Some("Bearer 0123456789abcdef "),
            Some("Bearer 0123456789abcde"),
            Some("Bearer 0123456789abcdeF"),
            Some("Bearer 0123456789abcdef0"),
            Some("0123456789abcdef"),
        ];
        for auth in wrong {
            for (method, target) in [
                ("GET", "/v1/status"),
                ("POST", "/v1/publish?topic=t"),
                ("POST", "/v1/send?to=x"),
                ("GET", "/nowhere"),
                ("DELETE", "/v1/peers"),
            ] {
                let e = refused(method, target, auth, b"");
                assert_eq!(e.status, 401, "{auth:?} {method} {target}");
            }
        }
        // An empty server token authorises nothing, not even an empty presented one.
        for auth in [None, Some(""), Some("Bearer ")] {
            assert_eq!(
                parse("GET", "/v1/status", auth, b"", "")
                    .expect_err("refused")
                    .status,
                401
            );
        }
        assert!(authorized(AUTH, TOKEN));
        assert!(!authorized(AUTH, "0123456789abcdeg"));
    }

    #[test]
    fn unknown_paths_are_404() {
        for target in [
            "/",
            "/v1",
            "/v1/status/",
            "/v1/Status",
            "/v1/%73tatus",
            "/v2/status",
            "v1/status",
            "",
            "/metrics",
            "/v1/publish/x?topic=t",
            "/v1/presence",
            "/v1/presence/",
            "/v1/presence/restart?group=g",
            "/v1/inbox/",
        ] {
            assert_eq!(status("GET", target, b""), 404, "{target:?}");
        }
        // The path is quoted back escaped and cut short.
        let long = format!("/{}\n\u{7f}é", "x".repeat(200));
        let e = refused("GET", &long, AUTH, b"");
        assert_eq!(e.status, 404);
        assert!(e.message.contains("..."));
        let e = refused("GET", "/a\r\nb\u{2028}", AUTH, b"");
        assert!(e.message.contains("/a\\r\\nb\\u{2028}"), "{}", e.message);
        // Escapes count towards the limit: a long method of control characters stays short.
        let e = refused(&"\u{1}".repeat(1000), "/v1/status", AUTH, b"");
        assert_eq!(e.status, 405);
        assert!(e.message.len() < 200, "{}", e.message);
    }

    #[test]
    fn wrong_methods_are_405_with_allow() {
        for (method, target, allow) in [
            ("POST", "/v1/status", "GET"),
            ("PUT", "/v1/peers", "GET"),
            ("GET", "/v1/publish?topic=t", "POST"),
            ("POST", "/v1/subscribe?topic=t", "GET"),
            ("GET", "/v1/presence/stop?group=g", "POST"),
            ("POST", "/v1/presence/online?group=g", "GET"),
            ("get", "/v1/status", "GET"),
            ("HEAD", "/v1/status", "GET"),
            ("", "/v1/status", "GET"),
        ] {
            let e = refused(method, target, AUTH, b"");
            assert_eq!((e.status, e.allow), (405, Some(allow)), "{method} {target}");
        }
        // 405 comes before the query and body checks.
        assert_eq!(status("GET", "/v1/publish", b"body"), 405);
    }

    #[test]
    fn bad_topics_are_400() {
        for route in [Route::Publish, Route::Subscribe] {
            let (method, path) = (route.method(), route.path());
            for query in [
                "",
                "?",
                "?topic",
                "?topic=",
                "?name=t",
                "?topic=a&topic=b",
                "?topic=%",
                "?topic=%4",
                "?topic=%zz",
                "?topic=%+5",
                "?topic=%FF",
                "?topic=t&%G0=1",
            ] {
                assert_eq!(
                    status(method, &format!("{path}{query}"), b""),
                    400,
                    "{method} {path}{query}"
                );
            }
        }
        assert_eq!(
            refused("POST", "/v1/publish", AUTH, b"").message,
            "missing ?topic=NAME"
        );
    }

    #[test]
    fn bodies_are_checked() {
        let big = vec![0u8; MAX_BODY + 1];
        assert_eq!(status("POST", "/v1/publish?topic=t", &big), 413);
        // A missing topic is reported before the size.
        assert_eq!(status("POST", "/v1/publish", &big), 400);
        for (method, target) in [
            ("GET", "/v1/status"),
            ("GET", "/v1/peers"),
            ("GET", "/v1/subscribe?topic=t"),
            ("POST", "/v1/presence/start?group=g"),
            ("GET", "/v1/inbox"),
        ] {
            assert_eq!(status(method, target, b"x"), 400, "{target}");
        }
    }

    #[test]
    fn metrics_requests() {
        assert_eq!(parse_metrics("GET", "/metrics"), Ok(()));
        assert_eq!(parse_metrics("GET", "/metrics?x=1"), Ok(()));
        assert_eq!(parse_metrics("GET", "/").map_err(|e| e.status), Err(404));
        assert_eq!(
            parse_metrics("GET", "/v1/status").map_err(|e| e.status),
            Err(404)
        );
        let e = parse_metrics("POST", "/metrics").expect_err("refused");
        assert_eq!((e.status, e.allow), (405, Some("GET")));
    }

    #[test]
    fn errors_display_as_status_and_message() {
        let e = refused("GET", "/v1/publish", AUTH, b"");
        assert_eq!(
            e.to_string(),
            "405 GET is not allowed on /v1/publish: use POST"
        );
    }
}
