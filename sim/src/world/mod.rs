//! The simulated world: nodes, connections, links, faults and adversaries over virtual time.
//!
//! Nodes are real `hearsay_proto::Node`s, driven only through `handle_*`/`poll_*` exactly as a
//! runtime drives them, and observed only through their events and `inspect()`. Connections
//! behave like QUIC's: reliable and ordered per direction (except for the lossy and reordering
//! link faults the scenario asks for), set up in one round trip, closed explicitly or, when the
//! other side goes silent (crash, hang, partition), reported as gone after `idle_timeout`.
//!
//! The code is split by concept:
//! - this file: the [`World`] type, its setup, its public surface and the event loop (`step`,
//!   `drain`, `on_event`);
//! - `network`: the link model (connections, latency, loss, duplication, reordering,
//!   partitions and cuts, idle timeouts);
//! - `actions`: the scenario's actions (join, crash, hang, resume, restart, leave, partition,
//!   heal, Byzantine, subscribe, publish, presence, foaf) and how they pick nodes;
//! - `config`: mapping the scenario's `[config]` table onto the nodes' `Config`;
//! - `eclipse`: the `eclipse` attackers, the identities they make (sybils), and the
//!   `eclipsed_nodes` / `honest_view_fraction` metrics;
//! - `root`: the `root` attackers, which grind an identity with the smallest id they can find
//!   and rejoin with it;
//! - `metrics`: what is measured while running, and the final
//!   [`RunResult`](crate::metrics::RunResult).

mod actions;
mod config;
mod eclipse;
mod kinds;
mod metrics;
mod network;
mod root;
mod signing;

pub use config::SetupError;
pub use network::{Delivery, LinkStats};
pub use root::{GRIND_TRIES, grind_root_identity};

use crate::SIM_EPOCH;
use crate::broadcast::{Published, Tracker};
use crate::byzantine::Adversary;
use crate::fastmap::FastMap;
use crate::scenario::{Action, NetworkSpec, Scenario};
use crate::scheduler::Scheduler;
use actions::PublishPlan;
use bytes::Bytes;
use chacha20::ChaCha8Rng;
use hearsay_proto::node::{DownReason, Event, Transmit};
use hearsay_proto::{
    Address, Config, CryptoProvider, Identity, IdentitySeeds, Node, PeerId, PersistentState,
    TimeDelta, Timestamp, TopicId,
};
use network::{Conn, Cut};
use rand_core::SeedableRng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which crypto the simulated nodes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoChoice {
    /// BLAKE3 stand-ins with the real sizes: fast, deterministic, not secure (the default).
    Fast,
    /// The real pure-Rust ML-DSA/ML-KEM, with verification memoised across nodes.
    Real,
}

impl CryptoChoice {
    fn provider(self) -> Arc<dyn CryptoProvider> {
        match self {
            CryptoChoice::Fast => Arc::new(hearsay_proto::crypto::InsecureTestProvider),
            CryptoChoice::Real => Arc::new(crate::crypto::MemoProvider::new(
                hearsay_proto::PureRustProvider,
            )),
        }
    }

    /// The name shown in reports.
    pub fn name(self) -> &'static str {
        match self {
            CryptoChoice::Fast => "sim-fast (insecure BLAKE3 stand-in, real sizes)",
            CryptoChoice::Real => "pure-rust ML-DSA-65/ML-KEM-768 (verification memoised)",
        }
    }
}

/// What state a simulated node is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Running honestly.
    Running,
    /// Stopped silently; state lost except what it persisted.
    Crashed,
    /// Stopped processing, state intact.
    Hung,
    /// Left gracefully (still flushing, no longer part of the overlay).
    Left,
}

struct SimNode {
    node: Option<Node>,
    seeds: IdentitySeeds,
    peer: PeerId,
    state: NodeState,
    joined: bool,
    /// The contacts it joined through (reused on restart, as an operator would).
    contacts: Vec<usize>,
    persisted: Option<PersistentState>,
    adversary: Option<Adversary>,
    armed: Option<Timestamp>,
    /// Disconnects that happened while it was hung, delivered on resume.
    missed_disconnects: Vec<PeerId>,
    boots: u64,
    frames_sent: u64,
    bytes_sent: u64,
    /// Topics the scenario subscribed it to (re-subscribed after a restart, as an operator
    /// restarting it with the same command line would), in id order.
    subscriptions: Vec<TopicId>,
    /// Whether a `join` action has picked it (it may not have started joining yet).
    began_joining: bool,
    /// Its address group (contract v4 `subnets`; see [`World::subnet_of`]).
    subnet: u32,
}

