//! The simulated world: nodes, connections, links, faults and adversaries over virtual time.
//!
//! Nodes are real `hearsay_proto::Node`s, driven only through `handle_*`/`poll_*` exactly as a
//! runtime drives them, and observed only through their events and `inspect()`. Connections
//! behave like QUIC's: reliable and ordered per direction (except for the lossy and reordering
//! link faults the scenario asks for), set up in one round trip, closed explicitly or, when the
//! other side goes silent (crash, hang, partition), reported as gone after `idle_timeout`.

use crate::SIM_EPOCH;
use crate::broadcast::{self, Published, Tracker};
use crate::byzantine::{self, Adversary};
use crate::metrics::{ExpectOutcome, Metrics, Percentiles, RunResult, Series};
use crate::scenario::{Action, Behaviour, LatencyDist, LossMode, NetworkSpec, Scenario, Selection};
use crate::scheduler::Scheduler;
use bytes::Bytes;
use chacha20::ChaCha8Rng;
use hearsay_proto::node::{Command, Contact, DownReason, Event, Transmit};
use hearsay_proto::{
    Address, Config, CryptoProvider, Identity, IdentitySeeds, Node, PeerId, PersistentState,
    TimeDelta, Timestamp, TopicId,
};
use rand_core::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
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
}

/// One `publish` event in progress.
#[derive(Debug, Clone)]
struct PublishPlan {
    /// The scenario event it comes from.
    event: usize,
    topic: TopicId,
    name: String,
    size: usize,
    measure: bool,
    /// `senders = N`: the N nodes chosen at the event, taking turns; empty for `senders = 0`.
    senders: Vec<usize>,
    turn: usize,
}

#[derive(Debug, Clone)]
struct Conn {
    a: usize,
    b: usize,
    /// Whether each end's core currently believes it is connected.
    open: [bool; 2],
    /// Set while the connection cannot carry frames both ways (a dead, hung or cut end).
    broken_since: Option<Timestamp>,
    /// An end restarted: this connection can never carry frames again.
    dead: bool,
}

impl Conn {
    fn side(&self, node: usize) -> usize {
        usize::from(node != self.a)
    }
    fn other(&self, node: usize) -> usize {
        if node == self.a { self.b } else { self.a }
    }
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
    /// Message `k` of a publish plan.
    Publish {
        plan: usize,
        k: u64,
    },
    SampleComponents,
    /// Query `k` of a `foaf` action.
    Foaf {
        distance: crate::scenario::FoafDistance,
        k: u64,
    },
}

/// What happened to frames on the links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames put on a connection.
    pub sent: u64,
    /// Frames handed to the receiving node.
    pub delivered: u64,
    /// Frames lost to a partition.
    pub lost_partition: u64,
    /// Frames lost to link loss (`drop` mode).
    pub lost_loss: u64,
    /// Frames lost because an end was crashed, hung, or the connection was closed.
    pub lost_dead: u64,
    /// Frames delivered a second time (link duplication).
    pub duplicated: u64,
}

/// One frame handed to a node (recorded when the delivery log is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When.
    pub at: Timestamp,
    /// Sender.
    pub from: usize,
    /// Receiver.
    pub to: usize,
    /// The frame.
    pub frame: Bytes,
}

/// Partition state: group per node; `oneway` cuts only group 0's frames to the others.
#[derive(Debug, Clone)]
struct Cut {
    group: Vec<u16>,
    oneway: bool,
}

