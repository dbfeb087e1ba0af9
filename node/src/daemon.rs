//! `hearsay run`: a long-running node with a local control API (HTTP/JSON, bearer token) and an
//! optional Prometheus metrics endpoint.
//!
//! Files `run` keeps in the home directory while it runs (removed when it stops):
//!
//! - `control.token` (mode 0600): the token every control request must carry as
//!   `Authorization: Bearer TOKEN`; a new one at every start.
//! - `control.addr`: the control API's address, where client commands find it.
//! - `node.addr`: the node as a bootstrap peer, `PEERID@ADDR`.
//!
//! and one that stays: `state.redb`, the peer cache ([`crate::store`]), which also keeps a
//! second `run` off the same home.
//!
//! Control API (all JSON, all need the token):
//!
//! - `GET /v1/status`, `GET /v1/peers`
//! - `POST /v1/publish?topic=NAME` with the payload as the body
//! - `GET /v1/subscribe?topic=NAME[&replay=1]`: a stream of JSON lines, one per delivery; with
//!   `replay=1` the node's latest deliveries of the topic (up to 1,024, kept since it started)
//!   come first.
//! - `POST /v1/presence/start?group=G`, `POST /v1/presence/stop?group=G`,
//!   `GET /v1/presence/online?group=G`: presence in a group whose secret is in the home.
//! - `POST /v1/send?to=PEERID` with the message as the body: an encrypted direct message.
//! - `GET /v1/inbox[?replay=1]`: a stream of JSON lines, one per encrypted message opened.

use crate::api::{self, ApiRequest};
use crate::store::{MailboxEntry, Store};
use crate::{Error, Keystore, failed};
use bytes::Bytes;
use clap::Args;
use hearsay_proto::{PeerId, TimeDelta, TopicId};
use hearsay_tokio::{BootstrapPeer, NodeEvent, NodeHandle, Received, SpawnError, default_config};
use http_body_util::{BodyExt, Channel, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The token file in the home directory.
pub const TOKEN_FILE: &str = "control.token";
/// The file holding the control API's address.
pub const CONTROL_ADDR_FILE: &str = "control.addr";
/// The file holding the node's `PEERID@ADDR`.
pub const NODE_ADDR_FILE: &str = "node.addr";
/// How often the neighbours are written into the peer cache.
const PEER_SAVE_INTERVAL: Duration = Duration::from_secs(2);
/// How long `run` waits for its first neighbour when given --bootstrap.
const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(15);
/// Roles a node may be asked for.
const KNOWN_ROLES: &[&str] = &["anchor", "reflector"];
/// Deliveries kept per topic for `subscribe --replay`.
const RECENT_PER_TOPIC: usize = 1024;
/// An anchor's default mailbox size per topic.
const DEFAULT_MAILBOX: usize = 4096;
/// The largest mailbox per topic (the core remembers 65,536 ids as seen per topic).
const MAX_MAILBOX: usize = 32_768;
/// Most archived messages written to the store in one transaction.
const MAILBOX_BATCH: usize = 512;

/// `hearsay run` flags; every one may also come from `--config FILE` (flags win).
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// The identity to run as (see `hearsay identity create`).
    #[arg(long, value_name = "NAME")]
    pub identity: Option<String>,
    /// The UDP address to listen on for QUIC, e.g. 0.0.0.0:4433 [default: 127.0.0.1:0]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// A peer to join through: ADDR or PEERID@ADDR (repeatable).
    #[arg(long, value_name = "ADDR|PEERID@ADDR")]
    pub bootstrap: Vec<BootstrapPeer>,
    /// Roles to take on: `anchor` (keeps a durable mailbox of its topics' recent messages and
    /// serves them to nodes that return), `reflector` (tells connecting peers the address it
    /// sees them at).
    #[arg(long, value_delimiter = ',', value_name = "ROLE,...")]
    pub roles: Vec<String>,
    /// An anchor's mailbox: most messages kept per topic [default: 4096]
    #[arg(long, value_name = "N")]
    pub mailbox: Option<usize>,
    /// How long messages are kept, served and accepted on every topic, e.g. 10m, 2h
    /// [default: 10m]. Nodes of one topic should agree on it.
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<String>,
    /// An address to advertise in this node's record instead of the bound one (repeatable),
    /// e.g. the public address of a port forward.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Vec<SocketAddr>,
    /// A topic to subscribe to from the start (repeatable).
    #[arg(long, value_name = "TOPIC")]
    pub subscribe: Vec<String>,
    /// The control API's TCP address, loopback only [default: 127.0.0.1:0]
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// A TOML file with any of these settings (keys as the flags, e.g. `bind = "0.0.0.0:4433"`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The identity's passphrase, on the first line of FILE (for a protected identity;
    /// `$HEARSAY_PASSPHRASE` works too).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, value_name = "FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    identity: Option<String>,
    bind: Option<SocketAddr>,
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    subscribe: Vec<String>,
    control: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    log_format: Option<String>,
    mailbox: Option<usize>,
    retention: Option<String>,
    #[serde(default)]
    advertise: Vec<SocketAddr>,
    passphrase_file: Option<PathBuf>,
}