#[derive(Debug, Clone)]
enum Ev {
    Action(usize),
    JoinNode {
        node: usize,
        contacts: Vec<usize>,
    },
    Deliver {
        from: usize,
        to: usize,
        conn: u64,
        frame: Bytes,
    },
    ConnUp {
        node: usize,
        conn: u64,
    },
    ConnDown {
        node: usize,
        conn: u64,
    },
    DialFail {
        node: usize,
        peer: PeerId,
    },
    IdleCheck {
        conn: u64,
        since: Timestamp,
    },
    Timer {
        node: usize,
    },
    AdversaryTick {
        node: usize,
    },
    /// An extra wake for node `node` whether or not anything is due ([`World::wake_every`]).
    Poke {
        node: usize,
        every: TimeDelta,
    },
    /// Message `k` of a publish plan.
    Publish {
        plan: usize,
        k: u64,
    },
    SampleComponents,
    /// Sample the honest nodes' views (`eclipsed_nodes`, `honest_view_fraction`).
    SampleEclipse,
    /// Read the honest nodes' signature counts (`signatures_per_node_per_s`).
    SampleSignatures,
    /// Query `k` of a `foaf` action.
    Foaf {
        distance: crate::scenario::FoafDistance,
        k: u64,
    },
}

/// A simulation run in progress.
pub struct World {
    scenario: Scenario,
    seed: u64,
    crypto: CryptoChoice,
    config: Config,
    /// The byte strings all nodes share (`config.interner`).
    interner: Arc<crate::intern::Interner>,
    /// The scenario's nodes, then the identities adversaries made (sybils), in creation order.
    nodes: Vec<SimNode>,
    /// How many of `nodes` the scenario has (the rest are sybils).
    base_nodes: usize,
    /// The number the next new address group gets (contract v4 `subnet = "shared"`).
    next_subnet: u32,
    /// The `eclipse` attackers, by node number.
    attackers: BTreeMap<usize, eclipse::Attacker>,
    /// What the eclipse metrics have sampled.
    eclipse: eclipse::Sampling,
    /// The `root` attackers and the node numbers of the identities they rejoined with.
    rejoined: BTreeMap<usize, usize>,
    index: FastMap<PeerId, usize>,
    scheduler: Scheduler<Ev>,
    rng: ChaCha8Rng,
    net: NetworkSpec,
    cut: Option<Cut>,
    /// By id; iterated only in sorted id order (`refresh_health`) or where order is moot.
    conns: FastMap<u64, Conn>,
    /// The ids in `conns` of each node's connections (so that one node's can be found without
    /// a scan of every connection: sybils come and go by the thousand).
    conns_of: FastMap<usize, Vec<u64>>,
    pair_conn: FastMap<(usize, usize), u64>,
    next_conn: u64,
    /// Last scheduled in-order delivery per directed pair (stream semantics), for the pairs
    /// with a connection.
    last_delivery: FastMap<(u32, u32), Timestamp>,
    began_joining: Vec<usize>,
    trace: blake3::Hasher,
    /// Scratch space for the event lines hashed into `trace`.
    trace_buf: String,
    events_processed: u64,
    warnings: Vec<String>,
    // metrics state
    pending_detection: BTreeMap<(usize, usize), Timestamp>,
    detection_samples: Vec<f64>,
    false_positives: u64,
    components_at_heal: Option<u64>,
    last_heal_at: Option<Timestamp>,
    final_heal_at: Option<Timestamp>,
    remerge_ms: Option<f64>,
    sample_every: TimeDelta,
    components_series: Vec<(f64, u64)>,
    /// The idle window (contract v4) and honest (bytes, frames) sent when it opened and closed.
    idle: IdleWindow,
    /// Traffic by message kind, when asked for (`--traffic`).
    traffic: Option<kinds::Traffic>,
    /// The provider the nodes sign with, counting each key's signatures.
    signing_provider: Arc<crate::crypto::CountingProvider>,
    signing: signing::Signing,
    end: Timestamp,
    stats: LinkStats,
    delivery_log: Option<Vec<Delivery>>,
    event_log: Option<Vec<(Timestamp, usize, Event)>>,
    plans: Vec<PublishPlan>,
    broadcast: Tracker,
    discovery: crate::discovery::Tracker,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("nodes", &self.nodes.len())
            .field("now", &self.scheduler.now())
            .finish_non_exhaustive()
    }
}