/// A simulation run in progress.
pub struct World {
    scenario: Scenario,
    seed: u64,
    crypto: CryptoChoice,
    config: Config,
    /// The byte strings all nodes share (`config.interner`).
    interner: Arc<crate::intern::Interner>,
    nodes: Vec<SimNode>,
    index: HashMap<PeerId, usize>,
    scheduler: Scheduler<Ev>,
    rng: ChaCha8Rng,
    net: NetworkSpec,
    cut: Option<Cut>,
    conns: BTreeMap<u64, Conn>,
    pair_conn: HashMap<(usize, usize), u64>,
    next_conn: u64,
    /// Last scheduled in-order delivery per directed pair (stream semantics), for the pairs
    /// with a connection.
    last_delivery: HashMap<(u32, u32), Timestamp>,
    began_joining: Vec<usize>,
    trace: blake3::Hasher,
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

/// Why a scenario cannot be run (beyond parse errors): a bad `[config]` key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

fn apply_config(config: &mut Config, scenario: &Scenario) -> Result<(), SetupError> {
    for (key, value) in &scenario.config {
        apply_config_key(config, key, value)?;
    }
    Ok(())
}

/// Sets one `[config]` key. The names are the fields of `hearsay_proto::Config` and its parts;
/// the topic overlays' HyParView takes the membership names with a `topic_` prefix and
/// anti-entropy's take a `reconcile_` prefix (`sim/scenarios/README.md` lists them all).
fn apply_config_key(
    config: &mut Config,
    key: &str,
    value: &crate::scenario::ConfigValue,
) -> Result<(), SetupError> {
    use crate::scenario::ConfigValue as V;
    let bad = |what: &str| SetupError(format!("[config] {key}: expected {what}"));
    let dur = |v: &V| match v {
        V::Duration(d) => Ok(*d),
        _ => Err(bad("a duration such as \"10s\"")),
    };
    let count = |v: &V| match v {
        V::Int(n) if *n > 0 => Ok(*n as usize),
        _ => Err(bad("a positive integer")),
    };
    let count32 = |v: &V| match v {
        V::Int(n) if (1..=i64::from(u32::MAX)).contains(n) => Ok(*n as u32),
        _ => Err(bad("a positive integer below 2^32")),
    };
    let small = |v: &V| match v {
        V::Int(n) if (0..=255).contains(n) => Ok(*n as u8),
        _ => Err(bad("an integer 0..=255")),
    };
    let flag = |v: &V| match v {
        V::Bool(b) => Ok(*b),
        _ => Err(bad("true or false")),
    };
    let hyparview = |h: &mut hearsay_proto::membership::hyparview::Config,
                     name: &str|
     -> Result<bool, SetupError> {
        match name {
            "active_view" => h.active_view = count(value)?,
            "passive_view" => h.passive_view = count(value)?,
            "arwl" => h.arwl = small(value)?,
            "prwl" => h.prwl = small(value)?,
            "shuffle_interval" => h.shuffle_interval = dur(value)?,
            "shuffle_active" => h.shuffle_active = count(value)?,
            "shuffle_passive" => h.shuffle_passive = count(value)?,
            "retry_backoff_min" => h.retry_backoff_min = dur(value)?,
            "retry_backoff_max" => h.retry_backoff_max = dur(value)?,
            "retry_horizon" => h.retry_horizon = dur(value)?,
            "max_lost" => h.max_lost = count(value)?,
            "max_pending" => h.max_pending = count(value)?,
            "attempt_timeout" => h.attempt_timeout = dur(value)?,
            "repair_interval" => h.repair_interval = dur(value)?,
            "request_retry" => h.request_retry = dur(value)?,
            "join_rate" => h.join_rate = count32(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    };
    if hyparview(&mut config.hyparview, key)? {
        return Ok(());
    }
    if let Some(name) = key.strip_prefix("topic_")
        && hyparview(&mut config.topics.hyparview, name)?
    {
        return Ok(());
    }
    let (w, t) = (&mut config.swim, &mut config.topics);
    let (p, a) = (&mut t.plumtree, &mut t.antientropy);
    match key {
        "record_lifetime" => config.record_lifetime = dur(value)?,
        "hello_timeout" => config.hello_timeout = dur(value)?,
        "dial_timeout" => config.dial_timeout = dur(value)?,
        "housekeeping_interval" => config.housekeeping_interval = dur(value)?,
        "unused_link_timeout" => config.unused_link_timeout = dur(value)?,
        "max_connections" => config.max_connections = count(value)?,
        "max_known_records" => config.max_known_records = count(value)?,
        "max_queued_transmits" => config.max_queued_transmits = count(value)?,
        "max_queued_events" => config.max_queued_events = count(value)?,
        "probe_interval" => w.probe_interval = dur(value)?,
        "probe_timeout" => w.probe_timeout = dur(value)?,
        "indirect_timeout" => w.indirect_timeout = dur(value)?,
        "indirect_probes" => w.indirect_probes = count(value)?,
        "suspicion_min" => w.suspicion_min = dur(value)?,
        "suspicion_max" => w.suspicion_max = dur(value)?,
        "suspicion_confirmations" => w.suspicion_confirmations = count32(value)?,
        "retransmit_limit" => w.retransmit_limit = count32(value)?,
        "lifeguard" => w.lifeguard = flag(value)?,
        "gossip_hops" => w.gossip_hops = small(value)?,
        // Topics.
        "find_ttl" => t.find_ttl = small(value)?,
        "find_walks" => t.find_walks = count(value)?,
        "discovery_backoff_min" => t.discovery_backoff_min = dur(value)?,
        "discovery_backoff_max" => t.discovery_backoff_max = dur(value)?,
        "find_rate" => t.find_rate = count32(value)?,
        "merge_walk_max" => t.merge_walk_max = dur(value)?,
        // Discovery and presence (these touch other parts of the config than `t`).
        "foaf_fanout" => config.foaf.fanout = count(value)?,
        "foaf_ttl" => config.foaf.default_ttl = small(value)?,
        "foaf_max_ttl" => config.foaf.max_ttl = small(value)?,
        "foaf_query_timeout" => config.foaf.query_timeout = dur(value)?,
        "presence_beacon_interval" => config.presence.beacon_interval = dur(value)?,
        "presence_ttl" => config.presence.ttl = dur(value)?,
        "presence_epoch" => config.presence.epoch_length = dur(value)?,
        "beacon_interval" => t.beacon.interval = dur(value)?,
        "beacon_timeout" => t.beacon.timeout = dur(value)?,
        "beacon_tree" => t.beacon_tree = flag(value)?,
        // Plumtree.
        "ihave_timeout" => p.ihave_timeout = dur(value)?,
        "graft_timeout" => p.graft_timeout = dur(value)?,
        "ihave_delay" => p.ihave_delay = dur(value)?,
        "optimization_threshold" => p.optimization_threshold = small(value)?,
        "retention" => p.retention = dur(value)?,
        "cache_messages" => p.cache_messages = count(value)?,
        "cache_bytes" => p.cache_bytes = count(value)?,
        "seen_capacity" => p.seen_capacity = count(value)?,
        "clock_skew" => p.clock_skew = dur(value)?,
        "max_missing" => p.max_missing = count(value)?,
        "max_announcers" => p.max_announcers = count(value)?,
        "max_pending_ihave" => p.max_pending_ihave = count(value)?,
        // Anti-entropy.
        "reconcile_interval" => a.interval = dur(value)?,
        "reconcile_session_timeout" => a.session_timeout = dur(value)?,
        "reconcile_initial_cells" => a.initial_cells = count(value)?,
        "reconcile_max_attempts" => a.max_attempts = small(value)?,
        "reconcile_max_transfer" => a.max_transfer = count(value)?,
        "reconcile_responses_per_second" => a.responses_per_second = count32(value)?,
        "reconcile_settle" => a.settle = dur(value)?,
        other => {
            return Err(SetupError(format!(
                "[config] {other}: no such protocol parameter in this build"
            )));
        }
    }
    Ok(())
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

/// The key of a directed pair of nodes in `last_delivery`.
fn pair(from: usize, to: usize) -> (u32, u32) {
    (from as u32, to as u32)
}

fn address_of(node: usize) -> Address {
    Address::new(format!("sim:{node}").into_bytes()).unwrap_or_default()
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
        let mut config = Config {
            crypto: crypto.provider(),
            interner: Some(interner.clone()),
            ..Config::default()
        };
        apply_config(&mut config, &scenario)?;
        let mut sim_nodes = Vec::with_capacity(nodes);
        let mut index = HashMap::with_capacity(nodes);
        for i in 0..nodes {
            let mut rng = ChaCha8Rng::from_seed(node_seed(seed, i, 0));
            let seeds = IdentitySeeds::generate(&mut rng);
            let identity = Identity::from_seeds(&*config.crypto, seeds.clone());
            let peer = identity.peer_id();
            let node_config = Config {
                addresses: vec![address_of(i)],
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
        let broadcast = Tracker::new(
            scenario
                .events
                .iter()
                .any(|e| matches!(e.action, Action::Publish { .. })),
        );
        let mut world = World {
            net: scenario.network.clone(),
            scenario,
            seed,
            crypto,
            config,
            interner,
            nodes: sim_nodes,
            index,
            scheduler,
            rng: ChaCha8Rng::from_seed(blake3::derive_key(
                "hearsay-sim world rng v1",
                &seed.to_le_bytes(),
            )),
            cut: None,
            conns: BTreeMap::new(),
            pair_conn: HashMap::new(),
            next_conn: 0,
            last_delivery: HashMap::new(),
            began_joining: Vec::new(),
            discovery: crate::discovery::Tracker::default(),
            trace: blake3::Hasher::new(),
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

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
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

    /// Whether both ends of a connection between `a` and `b` believe it is up.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.pair_conn
            .get(&(a.min(b), a.max(b)))
            .and_then(|id| self.conns.get(id))
            .is_some_and(|c| c.open[0] && c.open[1])
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
        while let Some((now, ev)) = self.scheduler.pop_until(until) {
            self.events_processed += 1;
            self.step(now, ev);
        }
        self.scheduler.advance_to(until);
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

    /// Whether frames from `a` reach `b` (partitions only; not node liveness).
    pub fn reachable(&self, a: usize, b: usize) -> bool {
        match &self.cut {
            None => true,
            Some(cut) => {
                let (ga, gb) = (cut.group[a], cut.group[b]);
                ga == gb || (cut.oneway && ga != 0)
            }
        }
    }

    fn latency(&mut self) -> TimeDelta {
        match &self.net.latency {
            LatencyDist::Fixed(v) => *v,
            LatencyDist::Uniform { min, max } => {
                let span = max.as_micros().saturating_sub(min.as_micros());
                TimeDelta::from_micros(
                    min.as_micros()
                        + if span == 0 {
                            0
                        } else {
                            self.rng.next_u64() % (span + 1)
                        },
                )
            }
            LatencyDist::LogNormal { median, p99 } => {
                // ln L ~ N(mu, sigma): mu = ln median, sigma = (ln p99 - mu) / z99.
                let mu = (median.as_micros().max(1) as f64).ln();
                let sigma = ((p99.as_micros().max(1) as f64).ln() - mu).max(0.0) / 2.326_347_874;
                let (u1, u2) = (self.unit(), self.unit());
                let z = (-2.0 * u1.max(f64::MIN_POSITIVE).ln()).sqrt()
                    * (2.0 * std::f64::consts::PI * u2).cos();
                TimeDelta::from_micros((mu + sigma * z).exp() as u64)
            }
        }
    }

    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    fn step(&mut self, now: Timestamp, ev: Ev) {
        match ev {
            Ev::Action(i) => self.action(now, i),
            Ev::JoinNode { node, contacts } => {
                if self.nodes[node].state != NodeState::Running {
                    return;
                }
                self.nodes[node].joined = true;
                self.nodes[node].contacts = contacts.clone();
                self.send_join(now, node);
            }
            Ev::Deliver {
                from,
                to,
                conn,
                frame,
            } => {
                self.trace.update(b"D");
                self.trace.update(&now.as_micros().to_le_bytes());
                self.trace.update(&(from as u64).to_le_bytes());
                self.trace.update(&(to as u64).to_le_bytes());
                self.trace.update(&frame);
                let Some(c) = self.conns.get(&conn) else {
                    self.stats.lost_dead += 1;
                    return;
                };
                if !c.open[c.side(to)] || !self.running(to) {
                    self.stats.lost_dead += 1;
                    return;
                }
                self.stats.delivered += 1;
                if let Some(log) = self.delivery_log.as_mut() {
                    log.push(Delivery {
                        at: now,
                        from,
                        to,
                        frame: frame.clone(),
                    });
                }
                match self.nodes[to].adversary.as_mut() {
                    Some(adv) => adv.incoming(&frame),
                    None => {
                        if self.broadcast.publishing()
                            && let Some((topic, payload)) = broadcast::payload_of(&frame)
                        {
                            let subscribed = self.nodes[to]
                                .node
                                .as_ref()
                                .is_some_and(|n| n.inspect().is_subscribed(&topic));
                            self.broadcast
                                .frame_received(&payload.message.id(), subscribed);
                        }
                    }
                }
                let peer = self.nodes[from].peer;
                if let Some(node) = self.nodes[to].node.as_mut() {
                    // Refusals are counted by the node; the sim reads the counters.
                    let _ = node.handle_frame(now, peer, frame);
                }
                self.drain(to);
            }
            Ev::ConnUp { node, conn } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.dead {
                    return;
                }
                let side = c.side(node);
                let peer_index = c.other(node);
                if self.nodes[node].state != NodeState::Running
                    && self.nodes[node].state != NodeState::Left
                {
                    return; // a crashed or hung end never learns of it; idle timeout cleans up
                }
                c.open[side] = true;
                let peer = self.nodes[peer_index].peer;
                if let Some(n) = self.nodes[node].node.as_mut() {
                    n.handle_connected(now, peer);
                }
                self.drain(node);
            }
            Ev::ConnDown { node, conn } => self.conn_down(now, node, conn),
            Ev::DialFail { node, peer } => {
                if self.running(node) {
                    if let Some(n) = self.nodes[node].node.as_mut() {
                        n.handle_disconnected(now, peer);
                    }
                    self.drain(node);
                }
            }
            Ev::IdleCheck { conn, since } => {
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if c.broken_since == Some(since) {
                    let (a, b) = (c.a, c.b);
                    self.conn_down(now, a, conn);
                    self.conn_down(now, b, conn);
                }
            }
            Ev::Timer { node } => {
                if self.nodes[node].armed != Some(now) {
                    return;
                }
                self.nodes[node].armed = None;
                if !self.running(node) {
                    return; // a hung node's timers wait for resume
                }
                if let Some(n) = self.nodes[node].node.as_mut() {
                    n.handle_timeout(now);
                }
                self.drain(node);
            }
            Ev::AdversaryTick { node } => {
                if !self.running(node) || self.nodes[node].adversary.is_none() {
                    return;
                }
                let mut rng = ChaCha8Rng::from_seed(node_seed(self.seed, node, now.as_micros()));
                let sim_node = &mut self.nodes[node];
                let out = match (sim_node.adversary.as_mut(), sim_node.node.as_ref()) {
                    (Some(adv), Some(n)) => adv.tick(now, n, &mut rng),
                    _ => Vec::new(),
                };
                for t in out {
                    self.transmit(now, node, t, true);
                }
                self.scheduler
                    .schedule(now + byzantine::TICK, Ev::AdversaryTick { node });
            }
            Ev::Publish { plan, k } => self.publish(now, plan, k),
            Ev::Foaf { distance, k } => self.foaf_query(now, distance, k),
            Ev::SampleComponents => {
                let comps = self.components();
                self.components_series
                    .push(((now - SIM_EPOCH).as_micros() as f64 / 1e6, comps));
                if let Some(heal) = self.last_heal_at
                    && Some(heal) == self.final_heal_at
                    && self.remerge_ms.is_none()
                    && comps == 1
                {
                    self.remerge_ms = Some((now - heal).as_micros() as f64 / 1000.0);
                }
                // Fine sampling while waiting for the final re-merge, coarse otherwise.
                let waiting = self.last_heal_at.is_some()
                    && self.last_heal_at == self.final_heal_at
                    && self.remerge_ms.is_none();
                let next = if waiting {
                    TimeDelta::from_millis(100)
                } else {
                    self.sample_every
                };
                self.scheduler.schedule(now + next, Ev::SampleComponents);
            }
        }
    }

    fn send_join(&mut self, now: Timestamp, node: usize) {
        let contacts: Vec<Contact> = self.nodes[node]
            .contacts
            .iter()
            .map(|&c| Contact {
                peer: self.nodes[c].peer,
                addresses: vec![address_of(c)],
            })
            .collect();
        if let Some(n) = self.nodes[node].node.as_mut() {
            let _ = n.handle_command(now, Command::Join { contacts });
        }
        self.drain(node);
    }

    fn conn_down(&mut self, now: Timestamp, node: usize, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let side = c.side(node);
        let peer_index = c.other(node);
        if c.open[side] {
            c.open[side] = false;
            let peer = self.nodes[peer_index].peer;
            match self.nodes[node].state {
                NodeState::Running | NodeState::Left => {
                    if let Some(n) = self.nodes[node].node.as_mut() {
                        n.handle_disconnected(now, peer);
                    }
                    self.drain(node);
                }
                NodeState::Hung => self.nodes[node].missed_disconnects.push(peer),
                NodeState::Crashed => {}
            }
        }
        if let Some(c) = self.conns.get(&conn)
            && !c.open[0]
            && !c.open[1]
        {
            let key = (c.a.min(c.b), c.a.max(c.b));
            self.conns.remove(&conn);
            if self.pair_conn.get(&key) == Some(&conn) {
                self.pair_conn.remove(&key);
                // Nothing goes between the two until a new connection sets these again.
                self.last_delivery.remove(&pair(key.0, key.1));
                self.last_delivery.remove(&pair(key.1, key.0));
            }
        }
    }

    /// Re-evaluates whether each connection of `nodes` (or all, if `None`) can carry frames.
    fn refresh_health(&mut self, now: Timestamp, only: Option<usize>) {
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| only.is_none_or(|n| c.a == n || c.b == n))
            .map(|(id, _)| *id)
            .collect();
        let idle = self.net.idle_timeout;
        for id in ids {
            let Some(c) = self.conns.get(&id) else {
                continue;
            };
            let (a, b) = (c.a, c.b);
            let broken = c.dead
                || !self.running(a)
                || !self.running(b)
                || !self.reachable(a, b)
                || !self.reachable(b, a);
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            match (broken, c.broken_since) {
                (true, None) => {
                    c.broken_since = Some(now);
                    self.scheduler.schedule(
                        now + idle,
                        Ev::IdleCheck {
                            conn: id,
                            since: now,
                        },
                    );
                }
                (false, Some(_)) => c.broken_since = None,
                _ => {}
            }
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

    fn transmit(&mut self, now: Timestamp, i: usize, t: Transmit, injected: bool) {
        match t {
            Transmit::Send { to, frame } => {
                let Some(&j) = self.index.get(&to) else {
                    return;
                };
                if !injected || self.nodes[i].adversary.is_none() {
                    self.discovery.frame_sent(&frame);
                    self.nodes[i].frames_sent += 1;
                    self.nodes[i].bytes_sent += frame.len() as u64;
                }
                let key = (i.min(j), i.max(j));
                let Some(&conn) = self.pair_conn.get(&key) else {
                    return;
                };
                let Some(c) = self.conns.get(&conn) else {
                    return;
                };
                if !c.open[c.side(i)] || c.dead {
                    return; // no connection at this end: nothing goes on the wire
                }
                self.stats.sent += 1;
                if !self.reachable(i, j) {
                    self.stats.lost_partition += 1;
                    return; // the connection will time out if the cut persists
                }
                if !self.running(j) {
                    self.stats.lost_dead += 1;
                    return;
                }
                let mut at = now + self.latency();
                if self.chance(self.net.loss) {
                    match self.net.loss_mode {
                        LossMode::Drop => {
                            self.stats.lost_loss += 1;
                            return;
                        }
                        LossMode::Delay => {
                            // A retransmission after about one round trip.
                            let rtt = self.latency() + self.latency();
                            at += rtt + TimeDelta::from_millis(25);
                        }
                    }
                }
                if self.chance(self.net.reorder) {
                    let extra = self.latency() + self.latency();
                    at += TimeDelta::from_micros(self.rng.next_u64() % extra.as_micros().max(1));
                } else {
                    let last = self.last_delivery.entry(pair(i, j)).or_insert(now);
                    at = at.max(*last);
                    *last = at;
                }
                if self.chance(self.net.duplicate) {
                    self.stats.duplicated += 1;
                    let again = at + TimeDelta::from_micros(1 + self.rng.next_u64() % 5_000);
                    self.scheduler.schedule(
                        again,
                        Ev::Deliver {
                            from: i,
                            to: j,
                            conn,
                            frame: frame.clone(),
                        },
                    );
                }
                self.scheduler.schedule(
                    at,
                    Ev::Deliver {
                        from: i,
                        to: j,
                        conn,
                        frame,
                    },
                );
            }
            Transmit::Connect { peer, .. } => {
                let Some(&j) = self.index.get(&peer) else {
                    self.scheduler
                        .schedule(now + self.net.idle_timeout, Ev::DialFail { node: i, peer });
                    return;
                };
                let key = (i.min(j), i.max(j));
                if let Some(&existing) = self.pair_conn.get(&key)
                    && let Some(c) = self.conns.get(&existing)
                    && !c.dead
                    && c.broken_since.is_none()
                {
                    if c.open[c.side(i)] {
                        // Already connected: report it again; the core ignores duplicates.
                        self.scheduler.schedule(
                            now,
                            Ev::ConnUp {
                                node: i,
                                conn: existing,
                            },
                        );
                    }
                    return; // a handshake is under way
                }
                if i == j || !self.running(j) || !self.reachable(i, j) || !self.reachable(j, i) {
                    self.scheduler
                        .schedule(now + self.net.idle_timeout, Ev::DialFail { node: i, peer });
                    return;
                }
                let id = self.next_conn;
                self.next_conn += 1;
                self.conns.insert(
                    id,
                    Conn {
                        a: i,
                        b: j,
                        open: [false, false],
                        broken_since: None,
                        dead: false,
                    },
                );
                self.pair_conn.insert(key, id);
                let (there, back) = (self.latency(), self.latency());
                self.scheduler
                    .schedule(now + there, Ev::ConnUp { node: j, conn: id });
                self.scheduler
                    .schedule(now + there + back, Ev::ConnUp { node: i, conn: id });
                // Nothing arrives at either end before the dialler's side is up.
                self.last_delivery.insert(pair(i, j), now + there + back);
                self.last_delivery.insert(pair(j, i), now + there + back);
            }
            Transmit::Disconnect { peer } => {
                let Some(&j) = self.index.get(&peer) else {
                    return;
                };
                let key = (i.min(j), i.max(j));
                let Some(&conn) = self.pair_conn.get(&key) else {
                    return;
                };
                // The closer hears of it at once; the other end after what is in flight.
                self.scheduler.schedule(now, Ev::ConnDown { node: i, conn });
                if self.reachable(i, j) && self.running(j) {
                    let lat = self.latency();
                    let after = self.last_delivery.get(&pair(i, j)).copied().unwrap_or(now);
                    self.scheduler
                        .schedule((now + lat).max(after), Ev::ConnDown { node: j, conn });
                }
            }
            _ => {}
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
            self.trace.update(
                format!(
                    "E{} {i} Delivered {topic:?} {author:?} {id:?} {sequence} {} {hops}",
                    now.as_micros(),
                    timestamp.as_micros()
                )
                .as_bytes(),
            );
            if self.nodes[i].adversary.is_none() {
                let claimed = self.index.get(author).copied();
                self.broadcast
                    .delivered(now, i, *id, claimed, *timestamp, *hops);
            }
        } else {
            self.trace
                .update(format!("E{} {i} {e:?}", now.as_micros()).as_bytes());
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
            if let Some(t) = self.pending_detection.remove(&(i, x)) {
                self.detection_samples
                    .push((now - t).as_micros() as f64 / 1000.0);
            }
            let alive = self.nodes[x].state == NodeState::Running;
            if alive && self.reachable(i, x) && self.reachable(x, i) && self.is_live(i) {
                self.false_positives += 1;
            }
        }
    }

    /// `contacts` distinct nodes drawn at random from those that began joining, as drawing
    /// from a copy of that list with `swap_remove` would (the same draws of the world RNG, the
    /// same nodes), without copying it.
    fn pick_contacts(&mut self, contacts: usize) -> Vec<usize> {
        let pool = &self.began_joining;
        // Positions of the virtual copy that swap_remove has overwritten, and their values.
        let mut moved: Vec<(usize, usize)> = Vec::new();
        let at = |moved: &[(usize, usize)], k: usize| {
            moved
                .iter()
                .rev()
                .find(|(p, _)| *p == k)
                .map_or(pool[k], |(_, v)| *v)
        };
        let mut len = pool.len();
        let mut chosen = Vec::new();
        while chosen.len() < contacts && len > 0 {
            let j = byzantine::below(&mut self.rng, len);
            chosen.push(at(&moved, j));
            let last = at(&moved, len - 1);
            moved.push((j, last));
            len -= 1;
        }
        chosen
    }

    fn pick_fraction(&mut self, candidates: Vec<usize>, fraction: f64) -> Vec<usize> {
        let k = ((candidates.len() as f64) * fraction + 1e-9).floor() as usize;
        self.pick_count(candidates, k)
    }

    /// `k` of `candidates` (all of them if fewer), chosen by the world RNG, in id order.
    fn pick_count(&mut self, candidates: Vec<usize>, k: usize) -> Vec<usize> {
        let mut pool = candidates;
        // Partial Fisher-Yates with the world RNG: deterministic for a seed.
        for n in 0..k.min(pool.len()) {
            let j = n + byzantine::below(&mut self.rng, pool.len() - n);
            pool.swap(n, j);
        }
        pool.truncate(k);
        pool.sort_unstable();
        pool
    }

    fn select(
        &mut self,
        select: &Selection,
        qualifies: impl Fn(&Self, usize) -> bool,
    ) -> Vec<usize> {
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| qualifies(self, i))
            .collect();
        match select {
            Selection::Fraction(f) => self.pick_fraction(candidates, *f),
            Selection::Ids(ids) => ids
                .iter()
                .copied()
                .filter(|i| candidates.contains(i))
                .collect(),
            Selection::All => candidates,
        }
    }

    fn action(&mut self, now: Timestamp, index: usize) {
        let scheduled = self.scenario.events[index].clone();
        self.trace
            .update(format!("A{} {:?}", now.as_micros(), scheduled.action).as_bytes());
        let at = scheduled.at;
        match scheduled.action {
            Action::Join { contacts, spread } => {
                let joiners: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| {
                        self.nodes[i].state == NodeState::Running
                            && !self.nodes[i].joined
                            && !self.nodes[i].began_joining
                    })
                    .collect();
                let count = joiners.len().max(1) as u64;
                for (k, node) in joiners.into_iter().enumerate() {
                    let chosen = self.pick_contacts(contacts);
                    self.began_joining.push(node);
                    self.nodes[node].began_joining = true;
                    let offset = TimeDelta::from_micros(spread.as_micros() / count * k as u64);
                    self.scheduler.schedule(
                        now + offset,
                        Ev::JoinNode {
                            node,
                            contacts: chosen,
                        },
                    );
                }
            }
            Action::Crash { select, group } => {
                let chosen = self.select(&select, |w, i| {
                    w.nodes[i].state == NodeState::Running
                        && w.nodes[i].adversary.is_none()
                        && group.as_ref().is_none_or(|g| w.discovery.is_member(g, i))
                });
                for i in chosen {
                    self.discovery.departed(i, now, true);
                    self.note_departure(now, i);
                    let n = &mut self.nodes[i];
                    n.persisted = n.node.as_ref().map(Node::persistent_state);
                    n.node = None;
                    n.state = NodeState::Crashed;
                    n.armed = None;
                    self.refresh_health(now, Some(i));
                }
            }
            Action::Hang { select } => {
                let chosen = self.select(&select, |w, i| {
                    w.nodes[i].state == NodeState::Running && w.nodes[i].adversary.is_none()
                });
                for i in chosen {
                    self.note_departure(now, i);
                    self.nodes[i].state = NodeState::Hung;
                    self.refresh_health(now, Some(i));
                }
            }
            Action::Resume { select } => {
                let chosen = self.select(&select, |w, i| w.nodes[i].state == NodeState::Hung);
                for i in chosen {
                    self.nodes[i].state = NodeState::Running;
                    self.refresh_health(now, Some(i));
                    let missed = std::mem::take(&mut self.nodes[i].missed_disconnects);
                    if let Some(n) = self.nodes[i].node.as_mut() {
                        for peer in missed {
                            n.handle_disconnected(now, peer);
                        }
                        n.handle_timeout(now);
                    }
                    self.nodes[i].armed = None;
                    self.drain(i);
                }
            }
            Action::Restart { select } => {
                let chosen = self.select(&select, |w, i| w.nodes[i].state == NodeState::Crashed);
                for i in chosen {
                    self.restart(now, i);
                }
            }
            Action::Leave { select, group } => {
                let chosen = self.select(&select, |w, i| {
                    w.is_live(i) && group.as_ref().is_none_or(|g| w.discovery.is_member(g, i))
                });
                for i in chosen {
                    self.discovery.departed(i, now, false);
                    self.nodes[i].state = NodeState::Left;
                    if let Some(n) = self.nodes[i].node.as_mut() {
                        let _ = n.handle_command(now, Command::Leave);
                    }
                    self.drain(i);
                }
            }
            Action::Partition { groups, oneway } => {
                let n = self.nodes.len();
                let mut group = vec![groups.len() as u16; n];
                let mut start = 0usize;
                let mut acc = 0.0;
                for (g, f) in groups.iter().enumerate() {
                    acc += f;
                    let stop = ((acc * n as f64) + 1e-9).floor() as usize;
                    for slot in group.iter_mut().take(stop.min(n)).skip(start) {
                        *slot = g as u16;
                    }
                    start = stop.min(n);
                }
                self.cut = Some(Cut { group, oneway });
                self.refresh_health(now, None);
            }
            Action::Heal => {
                self.components_at_heal = Some(self.components());
                self.cut = None;
                self.last_heal_at = Some(now);
                self.refresh_health(now, None);
                if Some(now) == self.final_heal_at {
                    self.scheduler.schedule(now, Ev::SampleComponents);
                }
            }
            Action::SetNetwork(patch) => self.net.apply(&patch),
            Action::Byzantine {
                fraction,
                behaviour,
            } => {
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| w.is_live(i));
                for i in chosen {
                    let adversary = if behaviour == Behaviour::Forge {
                        let seeds = self.nodes[i].seeds.clone();
                        Adversary::with_identity(
                            behaviour,
                            Identity::from_seeds(&*self.config.crypto, seeds),
                        )
                    } else {
                        Adversary::new(behaviour)
                    };
                    self.nodes[i].adversary = Some(adversary);
                    self.scheduler
                        .schedule(now + byzantine::TICK, Ev::AdversaryTick { node: i });
                }
            }
            Action::Subscribe {
                ref topic,
                fraction,
            } => {
                let id = TopicId::from_name(topic);
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| {
                    w.in_overlay(i) && !w.nodes[i].subscriptions.contains(&id)
                });
                for i in chosen {
                    let subs = &mut self.nodes[i].subscriptions;
                    if let Err(at) = subs.binary_search(&id) {
                        subs.insert(at, id);
                    }
                    self.subscribe(now, i, id, topic);
                }
            }
            Action::Unsubscribe {
                ref topic,
                fraction,
            } => {
                let id = TopicId::from_name(topic);
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| {
                    w.in_overlay(i) && w.nodes[i].subscriptions.contains(&id)
                });
                for i in chosen {
                    self.nodes[i].subscriptions.retain(|t| *t != id);
                    let result = match self.nodes[i].node.as_mut() {
                        Some(n) => n.unsubscribe(now, id),
                        None => continue,
                    };
                    if let Err(e) = result {
                        self.warn_once(format!("unsubscribe (topic {topic:?}) at node {i}: {e}"));
                    }
                    self.drain(i);
                }
            }
            Action::Publish {
                ref topic,
                count,
                rate,
                size,
                measure,
                senders,
            } => {
                let id = TopicId::from_name(topic);
                let mut chosen = Vec::new();
                if senders > 0 {
                    let candidates: Vec<usize> = (0..self.nodes.len())
                        .filter(|&i| self.can_publish(i, &id))
                        .collect();
                    if candidates.len() < senders {
                        self.warn_once(format!(
                            "publish (topic {topic:?}) at {at:?}: senders = {senders} but only {} live subscribers",
                            candidates.len()
                        ));
                    }
                    chosen = self.pick_count(candidates, senders);
                }
                let plan = self.plans.len();
                self.plans.push(PublishPlan {
                    event: index,
                    topic: id,
                    name: topic.clone(),
                    size,
                    measure,
                    senders: chosen,
                    turn: 0,
                });
                for k in 0..count {
                    self.scheduler.schedule(
                        broadcast::publish_instant(now, k, rate),
                        Ev::Publish { plan, k },
                    );
                }
            }
            Action::Presence { group, fraction } => {
                let chosen = self.select(&Selection::Fraction(fraction), |w, i| {
                    w.is_live(i) && !w.discovery.is_member(&group, i)
                });
                let mut input = self.seed.to_le_bytes().to_vec();
                input.extend_from_slice(group.as_bytes());
                let secret = blake3::derive_key("hearsay-sim presence group secret v1", &input);
                let mut started = Vec::new();
                let mut topic = None;
                for i in chosen {
                    let result = match self.nodes[i].node.as_mut() {
                        Some(n) => n.presence_start(now, secret),
                        None => continue,
                    };
                    match result {
                        Ok(t) => {
                            topic = Some(t);
                            started.push(i);
                        }
                        Err(e) => self.warn_once(format!("presence at node {i}: {e}")),
                    }
                    self.drain(i);
                }
                if let Some(topic) = topic {
                    self.discovery.group_started(&group, topic, &started, now);
                }
            }
            Action::Foaf {
                count,
                rate,
                distance,
            } => {
                let step = if rate > 0.0 {
                    TimeDelta::from_micros((1_000_000.0 / rate) as u64)
                } else {
                    TimeDelta::ZERO
                };
                for k in 0..count {
                    self.scheduler.schedule(
                        now + TimeDelta::from_micros(step.as_micros() * k),
                        Ev::Foaf { distance, k },
                    );
                }
            }
        }
    }

    /// Whether node `i` is running (not hung or stopped) and joined or joining, Byzantine or
    /// not: the nodes that `subscribe` and `unsubscribe` choose from. (A `join` at the same
    /// instant as a `subscribe` has started but not finished its joins when the subscription
    /// runs; Byzantine nodes wrap an honest node and subscribe like any other, so that they sit
    /// in the topic overlays.)
    fn in_overlay(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.state == NodeState::Running && n.node.is_some() && (n.joined || n.began_joining)
    }

    /// Whether node `i` may author a message on `topic`: live and subscribed.
    fn can_publish(&self, i: usize, topic: &TopicId) -> bool {
        self.is_live(i)
            && self.nodes[i].subscriptions.contains(topic)
            && self.nodes[i]
                .node
                .as_ref()
                .is_some_and(|n| n.inspect().is_subscribed(topic))
    }

    fn subscribe(&mut self, now: Timestamp, i: usize, topic: TopicId, name: &str) {
        let result = match self.nodes[i].node.as_mut() {
            Some(n) => n.subscribe(now, topic),
            None => return,
        };
        if let Err(e) = result {
            self.warn_once(format!("subscribe (topic {name:?}) at node {i}: {e}"));
        }
        self.drain(i);
    }

    /// Message `k` of publish plan `plan`: picks its author, publishes through the node's API
    /// and records what `publish()` returned.
    /// Query `k` of a `foaf` action: a random live node looks for a live node `distance` hops
    /// away in the membership overlay (active views), or any live node.
    fn foaf_query(&mut self, now: Timestamp, distance: crate::scenario::FoafDistance, k: u64) {
        use crate::scenario::FoafDistance;
        let live: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.is_live(i)).collect();
        for _ in 0..32 {
            if live.len() < 2 {
                break;
            }
            let origin = live[byzantine::below(&mut self.rng, live.len())];
            let candidates: Vec<usize> = match distance {
                FoafDistance::Hops(d) => self
                    .overlay_distances(origin)
                    .into_iter()
                    .filter(|&(_, x)| x == d)
                    .map(|(j, _)| j)
                    .collect(),
                FoafDistance::Any => live.iter().copied().filter(|&j| j != origin).collect(),
            };
            if candidates.is_empty() {
                continue;
            }
            let target = candidates[byzantine::below(&mut self.rng, candidates.len())];
            let peer = self.nodes[target].peer;
            let result = match self.nodes[origin].node.as_mut() {
                Some(n) => n.find(
                    now,
                    hearsay_proto::discovery::foaf::Target::Peer(peer),
                    None,
                ),
                None => continue,
            };
            match result {
                Ok(id) => {
                    self.trace.update(
                        format!("F{} {origin} {target} {id:?}", now.as_micros()).as_bytes(),
                    );
                    self.discovery.query_started(origin, id, peer);
                }
                Err(e) => self.warn_once(format!("foaf query {k} at node {origin}: {e}")),
            }
            self.drain(origin);
            return;
        }
        self.discovery.unplaceable += 1;
        self.warn_once(format!(
            "foaf: no live node has another live node at {distance:?}; query skipped"
        ));
    }

    /// Hops from `origin` to every live node it reaches over active views (breadth first).
    fn overlay_distances(&self, origin: usize) -> BTreeMap<usize, u32> {
        let mut dist = BTreeMap::new();
        dist.insert(origin, 0u32);
        let mut frontier = vec![origin];
        let mut d = 0;
        while !frontier.is_empty() {
            d += 1;
            let mut next = Vec::new();
            for &i in &frontier {
                let Some(n) = self.nodes[i].node.as_ref() else {
                    continue;
                };
                for p in n.inspect().neighbors() {
                    if let Some(&j) = self.index.get(&p)
                        && self.is_live(j)
                        && !dist.contains_key(&j)
                    {
                        dist.insert(j, d);
                        next.push(j);
                    }
                }
            }
            frontier = next;
        }
        dist
    }

    fn publish(&mut self, now: Timestamp, plan: usize, k: u64) {
        let p = &self.plans[plan];
        let topic = p.topic;
        let author = if p.senders.is_empty() {
            let candidates: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.can_publish(i, &topic))
                .collect();
            (!candidates.is_empty())
                .then(|| candidates[byzantine::below(&mut self.rng, candidates.len())])
        } else {
            // Taking turns; a chosen sender that is no longer live passes its turn on.
            let n = p.senders.len();
            let found = (0..n)
                .map(|j| (p.turn + j) % n)
                .find(|&j| self.can_publish(p.senders[j], &topic));
            let author = found.map(|j| p.senders[j]);
            let p = &mut self.plans[plan];
            p.turn = found.map_or(p.turn, |j| j) + 1;
            author
        };
        let p = &self.plans[plan];
        let (event, size, measure) = (p.event, p.size, p.measure);
        let Some(author) = author else {
            let w = format!(
                "publish (topic {:?}, event at {:?}): no live subscriber to publish from; message(s) skipped",
                p.name, self.scenario.events[event].at
            );
            self.warn_once(w);
            return;
        };
        let payload = broadcast::payload_bytes(self.seed, event, k, size);
        let result = match self.nodes[author].node.as_mut() {
            Some(n) => n.publish(now, topic, &payload),
            None => return,
        };
        match result {
            Ok(id) => {
                self.trace
                    .update(format!("P{} {author} {id:?}", now.as_micros()).as_bytes());
                self.broadcast.published(Published {
                    id,
                    topic,
                    author,
                    at: now,
                    measure,
                });
            }
            Err(e) => {
                let w = format!(
                    "publish (topic {:?}) at node {author}: {e}",
                    self.plans[plan].name
                );
                self.warn_once(w);
            }
        }
        self.drain(author);
    }