/// The settings after merging flags and the file.
#[derive(Debug, Clone)]
struct Settings {
    identity: String,
    bind: SocketAddr,
    bootstrap: Vec<BootstrapPeer>,
    roles: Vec<String>,
    subscribe: Vec<String>,
    control: SocketAddr,
    metrics: Option<SocketAddr>,
    log_json: bool,
    mailbox: usize,
    retention: Duration,
    advertise: Vec<SocketAddr>,
    passphrase_file: Option<PathBuf>,
}

impl Settings {
    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

fn merge(args: &RunArgs) -> Result<Settings, Error> {
    let file = match &args.config {
        None => FileConfig::default(),
        Some(path) => {
            let text = fs::read_to_string(path)
                .map_err(|e| failed(format!("cannot read config file {}: {e}", path.display())))?;
            toml::from_str(&text).map_err(|e| {
                let msg = e.message().to_owned();
                failed(format!(
                    "config file {} is not valid: {msg} (keys: identity, bind, bootstrap, roles, \
                     subscribe, control, metrics, log-format, mailbox, retention, advertise, \
                     passphrase-file)",
                    path.display()
                ))
            })?
        }
    };
    let identity = args.identity.clone().or(file.identity).ok_or_else(|| {
        failed("which identity? pass --identity NAME (see `hearsay identity list`)")
    })?;
    let mut bootstrap = args.bootstrap.clone();
    for text in &file.bootstrap {
        bootstrap.push(text.parse().map_err(|e| {
            failed(format!(
                "bad bootstrap {text:?} in the config file: {e}; use ADDR or PEERID@ADDR"
            ))
        })?);
    }
    let pick = |flag: &Vec<String>, file: Vec<String>| {
        if flag.is_empty() { file } else { flag.clone() }
    };
    let roles = pick(&args.roles, file.roles);
    for role in &roles {
        if !KNOWN_ROLES.contains(&role.as_str()) {
            return Err(failed(format!(
                "unknown role {role:?}: the roles are {}",
                KNOWN_ROLES.join(", ")
            )));
        }
    }
    let log_format = args
        .log_format
        .clone()
        .or(file.log_format)
        .unwrap_or_else(|| "human".into());
    if log_format != "human" && log_format != "json" {
        return Err(failed(format!(
            "unknown log format {log_format:?}: use human or json"
        )));
    }
    let control = args
        .control
        .or(file.control)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    if !control.ip().is_loopback() {
        return Err(failed(format!(
            "the control API must listen on a loopback address, not {control}: use e.g. \
             --control 127.0.0.1:{}",
            control.port()
        )));
    }
    let retention = match args.retention.clone().or(file.retention) {
        None => Duration::from_secs(600),
        Some(text) => crate::http::parse_duration(&text)
            .map_err(|e| failed(format!("bad --retention: {e}")))?,
    };
    if retention < Duration::from_secs(10) || retention > Duration::from_secs(7 * 24 * 3600) {
        return Err(failed(format!(
            "--retention {retention:?} is out of range: use 10s to 7d"
        )));
    }
    let mailbox = args.mailbox.or(file.mailbox).unwrap_or(DEFAULT_MAILBOX);
    if !(1..=MAX_MAILBOX).contains(&mailbox) {
        return Err(failed(format!(
            "--mailbox {mailbox} is out of range: use 1 to {MAX_MAILBOX} messages per topic"
        )));
    }
    let advertise = if args.advertise.is_empty() {
        file.advertise
    } else {
        args.advertise.clone()
    };
    Ok(Settings {
        passphrase_file: args.passphrase_file.clone().or(file.passphrase_file),
        mailbox,
        retention,
        advertise,
        identity,
        bind: args
            .bind
            .or(file.bind)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        bootstrap,
        roles,
        subscribe: pick(&args.subscribe, file.subscribe),
        control,
        metrics: args.metrics.or(file.metrics),
        log_json: log_format == "json",
    })
}

fn init_logs(json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    // A second `run` in one process (tests) keeps the first subscriber.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// Writes `contents` to `home/name` with mode 0600, replacing any old file.
fn write_private(home: &Path, name: &str, contents: &str) -> Result<(), Error> {
    let path = home.join(name);
    let _ = fs::remove_file(&path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| failed(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
}

/// Removes the run-time files when `run` ends, however it ends.
struct RuntimeFiles(PathBuf);

impl Drop for RuntimeFiles {
    fn drop(&mut self) {
        for name in [TOKEN_FILE, CONTROL_ADDR_FILE, NODE_ADDR_FILE] {
            let _ = fs::remove_file(self.0.join(name));
        }
    }
}

fn new_token() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(Error::Randomness)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The error line for an address that cannot be bound.
fn bind_error(what: &str, flag: &str, addr: SocketAddr, e: &io::Error) -> Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        failed(format!(
            "cannot listen for {what} on {addr}: the port is in use; pick another with {flag}"
        ))
    } else {
        failed(format!(
            "cannot listen for {what} on {addr}: {e}; check {flag}"
        ))
    }
}

/// `hearsay run`: blocks until SIGINT or SIGTERM.
pub fn run(home: &Path, args: &RunArgs) -> Result<(), Error> {
    let settings = merge(args)?;
    init_logs(settings.log_json);
    let config = default_config();
    let passphrase = crate::read_passphrase(settings.passphrase_file.as_deref())?;
    let identity = Keystore::new(home)
        .load_with(
            &*config.crypto,
            &settings.identity,
            passphrase.as_deref().map(|p| p.as_slice()),
        )
        .map_err(|e| match e {
            Error::NotFound(name) => failed(format!(
                "no identity named {name:?} in {}: create it with `hearsay identity create {name}`",
                home.display()
            )),
            other => other,
        })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(home, settings, identity, config))
}

/// What the control API shares between requests.
struct State {
    node: NodeHandle,
    identity: String,
    roles: Vec<String>,
    control: SocketAddr,
    metrics: Option<SocketAddr>,
    token: String,
    started: Instant,
    /// Topic names this node has subscribed to, by id.
    topics: Mutex<BTreeMap<TopicId, String>>,
    /// The latest deliveries of each subscribed topic, for `subscribe --replay`.
    recent: Mutex<BTreeMap<TopicId, VecDeque<hearsay_tokio::Delivery>>>,
    store: Arc<Store>,
    /// An anchor's mailbox size per topic.
    mailbox: usize,
    /// Archived messages the anchor could not store (its event receiver lagged).
    mailbox_lost: AtomicU64,
    /// Mailbox messages handed back to the core at start.
    restored: AtomicU64,
    /// The home directory (group secrets are read from it).
    home: PathBuf,
    /// Encrypted messages this node opened.
    inbox: Inbox,
    /// Delivery latency of the topics' messages.
    latency: Histogram,
}

async fn serve(
    home: &Path,
    settings: Settings,
    identity: hearsay_proto::Identity,
    mut config: hearsay_proto::Config,
) -> Result<(), Error> {
    let anchor = settings.has_role("anchor");
    let plumtree = &mut config.topics.plumtree;
    plumtree.retention =
        TimeDelta::from_micros(u64::try_from(settings.retention.as_micros()).unwrap_or(u64::MAX));
    if anchor {
        plumtree.archive = true;
        plumtree.cache_messages = plumtree.cache_messages.max(settings.mailbox);
    }
    fs::create_dir_all(home)
        .map_err(|e| failed(format!("cannot create {}: {e}", home.display())))?;
    let store = Arc::new(Store::open(home)?);
    // Without --bootstrap, rejoin through the peers this home remembers.
    let cached = if settings.bootstrap.is_empty() {
        store.cached_peers(8)?
    } else {
        Vec::new()
    };
    let control = TcpListener::bind(settings.control)
        .await
        .map_err(|e| bind_error("the control API", "--control", settings.control, &e))?;
    let control_addr = control
        .local_addr()
        .map_err(|e| failed(format!("cannot read the control address: {e}")))?;
    let metrics = match settings.metrics {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| bind_error("metrics", "--metrics", addr, &e))?,
        ),
    };
    let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());

    // The core's state from the last run: a higher boot count (sequence numbers are never
    // reused) and the remembered records.
    let me = identity.peer_id();
    let saved = store
        .state()?
        .and_then(|bytes| hearsay_proto::PersistentState::from_bytes(&bytes).ok())
        .filter(|s| s.owner == me);
    let mut transport = hearsay_tokio::TransportConfig::default();
    if anchor {
        // An anchor reads every retained message from the event stream: room for bursts.
        transport.event_capacity = 8192;
    }
    transport.reflector = settings.has_role("reflector");
    let mut builder = hearsay_tokio::NodeBuilder::new(identity)
        .bind(settings.bind)
        .config(config)
        .transport(transport)
        .bootstrap(settings.bootstrap.iter().chain(&cached).cloned());
    if let Some(saved) = saved {
        builder = builder.restore(saved);
    }
    if !settings.advertise.is_empty() {
        builder = builder.advertise(settings.advertise.iter().copied());
    }
    let node = builder.spawn().map_err(|e| match e {
        SpawnError::Bind { addr, source } => bind_error("QUIC", "--bind", addr, &source),
        other => failed(format!("cannot start the node: {other}")),
    })?;
    // Saved before anything is published: a node killed from here on restarts with a higher
    // boot count than this run, so its sequence numbers never repeat.
    save_state(&node, &store).await?;
    let mut events = node.events();
    let log_rx = node.events();
    // Taken before any topic is joined, so that no archived message is missed.
    let archive_rx = anchor.then(|| node.events());
    let services_rx = node.events();

    let token = new_token()?;
    let _files = RuntimeFiles(home.to_owned());
    write_private(home, TOKEN_FILE, &format!("{token}\n"))?;
    write_private(
        home,
        NODE_ADDR_FILE,
        &format!("{}\n", node.bootstrap_peer()),
    )?;
    write_private(home, CONTROL_ADDR_FILE, &format!("{control_addr}\n"))?;

    let state = Arc::new(State {
        node: node.clone(),
        identity: settings.identity.clone(),
        roles: settings.roles.clone(),
        control: control_addr,
        metrics: metrics_addr,
        token,
        started: Instant::now(),
        topics: Mutex::default(),
        recent: Mutex::default(),
        store: store.clone(),
        mailbox: settings.mailbox,
        mailbox_lost: AtomicU64::new(0),
        restored: AtomicU64::new(0),
        home: home.to_owned(),
        inbox: Inbox::default(),
        latency: Histogram::new(LATENCY_BUCKETS),
    });
    tokio::spawn(watch_services(services_rx, state.clone()));
    // Letters to this node are announced on its inbox topic.
    let inbox = inbox_topic(&me);
    node.subscribe(inbox)
        .await
        .map_err(|e| failed(format!("cannot join this node's inbox topic: {e}")))?;
    if let Ok(mut topics) = state.topics.lock() {
        topics.insert(inbox, "inbox".to_owned());
    }
    if let Some(rx) = archive_rx {
        tokio::spawn(archive_messages(rx, state.clone()));
    }
    for name in &settings.subscribe {
        subscribe_topic(&state, name)
            .await
            .map_err(|e| failed(format!("cannot subscribe to {name:?}: {e}")))?;
    }
    tracing::info!(
        peer = %node.peer_id(),
        quic = %node.local_addr(),
        control = %control_addr,
        metrics = ?metrics_addr,
        "node running as {}; join it with --bootstrap {}",
        settings.identity,
        node.bootstrap_peer()
    );
    if !cached.is_empty() {
        tracing::info!(peers = cached.len(), "rejoining through the peer cache");
    }
    if anchor {
        tracing::info!(
            mailbox = settings.mailbox,
            retention = ?settings.retention,
            restored = state.restored.load(Ordering::Relaxed),
            "anchor: keeping a mailbox of every subscribed topic"
        );
    }

    tokio::spawn(accept_loop(control, state.clone(), false));
    if let Some(listener) = metrics {
        tokio::spawn(accept_loop(listener, state.clone(), true));
    }
    tokio::spawn(log_events(log_rx));

    // An unreachable bootstrap is fatal only if every bootstrap peer failed.
    if !settings.bootstrap.is_empty() {
        let limit = tokio::time::sleep(BOOTSTRAP_LIMIT);
        tokio::pin!(limit);
        let mut failures = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(NodeEvent::BootstrapFailed { peer, error }) => {
                        // A pinned peer may fail several times (the core retries): count
                        // distinct peers.
                        let line = format!("{peer}: {error}");
                        if !failures.iter().any(|f: &String| f.starts_with(&format!("{peer}:"))) {
                            failures.push(line);
                        }
                        if failures.len() >= settings.bootstrap.len() {
                            node.shutdown().await;
                            return Err(failed(format!(
                                "cannot reach any bootstrap peer ({}); check the addresses and \
                                 that those nodes are running",
                                failures.join("; ")
                            )));
                        }
                    }
                    Some(_) => {}
                    None => return Err(failed("the node stopped while joining")),
                },
                _ = tick.tick() => {
                    if node.peers().await.is_ok_and(|p| !p.is_empty()) {
                        tracing::info!("joined the overlay");
                        break;
                    }
                }
                () = &mut limit => {
                    node.shutdown().await;
                    let mut tried: Vec<String> =
                        settings.bootstrap.iter().map(|b| b.to_string()).collect();
                    tried.dedup();
                    return Err(failed(format!(
                        "cannot reach any bootstrap peer within {} s ({}); check the addresses \
                         and that those nodes are running",
                        BOOTSTRAP_LIMIT.as_secs(),
                        tried.join(", ")
                    )));
                }
            }
        }
    }

    tokio::spawn(save_peers_every(state.clone(), PEER_SAVE_INTERVAL));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| failed(format!("cannot listen for signals: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping: leaving the overlay");
    save_peers(&state).await;
    node.shutdown().await;
    Ok(())
}