fn node_seed(seed: u64, node: usize, boot: u64) -> [u8; 32] {
    let mut m = Vec::with_capacity(24);
    m.extend_from_slice(&seed.to_le_bytes());
    m.extend_from_slice(&(node as u64).to_le_bytes());
    m.extend_from_slice(&boot.to_le_bytes());
    blake3::derive_key("hearsay-sim node seed v1", &m)
}

/// Lets what other nodes decode of `node`'s record (its keys and signature) share the buffers
/// `node` holds anyway.
fn register_keys(interner: &crate::intern::Interner, node: &Node) {
    let record = node.inspect().record();
    interner.register(record.verifying_key.to_bytes());
    interner.register(record.encapsulation_key.to_bytes());
    interner.register(record.signature.to_bytes());
}

/// Node `node`'s socket address: an IPv6 address whose /48 is its address group `subnet`
/// (contract v4 `subnets`), so the core reads the same group from a record's address as from
/// a connection (SPEC.md §13.7).
pub fn sim_socket(node: usize, subnet: u32) -> std::net::SocketAddr {
    let ip = std::net::Ipv6Addr::new(
        0xfd00,
        (subnet >> 16) as u16,
        subnet as u16,
        0,
        0,
        0,
        (node >> 16) as u16,
        node as u16,
    );
    std::net::SocketAddr::new(ip.into(), 7000)
}

fn address_of(node: usize, subnet: u32) -> Address {
    Address::new(sim_socket(node, subnet).to_string().into_bytes()).unwrap_or_default()
}

