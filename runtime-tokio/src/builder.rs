//! [`NodeBuilder`]: configure and start a node.

use crate::addr::{BootstrapPeer, address_from_socket};
use crate::clock::MonotonicClock;
use crate::config::TransportConfig;
use crate::conn::HandshakeCtx;
use crate::counters::Live;
use crate::driver::{self, Driver};
use crate::error::SpawnError;
use crate::handle::{NodeHandle, Shared};
use crate::tls;
use hearsay_proto::{Config, Identity, Node};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::SystemTime;
use tokio::sync::{broadcast, mpsc, watch};

/// The protocol configuration this driver uses when none is given: [`Config::default`] with the
/// fastest crypto provider built in ([`AwsLcProvider`](crate::AwsLcProvider) with the default
/// `aws-lc` feature, the pure-Rust one without).
pub fn default_config() -> Config {
    Config {
        crypto: default_crypto(),
        ..Config::default()
    }
}

#[cfg(feature = "aws-lc")]
fn default_crypto() -> Arc<dyn hearsay_proto::CryptoProvider> {
    Arc::new(crate::AwsLcProvider)
}

#[cfg(not(feature = "aws-lc"))]
fn default_crypto() -> Arc<dyn hearsay_proto::CryptoProvider> {
    hearsay_proto::default_provider()
}

/// Configures a node: its identity, where it listens, whom it joins through, the protocol's
/// [`Config`] and the transport's [`TransportConfig`]. [`NodeBuilder::spawn`] starts it.
///
/// See the crate documentation for a complete example.
pub struct NodeBuilder {
    identity: Identity,
    bind: SocketAddr,
    bootstrap: Vec<BootstrapPeer>,
    config: Option<Config>,
    transport: TransportConfig,
    rng_seed: Option<[u8; 32]>,
    restore: Option<hearsay_proto::PersistentState>,
    advertise: Option<Vec<SocketAddr>>,
    socket: Option<Arc<dyn quinn::AsyncUdpSocket>>,
    clock: Option<Box<dyn Fn() -> SystemTime + Send + Sync>>,
}

impl std::fmt::Debug for NodeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBuilder")
            .field("peer_id", &self.identity.peer_id())
            .field("bind", &self.bind)
            .field("bootstrap", &self.bootstrap)
            .field("config", &self.config)
            .field("transport", &self.transport)
            .field("advertise", &self.advertise)
            .field("socket", &self.socket)
            .field("custom_clock", &self.clock.is_some())
            .finish_non_exhaustive()
    }
}