    fn warn_once(&mut self, w: String) {
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }

    /// A node stops (crash or hang): every live node that has it as a neighbour now starts a
    /// detection clock.
    fn note_departure(&mut self, now: Timestamp, x: usize) {
        let peer = self.nodes[x].peer;
        for l in 0..self.nodes.len() {
            if l != x
                && self.is_live(l)
                && self.nodes[l]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.inspect().neighbors().any(|p| p == peer))
            {
                self.pending_detection.insert((l, x), now);
            }
        }
        // Pairs where x was the one watching can no longer be detected by x.
        self.pending_detection.retain(|(l, _), _| *l != x);
    }

    fn restart(&mut self, now: Timestamp, i: usize) {
        let boots = self.nodes[i].boots + 1;
        let identity = Identity::from_seeds(&*self.config.crypto, self.nodes[i].seeds.clone());
        let config = Config {
            addresses: vec![address_of(i)],
            ..self.config.clone()
        };
        let rng_seed = node_seed(self.seed, i, boots);
        let node = match self.nodes[i].persisted.clone() {
            Some(state) => Node::restore(config, identity, rng_seed, now, state),
            None => Node::new(config, identity, rng_seed, now),
        };
        let Ok(node) = node else { return };
        register_keys(&self.interner, &node);
        // Connections of its previous life can never work again (QUIC state is gone).
        for c in self.conns.values_mut() {
            if c.a == i || c.b == i {
                c.dead = true;
                c.open[c.side(i)] = false;
            }
        }
        let n = &mut self.nodes[i];
        n.node = Some(node);
        n.state = NodeState::Running;
        n.boots = boots;
        n.armed = None;
        self.refresh_health(now, Some(i));
        if self.nodes[i].joined {
            self.send_join(now, i);
        } else {
            self.drain(i);
        }
        // Subscriptions are not persisted: the operator's command line subscribes again.
        let topics: Vec<TopicId> = self.nodes[i].subscriptions.clone();
        for topic in topics {
            self.subscribe(now, i, topic, "(re-subscribed after restart)");
        }
    }

    /// Connected components of the live nodes (an active-view entry in either direction is an
    /// edge while both ends are reachable both ways).
    pub fn components(&self) -> u64 {
        let n = self.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let live: Vec<bool> = (0..n).map(|i| self.is_live(i)).collect();
        for i in 0..n {
            if !live[i] {
                continue;
            }
            let Some(node) = self.nodes[i].node.as_ref() else {
                continue;
            };
            for peer in node.inspect().neighbors() {
                let Some(&j) = self.index.get(&peer) else {
                    continue;
                };
                if live[j] && self.reachable(i, j) && self.reachable(j, i) {
                    let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                    if ri != rj {
                        parent[ri] = rj;
                    }
                }
            }
        }
        let mut roots = std::collections::BTreeSet::new();
        for (i, _) in live.iter().enumerate().filter(|(_, l)| **l) {
            roots.insert(find(&mut parent, i));
        }
        roots.len() as u64
    }

    /// Computes the metrics, checks the expectations, and returns everything.
    pub fn finish(
        mut self,
        wall_s: f64,
        baseline_rss_kb: Option<u64>,
        file: Option<String>,
    ) -> RunResult {
        let end = self.end;
        self.run_until(end);
        let n = self.nodes.len();
        let live: Vec<usize> = (0..n).filter(|&i| self.is_live(i)).collect();
        let mut detection = std::mem::take(&mut self.detection_samples);
        let missed = self.pending_detection.len() as u64;
        for t in self.pending_detection.values() {
            detection.push((end - *t).as_micros() as f64 / 1000.0);
        }
        let had_pairs = !detection.is_empty();
        let degrees: Vec<u64> = live
            .iter()
            .filter_map(|&i| {
                self.nodes[i]
                    .node
                    .as_ref()
                    .map(|x| x.inspect().neighbors().count() as u64)
            })
            .collect();
        let honest = |s: &SimNode| s.adversary.is_none();
        let frames_sent: u64 = self
            .nodes
            .iter()
            .filter(|s| honest(s))
            .map(|s| s.frames_sent)
            .sum();
        let bytes_sent: u64 = self
            .nodes
            .iter()
            .filter(|s| honest(s))
            .map(|s| s.bytes_sent)
            .sum();
        let rejected: u64 = self
            .nodes
            .iter()
            .filter(|s| honest(s))
            .filter_map(|s| s.node.as_ref())
            .map(|x| x.inspect().counters().frames_rejected())
            .sum();
        let secs = self.scenario.duration.as_micros() as f64 / 1e6;
        let delivery = self.broadcast.finish(n, SIM_EPOCH, |i, topic| {
            self.is_live(i)
                && self.nodes[i]
                    .node
                    .as_ref()
                    .is_some_and(|x| x.inspect().is_subscribed(topic))
        });
        let peak = crate::rss::peak_rss_kb();
        let (foaf_success_ratio, foaf_forwards_per_query) = self.discovery.foaf_metrics();
        let presence = self.discovery.presence_metrics(end, |i| self.is_live(i));
        let metrics = Metrics {
            presence_seen_ms: presence.seen,
            presence_gone_ms: presence.gone,
            presence_gone_left_ms: presence.gone_left,
            presence_gone_crashed_ms: presence.gone_crashed,
            foaf_success_ratio,
            foaf_forwards_per_query,
            delivery_ratio: delivery.delivery_ratio,
            latency_ms: delivery.latency_ms,
            rmr: delivery.rmr,
            ldh_max: delivery.ldh_max,
            payload_frames_to_nonsubscribers: delivery.payload_frames_to_nonsubscribers,
            forged_delivered: delivery.forged_delivered,
            duplicate_deliveries: delivery.duplicate_deliveries,
            detection_ms: if had_pairs {
                Percentiles::of(&detection)
            } else {
                None
            },
            detection_missed: had_pairs.then_some(missed),
            false_positives: Some(self.false_positives),
            components: Some(self.components()),
            isolated_nodes: Some(degrees.iter().filter(|&&d| d == 0).count() as u64),
            components_at_heal: self.components_at_heal,
            remerge_ms: self.remerge_ms,
            frames_sent: Some(frames_sent),
            bytes_sent: Some(bytes_sent),
            bytes_per_node_per_s: (n > 0 && secs > 0.0)
                .then(|| bytes_sent as f64 / n as f64 / secs),
            events: Some(self.events_processed),
            wall_s: Some(wall_s),
            peak_rss_mb: peak.map(|kb| kb as f64 / 1024.0),
            rejected_frames: Some(rejected),
            memory_per_node_kb: match (peak, baseline_rss_kb) {
                (Some(p), Some(b)) if n > 0 => Some(p.saturating_sub(b) as f64 / n as f64),
                _ => None,
            },
            events_per_s: (wall_s > 0.0).then(|| self.events_processed as f64 / wall_s),
        };
        let expectations = self
            .scenario
            .expects
            .iter()
            .map(|e| ExpectOutcome::check(e, &metrics))
            .collect();
        let series = Series {
            latency_ms: delivery.latency_samples,
            deliveries_over_time: delivery.deliveries_over_time,
            active_view_degree: degrees,
            frames_per_node: self.nodes.iter().map(|s| s.frames_sent).collect(),
            components_over_time: std::mem::take(&mut self.components_series),
        };
        let replay_command = match &file {
            Some(f) => format!(
                "cargo run --release -p hearsay-sim -- run {f} --seed {} --nodes {n}",
                self.seed
            ),
            None => format!("(built in code) seed {} nodes {n}", self.seed),
        };
        RunResult {
            name: self.scenario.name.clone(),
            file,
            seed: self.seed,
            nodes: n,
            duration_s: secs,
            crypto: self.crypto.name().to_string(),
            metrics,
            expectations,
            warnings: std::mem::take(&mut self.warnings),
            trace_hash: self.trace.finalize().to_hex().to_string(),
            replay_command,
            series,
        }
    }
}