impl World {
    /// Sets up `scenario` with `seed` and `nodes` (overriding the file's values).
    pub fn new(
        scenario: Scenario,
        seed: u64,
        nodes: usize,
        crypto: CryptoChoice,
    ) -> Result<Self, SetupError> {
        let interner = Arc::new(crate::intern::Interner::new());
        let signing_provider = Arc::new(crate::crypto::CountingProvider::new(crypto.provider()));
        let mut config = Config {
            crypto: signing_provider.clone(),
            interner: Some(interner.clone()),
            ..Config::default()
        };
        config::apply_config(&mut config, &scenario)?;
        let mut sim_nodes = Vec::with_capacity(nodes);
        let subnets = scenario.network.subnets.unwrap_or(nodes).max(1);
        let mut index = FastMap::with_capacity_and_hasher(nodes, Default::default());
        for i in 0..nodes {
            let mut rng = ChaCha8Rng::from_seed(node_seed(seed, i, 0));
            let seeds = IdentitySeeds::generate(&mut rng);
            let identity = Identity::from_seeds(&*config.crypto, seeds.clone());
            let peer = identity.peer_id();
            let node_config = Config {
                addresses: vec![address_of(i, (i % subnets) as u32)],
                ..config.clone()
            };
            let node = Node::new(node_config, identity, node_seed(seed, i, 1), SIM_EPOCH)
                .map_err(|e| SetupError(format!("node {i}: {e}")))?;
            register_keys(&interner, &node);
            index.insert(peer, i);
            sim_nodes.push(SimNode {
                node: Some(node),
                seeds,
                peer,
                state: NodeState::Running,
                joined: false,
                contacts: Vec::new(),
                persisted: None,
                adversary: None,
                armed: None,
                missed_disconnects: Vec::new(),
                boots: 1,
                frames_sent: 0,
                bytes_sent: 0,
                subscriptions: Vec::new(),
                began_joining: false,
                subnet: (i % subnets) as u32,
            });
        }
        let mut scheduler = Scheduler::new(SIM_EPOCH);
        let mut order: Vec<usize> = (0..scenario.events.len()).collect();
        order.sort_by_key(|&i| scenario.events[i].at); // stable: ties keep file order
        for i in order {
            scheduler.schedule(SIM_EPOCH + scenario.events[i].at, Ev::Action(i));
        }
        let end = SIM_EPOCH + scenario.duration;
        let final_heal_at = scenario
            .events
            .iter()
            .filter(|e| matches!(e.action, Action::Heal))
            .map(|e| SIM_EPOCH + e.at)
            .max();
        let sample_every =
            TimeDelta::from_micros((scenario.duration.as_micros() / 200).max(100_000));
        scheduler.schedule(SIM_EPOCH, Ev::SampleComponents);
        scheduler.schedule(SIM_EPOCH + signing::SAMPLE_EVERY, Ev::SampleSignatures);
        let signing = signing::Signing::new(
            sim_nodes
                .iter()
                .map(|n: &SimNode| {
                    Identity::from_seeds(&*config.crypto, n.seeds.clone())
                        .signer()
                        .verifying_key()
                        .clone()
                })
                .collect(),
        );
        let broadcast = Tracker::new(
            scenario
                .events
                .iter()
                .any(|e| matches!(e.action, Action::Publish { .. })),
        );
        let idle = IdleWindow::of(&scenario.events, end);
        let mut world = World {
            net: scenario.network.clone(),
            scenario,
            seed,
            crypto,
            config,
            interner,
            nodes: sim_nodes,
            base_nodes: nodes,
            next_subnet: u32::try_from(subnets).unwrap_or(u32::MAX),
            attackers: BTreeMap::new(),
            eclipse: eclipse::Sampling::default(),
            rejoined: BTreeMap::new(),
            index,
            scheduler,
            rng: ChaCha8Rng::from_seed(blake3::derive_key(
                "hearsay-sim world rng v1",
                &seed.to_le_bytes(),
            )),
            cut: None,
            conns: FastMap::default(),
            conns_of: FastMap::default(),
            pair_conn: FastMap::default(),
            next_conn: 0,
            last_delivery: FastMap::default(),
            began_joining: Vec::new(),
            discovery: crate::discovery::Tracker::default(),
            trace: blake3::Hasher::new(),
            trace_buf: String::new(),
            events_processed: 0,
            warnings: Vec::new(),
            pending_detection: BTreeMap::new(),
            detection_samples: Vec::new(),
            false_positives: 0,
            components_at_heal: None,
            last_heal_at: None,
            final_heal_at,
            remerge_ms: None,
            sample_every,
            components_series: Vec::new(),
            idle,
            traffic: None,
            signing_provider,
            signing,
            end,
            stats: LinkStats::default(),
            delivery_log: None,
            event_log: None,
            plans: Vec::new(),
            broadcast,
        };
        for i in 0..nodes {
            world.drain(i);
        }
        Ok(world)
    }

    /// The current virtual time.
    pub fn now(&self) -> Timestamp {
        self.scheduler.now()
    }

    /// When the run ends.
    pub fn end(&self) -> Timestamp {
        self.end
    }

    /// Number of simulated nodes: the scenario's, then the identities attackers made (`eclipse`
    /// sybils, `root` attackers' ground identities), which are never honest.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Number of the scenario's nodes (node numbers below it; sybils come after).
    pub fn scenario_nodes(&self) -> usize {
        self.base_nodes
    }

    /// The address group of node `i` (contract v4): `i mod subnets` for the scenario's nodes,
    /// until a `byzantine` event with `subnet = "shared"` moves its nodes into a new group
    /// (numbered after every existing one); a sybil sits in its attacker's group.
    pub fn subnet_of(&self, i: usize) -> u32 {
        self.nodes[i].subnet
    }

    /// Whether node `i` is honest (contract v4): running (not crashed, hung or gone) and not
    /// Byzantine; identities made by adversaries never are.
    pub fn is_honest(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.state == NodeState::Running && n.node.is_some() && n.adversary.is_none()
    }

    /// The `eclipse` attacker that made node `i`, if `i` is one of its identities (a sybil).
    pub fn sybil_controller(&self, i: usize) -> Option<usize> {
        self.nodes.get(i)?.adversary.as_ref()?.sybil_of()
    }