impl NodeBuilder {
    /// A builder for a node with this identity, listening on `0.0.0.0:0` until told otherwise.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            bootstrap: Vec::new(),
            config: None,
            transport: TransportConfig::default(),
            rng_seed: None,
            restore: None,
            advertise: None,
            socket: None,
            clock: None,
        }
    }

    /// The UDP address to listen on (port 0 picks a free port; see
    /// [`NodeHandle::local_addr`]).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Peers to join through (`ADDR` or `PEERID@ADDR`, see [`BootstrapPeer`]). Unreachable ones
    /// are reported as [`NodeEvent::BootstrapFailed`](crate::NodeEvent::BootstrapFailed) and
    /// counted; the node keeps running.
    pub fn bootstrap(mut self, peers: impl IntoIterator<Item = BootstrapPeer>) -> Self {
        self.bootstrap.extend(peers);
        self
    }

    /// The protocol configuration (default: [`default_config`]). Its `crypto` provider also
    /// verifies identity proofs. If its `addresses` are empty, the node advertises the ones
    /// from [`NodeBuilder::advertise`] or, failing that, its bound address unless that is
    /// unspecified (`0.0.0.0`, `::`).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The transport's limits and timeouts.
    pub fn transport(mut self, transport: TransportConfig) -> Self {
        self.transport = transport;
        self
    }

    /// Starts from state saved before a restart ([`NodeHandle::persistent_state`]): the same
    /// identity with a higher boot count, so sequence numbers are never reused, and the
    /// remembered peer records (`Node::restore`). State of another identity fails `spawn`.
    pub fn restore(mut self, state: hearsay_proto::PersistentState) -> Self {
        self.restore = Some(state);
        self
    }

    /// Seeds the node's RNG, and (through a derived seed) quinn's connection-id generator, for
    /// reproducible tests and simulations; by default both are drawn from the OS. TLS draws its
    /// own randomness regardless.
    pub fn rng_seed(mut self, seed: [u8; 32]) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// The addresses to advertise in the node's record (where peers can dial it), when they
    /// differ from the bound address (a node behind a port mapping, or bound to `0.0.0.0`).
    pub fn advertise(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.advertise = Some(addrs.into_iter().collect());
        self
    }

    /// Runs QUIC over this socket instead of binding a UDP socket (the bind address is then
    /// ignored). For simulators and tests: a network simulator implements
    /// [`quinn::AsyncUdpSocket`] over its virtual network. Peers must be told an address to dial
    /// with [`NodeBuilder::advertise`] if the socket's own address is unspecified.
    pub fn socket(mut self, socket: Arc<dyn quinn::AsyncUdpSocket>) -> Self {
        self.socket = Some(socket);
        self
    }

    /// The wall clock the node reads (default [`SystemTime::now`]); it is made monotonic
    /// ([`MonotonicClock`]). For simulators: a virtual clock, e.g. a fixed epoch plus tokio's
    /// (paused or simulated) elapsed time.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Some(Box::new(clock));
        self
    }

    /// Binds the socket and starts the node task on the current tokio runtime. Returns at once;
    /// bootstrap dials go on in the background.
    ///
    /// Fails with [`SpawnError::Bind`] if the port is taken, [`SpawnError::NoRuntime`] outside a
    /// runtime, [`SpawnError::Node`] if the core refuses the configuration.
    pub fn spawn(self) -> Result<NodeHandle, SpawnError> {
        tokio::runtime::Handle::try_current().map_err(|_| SpawnError::NoRuntime)?;
        let cfg = self.transport.sanitized();
        let bind = self.bind;
        let quic = tls::quic_configs(&cfg).map_err(SpawnError::Tls)?;
        let mut endpoint_config = quinn::EndpointConfig::default();
        endpoint_config.rng_seed(
            self.rng_seed
                .map(|seed| blake3::derive_key("hearsay 2026-11 quinn endpoint seed v1", &seed)),
        );
        let runtime = Arc::new(quinn::TokioRuntime);
        let (mut endpoint, local_addr) = match self.socket {
            Some(socket) => {
                let local_addr = socket
                    .local_addr()
                    .map_err(|source| SpawnError::Bind { addr: bind, source })?;
                let endpoint = quinn::Endpoint::new_with_abstract_socket(
                    endpoint_config,
                    Some(quic.server),
                    socket,
                    runtime,
                )
                .map_err(|source| SpawnError::Bind { addr: bind, source })?;
                (endpoint, local_addr)
            }
            None => {
                let socket = std::net::UdpSocket::bind(bind)
                    .map_err(|source| SpawnError::Bind { addr: bind, source })?;
                let local_addr = socket
                    .local_addr()
                    .map_err(|source| SpawnError::Bind { addr: bind, source })?;
                let endpoint =
                    quinn::Endpoint::new(endpoint_config, Some(quic.server), socket, runtime)
                        .map_err(|source| SpawnError::Bind { addr: bind, source })?;
                (endpoint, local_addr)
            }
        };
        endpoint.set_default_client_config(quic.client);

        let mut config = self.config.unwrap_or_else(default_config);
        if config.addresses.is_empty() {
            let advertise = self.advertise.unwrap_or_else(|| {
                if local_addr.ip().is_unspecified() {
                    Vec::new()
                } else {
                    vec![local_addr]
                }
            });
            config.addresses = advertise.into_iter().map(address_from_socket).collect();
        }
        let seed = match self.rng_seed {
            Some(seed) => seed,
            None => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(|e| SpawnError::Random(e.to_string()))?;
                seed
            }
        };
        let clock = Arc::new(MonotonicClock::new(
            self.clock
                .unwrap_or_else(|| Box::new(SystemTime::now) as Box<_>),
        ));
        let signer = config
            .crypto
            .signer_from_seed(&self.identity.seeds().signing);
        let crypto = config.crypto.clone();
        let max_connections = config.max_connections;
        let node = match self.restore {
            Some(state) => Node::restore(config, self.identity, seed, clock.now(), state),
            None => Node::new(config, self.identity, seed, clock.now()),
        }
        .map_err(SpawnError::Node)?;
        let me = node.peer_id();

        let counters = Arc::new(Live::default());
        let (record_tx, record_rx) = watch::channel(Arc::new(node.inspect().record().clone()));
        let ctx = Arc::new(HandshakeCtx {
            endpoint,
            signer,
            crypto,
            me,
            record: record_rx,
            clock: clock.clone(),
            cfg: cfg.clone(),
            counters: counters.clone(),
        });
        let (inbox_tx, inbox) = mpsc::channel(cfg.inbox_capacity);
        let (requests_tx, requests) = mpsc::channel(cfg.request_capacity);
        let (events, _) = broadcast::channel(cfg.event_capacity);
        let registered_count = Arc::new(AtomicUsize::new(0));

        tokio::spawn(driver::accept_loop(
            ctx.clone(),
            inbox_tx.clone(),
            registered_count.clone(),
            max_connections,
        ));
        let observed = Arc::default();
        let handle = NodeHandle::new(Shared {
            requests: requests_tx,
            events: events.downgrade(),
            counters: counters.clone(),
            peer_id: me,
            local_addr,
            observed: Arc::clone(&observed),
        });
        let driver = Driver {
            node,
            me,
            clock,
            cfg,
            max_connections,
            ctx,
            counters,
            requests,
            inbox,
            inbox_tx,
            events,
            record_tx,
            registered_count,
            observed,
            state: Default::default(),
        };
        tokio::spawn(driver.run(self.bootstrap));
        Ok(handle)
    }
}