/// Writes the core's persistent state into the store.
async fn save_state(node: &hearsay_tokio::NodeHandle, store: &Arc<Store>) -> Result<(), Error> {
    let saved = node
        .persistent_state()
        .await
        .map_err(|e| failed(format!("cannot read the node's state: {e}")))?;
    let bytes = saved
        .to_bytes()
        .map_err(|e| failed(format!("cannot encode the node's state: {e}")))?;
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.save_state(&bytes))
        .await
        .map_err(|e| failed(format!("cannot save the node's state: {e}")))?
}

/// Writes the current neighbours into the peer cache, and the core's state.
async fn save_peers(state: &Arc<State>) {
    if let Err(e) = save_state(&state.node, &state.store).await {
        tracing::warn!(error = %e, "cannot save the node's state");
    }
    let Ok(peers) = state.node.peers().await else {
        return;
    };
    if peers.is_empty() {
        return;
    }
    let list: Vec<(PeerId, SocketAddr)> = peers.iter().map(|n| (n.peer, n.address)).collect();
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.save_peers(&list)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the peer cache"),
        Err(e) => tracing::warn!(error = %e, "cannot save the peer cache"),
    }
}

async fn save_peers_every(state: Arc<State>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        save_peers(&state).await;
    }
}

async fn log_events(mut events: hearsay_tokio::Events) {
    while let Some(event) = events.recv().await {
        match event {
            NodeEvent::AddressObserved { by, address } => {
                tracing::info!(reflector = %by, %address, "a reflector sees this node at {address}");
            }
            NodeEvent::NeighborUp { peer, address } => {
                tracing::info!(%peer, address = ?address, "neighbour up");
            }
            NodeEvent::NeighborDown { peer, reason } => {
                tracing::info!(%peer, reason = ?reason, "neighbour down");
            }
            NodeEvent::BootstrapFailed { peer, error } => {
                tracing::warn!(%peer, %error, "bootstrap peer failed");
            }
            NodeEvent::DialFailed { peer, error } => {
                tracing::debug!(%peer, %error, "dial failed");
            }
            _ => {}
        }
    }
}