    /// The attacker that made node `i`, if `i` is an identity an attacker made: an `eclipse`
    /// sybil, or the identity a `root` attacker rejoined with.
    pub fn made_by(&self, i: usize) -> Option<usize> {
        self.nodes.get(i)?.adversary.as_ref()?.made_by()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node at `i`, if it is not crashed.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].node.as_ref()
    }

    /// The state of node `i`.
    pub fn state(&self, i: usize) -> NodeState {
        self.nodes[i].state
    }

    /// The messages published so far, in order.
    pub fn published(&self) -> &[Published] {
        self.broadcast.messages()
    }

    /// The adversary wrapping node `i`, if it is Byzantine.
    pub fn adversary(&self, i: usize) -> Option<&Adversary> {
        self.nodes[i].adversary.as_ref()
    }

    /// Whether node `i` is live: running, joined, not hung, not Byzantine.
    pub fn is_live(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.state == NodeState::Running && n.joined && n.adversary.is_none()
    }

    /// Events processed so far.
    pub fn events_processed(&self) -> u64 {
        self.events_processed
    }

    /// The running trace hash.
    pub fn trace_hash(&self) -> blake3::Hash {
        self.trace.finalize()
    }

    /// What the shared byte-string store holds (see [`crate::intern`]).
    pub fn interner_stats(&self) -> crate::intern::InternerStats {
        self.interner.stats()
    }

    /// Link statistics so far.
    pub fn link_stats(&self) -> LinkStats {
        self.stats
    }

    /// Starts recording every frame handed to a node and every application event (tests).
    pub fn record(&mut self) {
        self.delivery_log.get_or_insert_with(Vec::new);
        self.event_log.get_or_insert_with(Vec::new);
    }

    /// Frames handed to nodes since [`World::record`].
    pub fn deliveries(&self) -> &[Delivery] {
        self.delivery_log.as_deref().unwrap_or(&[])
    }

    /// Application events since [`World::record`], with time and node.
    pub fn events(&self) -> &[(Timestamp, usize, Event)] {
        self.event_log.as_deref().unwrap_or(&[])
    }

    /// The peer id of node `i`.
    pub fn peer_id(&self, i: usize) -> PeerId {
        self.nodes[i].peer
    }

    /// The node number of `peer`.
    pub fn index_of(&self, peer: &PeerId) -> Option<usize> {
        self.index.get(peer).copied()
    }

    /// Node `i`'s identity (rebuilt from its seeds), as a test holding the node's keys would
    /// use it: to open envelopes addressed to the node, for instance.
    pub fn identity(&self, i: usize) -> Option<Identity> {
        let seeds = self.nodes.get(i)?.seeds.clone();
        Some(Identity::from_seeds(&*self.config.crypto, seeds))
    }

    /// Runs `f` on node `i` at the current virtual time, then carries out what the node
    /// asked for (frames, dials, timers, events), as any action does. `None` if the node is
    /// not running. The library's way to drive commands the scenario language has no action
    /// for (encrypted messages, revocation).
    pub fn with_node<R>(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Node, Timestamp) -> R,
    ) -> Option<R> {
        let now = self.now();
        let result = f(self.nodes.get_mut(i)?.node.as_mut()?, now);
        self.drain(i);
        Some(result)
    }

    /// Puts `frame` on the connection from `from` to `to` as if `from`'s driver sent it (what a
    /// Byzantine plug-in does; also how tests exercise the link model).
    pub fn send_raw(&mut self, from: usize, to: usize, frame: Bytes) {
        let now = self.now();
        let peer = self.nodes[to].peer;
        self.transmit(now, from, Transmit::Send { to: peer, frame }, true);
    }

    /// Runs until virtual time `until` (at most the scenario's end).
    pub fn run_until(&mut self, until: Timestamp) {
        let until = until.min(self.end);
        // The idle window's edges: everything up to `from` is counted before it opens, and it
        // closes just before the first publish (events at that instant are outside it).
        if let Some((from, to)) = self.idle.window {
            if self.idle.opened.is_none() && from <= until {
                self.run_events(from);
                self.idle.opened = Some(self.honest_sent());
            }
            let before_to = to - TimeDelta::from_micros(1);
            if self.idle.closed.is_none() && before_to <= until {
                self.run_events(before_to);
                self.idle.closed = Some(self.honest_sent());
            }
        }
        self.run_events(until);
        self.scheduler.advance_to(until);
    }

    fn run_events(&mut self, until: Timestamp) {
        while let Some((now, ev)) = self.scheduler.pop_until(until) {
            self.events_processed += 1;
            self.step(now, ev);
        }
    }

    /// (bytes, frames) sent so far by honest nodes.
    fn honest_sent(&self) -> (u64, u64) {
        self.nodes
            .iter()
            .filter(|s| s.adversary.is_none())
            .fold((0, 0), |(b, f), s| (b + s.bytes_sent, f + s.frames_sent))
    }

    /// Also wakes every node every `every` (virtual), due or not, until the end. A node must do
    /// exactly what it does without these wakes (SPEC §8.4): the same seed gives the same
    /// trace hash. Tests use it to show that the simulator may skip wakes that find nothing due.
    pub fn wake_every(&mut self, every: TimeDelta) {
        let at = self.now() + every;
        for node in 0..self.nodes.len() {
            self.scheduler.schedule(at, Ev::Poke { node, every });
        }
    }

    /// Counts honest traffic by message kind over the idle window (or the whole run) for the
    /// result's `traffic` table. Changes nothing else.
    pub fn count_traffic(&mut self) {
        self.traffic.get_or_insert_with(Default::default);
    }

    /// Runs to the end.
    pub fn run(&mut self) {
        let end = self.end;
        self.run_until(end);
    }

    fn running(&self, i: usize) -> bool {
        matches!(self.nodes[i].state, NodeState::Running | NodeState::Left)
            && self.nodes[i].node.is_some()
    }

    /// Handles one scheduled event.
    fn step(&mut self, now: Timestamp, ev: Ev) {
        match ev {
            Ev::Action(i) => self.action(now, i),
            Ev::JoinNode { node, contacts } => self.join_node(now, node, contacts),
            Ev::Deliver {
                from,
                to,
                conn,
                frame,
            } => self.deliver(now, from, to, conn, frame),
            Ev::ConnUp { node, conn } => self.conn_up(now, node, conn),
            Ev::ConnDown { node, conn } => self.conn_down(now, node, conn),
            Ev::DialFail { node, peer } => self.dial_failed(now, node, peer),
            Ev::IdleCheck { conn, since } => self.idle_check(now, conn, since),
            Ev::Timer { node } => {
                if self.nodes[node].armed != Some(now) {
                    return;
                }
                self.nodes[node].armed = None;
                if !self.running(node) {
                    return; // a hung node's timers wait for resume
                }
                if let Some(n) = self.nodes[node].node.as_mut() {
                    // A wake whose deadline was cancelled or moved later since it was armed:
                    // nothing is due, so the node is not called (a node does the same whether
                    // or not it is woken early: tests/wakes.rs).
                    if n.poll_timeout().is_some_and(|t| t > now) {
                        self.drain(node);
                        return;
                    }
                    n.handle_timeout(now);
                }
                self.drain(node);
            }
            Ev::Poke { node, every } => {
                self.scheduler
                    .schedule(now + every, Ev::Poke { node, every });
                if self.running(node)
                    && let Some(n) = self.nodes[node].node.as_mut()
                {
                    n.handle_timeout(now);
                    self.drain(node);
                }
            }
            Ev::AdversaryTick { node } => self.adversary_tick(now, node),
            Ev::Publish { plan, k } => self.publish(now, plan, k),
            Ev::Foaf { distance, k } => self.foaf_query(now, distance, k),
            Ev::SampleComponents => self.sample_components(now),
            Ev::SampleEclipse => self.sample_eclipse(now),
            Ev::SampleSignatures => self.sample_signatures(now),
        }
    }

    /// Carries out node `i`'s outputs, records its events, and re-arms its timer.
    fn drain(&mut self, i: usize) {
        let now = self.now();
        loop {
            let Some(t) = self.nodes[i].node.as_mut().and_then(Node::poll_transmit) else {
                break;
            };
            let t = match self.nodes[i].adversary.as_mut() {
                Some(adv) => match adv.outgoing(t) {
                    Some(t) => t,
                    None => continue,
                },
                None => t,
            };
            self.transmit(now, i, t, false);
        }
        while let Some(e) = self.nodes[i].node.as_mut().and_then(Node::poll_event) {
            self.on_event(now, i, e);
        }
        let next = self.nodes[i].node.as_ref().and_then(Node::poll_timeout);
        if let Some(t) = next.map(|t| t.max(now))
            && self.nodes[i].armed.is_none_or(|armed| t < armed)
        {
            self.nodes[i].armed = Some(t);
            self.scheduler.schedule(t, Ev::Timer { node: i });
        }
    }

    fn on_event(&mut self, now: Timestamp, i: usize, e: Event) {
        if let Event::Delivered {
            topic,
            author,
            id,
            sequence,
            timestamp,
            hops,
            ..
        } = &e
        {
            // The id covers the payload; formatting kilobytes of it per delivery would be slow.
            self.trace_line(format_args!(
                "E{} {i} Delivered {topic:?} {author:?} {id:?} {sequence} {} {hops}",
                now.as_micros(),
                timestamp.as_micros()
            ));
            if self.nodes[i].adversary.is_none() {
                let claimed = self.index.get(author).copied();
                self.broadcast
                    .delivered(now, i, *id, claimed, *timestamp, *hops);
            }
        } else {
            self.trace_line(format_args!("E{} {i} {e:?}", now.as_micros()));
        }
        match &e {
            Event::PresenceOnline { group, member, .. } => {
                if let Some(&m) = self.index.get(member) {
                    self.discovery.online(*group, i, m, now);
                }
            }
            Event::PresenceOffline { group, member, .. } => {
                if let Some(&m) = self.index.get(member) {
                    self.discovery.offline(*group, i, m, now);
                }
            }
            Event::Found { query, records, .. } => {
                self.discovery
                    .query_found(i, *query, records.iter().map(|r| r.peer_id));
            }
            _ => {}
        }
        if let Some(log) = self.event_log.as_mut() {
            log.push((now, i, e.clone()));
        }
        if let Event::NeighborDown {
            peer,
            reason: DownReason::Failed,
        } = e
            && let Some(&x) = self.index.get(&peer)
        {
            self.neighbor_failed(now, i, x);
        }
    }

    /// Adds the text of `line` to the trace hash, formatted into a reused buffer.
    fn trace_line(&mut self, line: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        self.trace_buf.clear();
        let _ = self.trace_buf.write_fmt(line);
        self.trace.update(self.trace_buf.as_bytes());
    }

    /// Records warning `w` unless it was recorded already.
    fn warn_once(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}

