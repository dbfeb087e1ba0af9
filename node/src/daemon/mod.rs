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
//!
//! The daemon's parts: `settings` (flags and `--config`), `routes` (the control API), `topics`
//! (subscriptions and replay), `mailbox` (messages kept in the store), `inbox` (encrypted
//! letters), `presence` and `metrics` (the Prometheus endpoint); this module starts the node,
//! writes the run-time files and runs until a signal.

mod inbox;
mod mailbox;
mod metrics;
mod presence;
mod routes;
mod settings;
mod topics;

use crate::store::Store;
use crate::{Error, Keystore, failed};
use hearsay_proto::{PeerId, TimeDelta, TopicId};
use hearsay_tokio::{NodeEvent, NodeHandle, SpawnError, default_config};
use inbox::{Inbox, watch_services};
use mailbox::archive_messages;
use prometheus_client::metrics::histogram::Histogram;
use routes::accept_loop;
use settings::{Settings, merge};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use topics::subscribe_topic;

pub use inbox::inbox_topic;
pub use routes::{PeerInfo, StatusInfo};
pub use settings::RunArgs;

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
    recent: Mutex<BTreeMap<TopicId, topics::Recent>>,
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
        latency: metrics::latency_histogram(),
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

/// Writes the current neighbours in good standing into the peer cache, and the core's state.
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
    // Only neighbours in good standing: a peer scoring below zero (§13.8) gains none.
    let ids: Vec<PeerId> = peers.iter().map(|n| n.peer).collect();
    let good: Vec<bool> = state
        .node
        .inspect(move |v| ids.iter().map(|p| v.score(p).total() >= 0).collect())
        .await
        .unwrap_or_default();
    let list: Vec<(PeerId, SocketAddr)> = peers
        .iter()
        .zip(good)
        .filter(|(_, good)| *good)
        .map(|(n, _)| (n.peer, n.address))
        .collect();
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

/// The `PeerId` in a `node.addr` file, for tests and tools.
pub fn parse_node_addr(text: &str) -> Option<(PeerId, SocketAddr)> {
    let (peer, addr) = text.trim().split_once('@')?;
    Some((peer.parse().ok()?, addr.parse().ok()?))
}