async fn subscribe_topic(
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

/// Hands an anchor's stored messages of `topic` back to the core (checked there again).
async fn restore_mailbox(state: &State, topic: TopicId, name: &str) {
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
async fn archive_messages(mut events: hearsay_tokio::Events, state: Arc<State>) {
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
                    id,
                    expires,
                    record,
                } => batch.push(MailboxEntry {
                    topic,
                    id,
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
        match tokio::task::spawn_blocking(move || store.archive(&batch, max, unix_micros())).await {
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

async fn accept_loop(listener: TcpListener, state: Arc<State>, metrics: bool) {
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

type Body = Either<Full<Bytes>, Channel<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(body.into())));
    *response.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    respond(status, "application/json", body)
}

fn error(status: StatusCode, text: &str) -> Response<Body> {
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

/// Protocol numbers read from the core in one inspect job.
#[derive(Debug, Default)]
struct CoreNumbers {
    boot_count: u64,
    neighbors: usize,
    known_records: usize,
    published: u64,
    rejected: Vec<(&'static str, u64)>,
    /// (topic id, topic neighbours, delivered, retained)
    topics: Vec<(TopicId, usize, u64, usize)>,
    frames_in_by_kind: [u64; 7],
    frames_out_by_kind: [u64; 7],
    passive: usize,
    suspects: usize,
    transmits_dropped: u64,
    events_dropped: u64,
    /// (what, count): payloads and records that failed their checks.
    verify_failures: Vec<(&'static str, u64)>,
}

async fn core_numbers(node: &NodeHandle) -> Option<CoreNumbers> {
    node.inspect(|v| {
        let c = v.counters();
        CoreNumbers {
            boot_count: v.boot_count(),
            neighbors: v.neighbors().count(),
            known_records: v.known_records(),
            published: c.published,
            frames_in_by_kind: c.frames_in_by_kind,
            frames_out_by_kind: c.frames_out_by_kind,
            passive: v.passive().count(),
            suspects: v.suspects().count(),
            transmits_dropped: c.transmits_dropped,
            events_dropped: c.events_dropped,
            verify_failures: vec![
                ("payload", c.invalid_payloads),
                ("record", c.rejected_record),
                (
                    "private",
                    v.private_counters().announcements_refused
                        + v.private_counters().served_refused,
                ),
            ],
            rejected: vec![
                ("decode", c.rejected_decode),
                ("not_connected", c.rejected_not_connected),
                ("version", c.rejected_version),
                ("record", c.rejected_record),
                ("unestablished", c.rejected_unestablished),
                ("alive", c.rejected_alive),
            ],
            topics: v
                .subscriptions()
                .map(|t| {
                    (
                        t,
                        v.topic_neighbors(&t).len(),
                        v.broadcast_counters(&t).map_or(0, |b| b.delivered),
                        v.retained(&t),
                    )
                })
                .collect(),
        }
    })
    .await
    .ok()
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

/// Writes one of this node's own messages into the store's mailbox (one committed transaction).
async fn keep_own(
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
    let entry = MailboxEntry {
        topic,
        id,
        expires_us: expires.as_micros(),
        record,
    };
    let store = state.store.clone();
    let max = state.mailbox;
    tokio::task::spawn_blocking(move || store.archive(&[entry], max, unix_micros()))
        .await
        .map_err(|e| failed(format!("the store task failed: {e}")))?
        .map(|_| ())
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    out.push_str(&format!(
        "# HELP hearsay_{name} {help}\n# TYPE hearsay_{name} {kind}\n"
    ));
    for (labels, value) in samples {
        out.push_str(&format!("hearsay_{name}{labels} {value}\n"));
    }
}

/// The Prometheus text exposition (format 0.0.4) of the node's counters.
async fn metrics_response(state: &Arc<State>, req: &Request<Incoming>) -> Response<Body> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    if let Err(e) = api::parse_metrics(req.method().as_str(), target) {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::NOT_FOUND);
        return respond(status, "text/plain", format!("{}\n", e.message));
    }
    let node = &state.node;
    let Some(core) = core_numbers(node).await else {
        return respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "the node is stopping\n",
        );
    };
    let c = node.counters();
    let names = state.topics.lock().map(|t| t.clone()).unwrap_or_default();
    let topic_label = |t: &TopicId| {
        let name = names.get(t).cloned().unwrap_or_else(|| t.to_string());
        let escaped = name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        format!("{{topic=\"{escaped}\"}}")
    };
    let one = |v: u64| vec![(String::new(), v)];
    let mut out = String::new();
    metric(
        &mut out,
        "frames_in_total",
        "counter",
        "Frames received.",
        &one(c.frames_in),
    );
    metric(
        &mut out,
        "frames_out_total",
        "counter",
        "Frames sent.",
        &one(c.frames_out),
    );
    metric(
        &mut out,
        "bytes_in_total",
        "counter",
        "Frame bytes received.",
        &one(c.bytes_in),
    );
    metric(
        &mut out,
        "bytes_out_total",
        "counter",
        "Frame bytes sent.",
        &one(c.bytes_out),
    );
    let mut rejected: Vec<(String, u64)> = core
        .rejected
        .iter()
        .map(|(reason, v)| (format!("{{reason=\"{reason}\"}}"), *v))
        .collect();
    rejected.push(("{reason=\"oversize\"}".into(), c.oversize_frames));
    metric(
        &mut out,
        "frames_rejected_total",
        "counter",
        "Frames refused, by reason.",
        &rejected,
    );
    metric(
        &mut out,
        "connections_total",
        "counter",
        "Connections whose identity proof verified, by direction.",
        &[
            ("{direction=\"in\"}".into(), c.connections_accepted),
            ("{direction=\"out\"}".into(), c.connections_dialled),
        ],
    );
    metric(
        &mut out,
        "neighbors",
        "gauge",
        "Peers in the active view.",
        &one(core.neighbors as u64),
    );
    metric(
        &mut out,
        "known_records",
        "gauge",
        "Verified peer records held.",
        &one(core.known_records as u64),
    );
    metric(
        &mut out,
        "published_total",
        "counter",
        "Messages this node published.",
        &one(core.published),
    );
    let per_topic = |f: fn(&(TopicId, usize, u64, usize)) -> u64| -> Vec<(String, u64)> {
        core.topics
            .iter()
            .map(|t| (topic_label(&t.0), f(t)))
            .collect()
    };
    metric(
        &mut out,
        "topic_neighbors",
        "gauge",
        "Peers in a topic's active view.",
        &per_topic(|t| t.1 as u64),
    );
    metric(
        &mut out,
        "deliveries_total",
        "counter",
        "Messages delivered on a topic.",
        &per_topic(|t| t.2),
    );
    metric(
        &mut out,
        "retained_messages",
        "gauge",
        "Messages of a topic retained for repair.",
        &per_topic(|t| t.3 as u64),
    );
    const KINDS: [&str; 7] = [
        "session",
        "membership",
        "failure_detection",
        "topic",
        "reconcile",
        "discovery",
        "private",
    ];
    let by_kind = |counts: &[u64; 7]| -> Vec<(String, u64)> {
        KINDS
            .iter()
            .zip(counts)
            .map(|(k, v)| (format!("{{kind=\"{k}\"}}"), *v))
            .collect()
    };
    metric(
        &mut out,
        "core_frames_in_total",
        "counter",
        "Frames the core decoded, by frame kind.",
        &by_kind(&core.frames_in_by_kind),
    );
    metric(
        &mut out,
        "core_frames_out_total",
        "counter",
        "Frames the core sent, by frame kind.",
        &by_kind(&core.frames_out_by_kind),
    );
    metric(
        &mut out,
        "drops_total",
        "counter",
        "Frames, events and archived messages dropped, by reason.",
        &[
            (
                "{reason=\"core_transmit_queue\"}".into(),
                core.transmits_dropped,
            ),
            ("{reason=\"core_event_queue\"}".into(), core.events_dropped),
            ("{reason=\"no_connection\"}".into(), c.frames_dropped),
            ("{reason=\"slow_peer\"}".into(), c.send_queue_overflows),
            ("{reason=\"write_stall\"}".into(), c.write_stalls),
            ("{reason=\"read_timeout\"}".into(), c.read_timeouts),
            (
                "{reason=\"mailbox\"}".into(),
                state.mailbox_lost.load(Ordering::Relaxed),
            ),
        ],
    );
    metric(
        &mut out,
        "view_size",
        "gauge",
        "Node-level HyParView views and SWIM suspects.",
        &[
            ("{view=\"active\"}".into(), core.neighbors as u64),
            ("{view=\"passive\"}".into(), core.passive as u64),
            ("{view=\"suspects\"}".into(), core.suspects as u64),
        ],
    );
    let failures: Vec<(String, u64)> = core
        .verify_failures
        .iter()
        .map(|(what, v)| (format!("{{what=\"{what}\"}}"), *v))
        .collect();
    metric(
        &mut out,
        "verify_failures_total",
        "counter",
        "Signed payloads, records and encrypted-message checks that failed.",
        &failures,
    );
    state.latency.write(
        &mut out,
        "delivery_latency_seconds",
        "From a message's timestamp (its author's clock) to its delivery here.",
    );
    respond(StatusCode::OK, "text/plain; version=0.0.4", out)
}

/// A Prometheus histogram with fixed buckets, updated without locks.
#[derive(Debug)]
struct Histogram {
    /// Upper bounds, seconds.
    bounds: &'static [f64],
    /// One count per bound, plus +Inf.
    counts: Vec<AtomicU64>,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        out.push_str(&format!(
            "# HELP hearsay_{name} {help}\n# TYPE hearsay_{name} histogram\n"
        ));
        let mut total = 0;
        for (i, c) in self.counts.iter().enumerate() {
            total += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            out.push_str(&format!("hearsay_{name}_bucket{{le=\"{le}\"}} {total}\n"));
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!(
            "hearsay_{name}_sum {sum}\nhearsay_{name}_count {total}\n"
        ));
    }
}

/// Delivery-latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The `PeerId` in a `node.addr` file, for tests and tools.
pub fn parse_node_addr(text: &str) -> Option<(PeerId, SocketAddr)> {
    let (peer, addr) = text.trim().split_once('@')?;
    Some((peer.parse().ok()?, addr.parse().ok()?))
}

// ------------------------------------------------------------------ presence, letters, inbox

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
struct Inbox {
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
async fn watch_services(mut events: hearsay_tokio::Events, state: Arc<State>) {
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
fn inbox_stream(state: &Arc<State>, replay: bool) -> Response<Body> {
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

/// `POST /v1/presence/{start,stop}?group=NAME`, `GET /v1/presence/online?group=NAME`: the
/// group's secret is read from this node's home (`hearsay group ...`).
async fn presence(state: &Arc<State>, action: &str, name: &str) -> Response<Body> {
    let groups = crate::groups::Groups::new(&state.home);
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

/// `POST /v1/send?to=PEERID`: an encrypted direct message. The recipient's record comes from
/// the records this node holds, else from a friends-of-friends lookup; the letter is announced
/// on the recipient's inbox topic, which this node joins, and fetched from this node by the
/// recipient alone (SPEC.md §17.10, §21.5).
async fn send(state: &Arc<State>, peer: PeerId, payload: Bytes) -> Response<Body> {
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

/// Waits (at most 5 s) until `topic` has a neighbour, unless the node has no neighbour at all.
async fn await_topic_neighbour(node: &NodeHandle, topic: TopicId) {
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
async fn join_topic(
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