/// The contract's idle window: from 60 s after the last `join`/`subscribe` event (a join's
/// spread included) to the first `publish` event, or the end.
#[derive(Debug, Default)]
struct IdleWindow {
    window: Option<(Timestamp, Timestamp)>,
    opened: Option<(u64, u64)>,
    closed: Option<(u64, u64)>,
}

impl IdleWindow {
    fn of(events: &[crate::scenario::ScheduledAction], end: Timestamp) -> Self {
        let settled = events
            .iter()
            .filter_map(|e| match &e.action {
                Action::Join { spread, .. } => Some(e.at + *spread),
                Action::Subscribe { .. } => Some(e.at),
                _ => None,
            })
            .max()
            .map(|t| SIM_EPOCH + t + TimeDelta::from_secs(60));
        let first_publish = events
            .iter()
            .filter(|e| matches!(e.action, Action::Publish { .. }))
            .map(|e| SIM_EPOCH + e.at)
            .min()
            .unwrap_or(end)
            .min(end);
        Self {
            window: settled
                .filter(|&from| from + TimeDelta::from_micros(1) < first_publish)
                .map(|from| (from, first_publish)),
            opened: None,
            closed: None,
        }
    }

    /// (bytes, frames) per honest node per second over the window.
    pub(super) fn rates(&self, honest: usize) -> Option<(f64, f64)> {
        let (from, to) = self.window?;
        let ((b0, f0), (b1, f1)) = (self.opened?, self.closed?);
        let secs = (to - from).as_micros() as f64 / 1e6;
        (honest > 0 && secs > 0.0).then(|| {
            let d = honest as f64 * secs;
            ((b1 - b0) as f64 / d, (f1 - f0) as f64 / d)
        })
    }
}
