//! Scenarios: the simulator's input, as defined by the scenario contract
//! (`sim/scenarios/README.md`). A scenario is a small TOML file; [`Scenario::parse`] turns it
//! into these types or into one [`ScenarioError`] naming the file, line and key.

mod parse;

pub use parse::ScenarioError;

use hearsay_proto::TimeDelta;
use std::collections::BTreeMap;

/// A whole scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Free text, shown in the report.
    pub name: String,
    /// Default seed (`--seed` overrides).
    pub seed: u64,
    /// Number of nodes (`--nodes` overrides).
    pub nodes: usize,
    /// Virtual time to run.
    pub duration: TimeDelta,
    /// The link model at the start.
    pub network: NetworkSpec,
    /// Protocol configuration overrides, by name (validated by the runner against `Config`).
    pub config: BTreeMap<String, ConfigValue>,
    /// Actions in file order (the runner applies them in order of `at`, ties in file order).
    pub events: Vec<ScheduledAction>,
    /// Bounds on metrics.
    pub expects: Vec<Expect>,
}

/// A value in `[config]`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A duration written as a string with a unit ("500ms", "3s", "2m").
    Duration(TimeDelta),
    /// Any other string.
    Text(String),
}

/// The link model, applied per ordered pair of nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// One-way latency per frame.
    pub latency: LatencyDist,
    /// Probability a frame is lost on the link.
    pub loss: f64,
    /// What "lost" means.
    pub loss_mode: LossMode,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability a frame gets an extra random delay (and so may overtake others).
    pub reorder: f64,
    /// How long after a peer went silent the driver reports the connection as gone.
    pub idle_timeout: TimeDelta,
    /// Contract v4 `subnets`: node `i` sits in address group `i mod subnets` (`None`: one group
    /// per node). Only in `[network]`, not in `set_network`.
    pub subnets: Option<usize>,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            latency: LatencyDist::Uniform {
                min: TimeDelta::from_millis(10),
                max: TimeDelta::from_millis(100),
            },
            loss: 0.0,
            loss_mode: LossMode::Drop,
            duplicate: 0.0,
            reorder: 0.0,
            idle_timeout: TimeDelta::from_secs(10),
            subnets: None,
        }
    }
}

/// A `[network]` table given to `set_network`: only the keys present change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetworkPatch {
    /// New latency distribution.
    pub latency: Option<LatencyDist>,
    /// New loss probability.
    pub loss: Option<f64>,
    /// New loss mode.
    pub loss_mode: Option<LossMode>,
    /// New duplication probability.
    pub duplicate: Option<f64>,
    /// New reordering probability.
    pub reorder: Option<f64>,
    /// New idle timeout.
    pub idle_timeout: Option<TimeDelta>,
}

impl NetworkSpec {
    /// Applies the keys present in `patch`.
    pub fn apply(&mut self, patch: &NetworkPatch) {
        if let Some(v) = &patch.latency {
            self.latency = v.clone();
        }
        if let Some(v) = patch.loss {
            self.loss = v;
        }
        if let Some(v) = patch.loss_mode {
            self.loss_mode = v;
        }
        if let Some(v) = patch.duplicate {
            self.duplicate = v;
        }
        if let Some(v) = patch.reorder {
            self.reorder = v;
        }
        if let Some(v) = patch.idle_timeout {
            self.idle_timeout = v;
        }
    }
}

/// A latency distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyDist {
    /// Always `value`: `{ dist = "fixed", value = "50ms" }`.
    Fixed(TimeDelta),
    /// Uniform in `[min, max]`: `{ dist = "uniform", min = "10ms", max = "100ms" }`.
    Uniform {
        /// Lower bound.
        min: TimeDelta,
        /// Upper bound.
        max: TimeDelta,
    },
    /// Log-normal with the given median and p99, a heavy tail as on real WANs:
    /// `{ dist = "lognormal", median = "40ms", p99 = "250ms" }`.
    LogNormal {
        /// Median latency.
        median: TimeDelta,
        /// 99th-percentile latency (must exceed the median).
        p99: TimeDelta,
    },
}

/// What happens to a lost frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossMode {
    /// Gone (datagram-like).
    Drop,
    /// Arrives late, in order, after a retransmission delay (stream-like, as QUIC).
    Delay,
}

/// An action and when it happens.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledAction {
    /// Virtual time from the start of the run.
    pub at: TimeDelta,
    /// What happens.
    pub action: Action,
    /// The line of the `[[events]]` header in the file (for messages).
    pub line: usize,
}

/// Which nodes an action applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// That fraction of the qualifying nodes, rounded down, chosen by the run's RNG.
    Fraction(f64),
    /// These node numbers.
    Ids(Vec<usize>),
    /// For `resume`: every hung node; for `restart`: every crashed node.
    All,
}

/// A Byzantine behaviour (contract: drop, forge, replay, flood; v4: liar, eclipse, root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accept everything, forward nothing.
    Drop,
    /// Send frames with payloads or signatures it did not get from their authors, and claim
    /// others are dead.
    Forge,
    /// Resend old frames it received, including after the retention window.
    Replay,
    /// Send valid-looking frames at 100x the honest rate.
    Flood,
    /// Contract v4 `liar`: every 100 ms, to each connected node, 8 SUSPECT/DEAD claims about
    /// that node and 8 about random others, each with the highest incarnation it has seen of
    /// its subject plus 1 to 8.
    Liar,
    /// Contract v4 `eclipse`: each attacker keeps up to 20 identities of its own (sybils) and
    /// sends JOIN, NEIGHBOR(High), SHUFFLE and FORWARD_JOIN to its targets at 100x the honest
    /// rate, in the node-level overlay and in every topic the targets subscribe to, offering
    /// only its own identities.
    Eclipse,
    /// Contract v4 `root`: grinds up to 2^16 identities, rejoins as the one with the smallest
    /// `PeerId` (so it is the root of every topic tree it joins, SPEC.md §15.6), claims zero hops
    /// to any root it reports that is not itself (the best parent), forwards no payload and
    /// answers no IWANT or GRAFT (`sim/src/world/root.rs`).
    Root,
}

/// Where a `byzantine` event's nodes, and the identities they make, sit among address groups
/// (contract v4 `subnet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubnetChoice {
    /// All of them in one new address group, numbered after every existing one (the default).
    #[default]
    Shared,
    /// Each keeps its own group; the identities it makes sit in it.
    Own,
}

/// The default `targets` of a `byzantine` event: a tenth of the honest nodes.
pub const DEFAULT_TARGETS: f64 = 0.1;

/// What to look for in a `foaf` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoafDistance {
    /// A live node exactly this many hops away in the membership overlay.
    Hops(u32),
    /// Any live node.
    Any,
}

/// One action of the contract.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Every live node not yet joined joins, in id order, through `contacts` random nodes that
    /// began joining before it (node 0 starts alone); joins spread evenly over `spread`.
    Join {
        /// Contacts per joining node (default 1).
        contacts: usize,
        /// Spread of the joins (default 0).
        spread: TimeDelta,
    },
    /// A fraction of live nodes subscribe to `topic`.
    Subscribe {
        /// Topic name.
        topic: String,
        /// Fraction of live nodes.
        fraction: f64,
    },
    /// A fraction of the topic's subscribers unsubscribe.
    Unsubscribe {
        /// Topic name.
        topic: String,
        /// Fraction of live subscribers.
        fraction: f64,
    },
    /// `count` messages on `topic` at `rate` per second.
    Publish {
        /// Topic name.
        topic: String,
        /// Number of messages (default 50).
        count: u64,
        /// Messages per second (default 10).
        rate: f64,
        /// Payload bytes (default 1024).
        size: usize,
        /// Whether the messages count in metrics (default true).
        measure: bool,
        /// 0: a random live subscriber per message; N: N distinct nodes chosen once, in turn.
        senders: usize,
    },
    /// Nodes stop silently and lose unpersisted state.
    Crash {
        /// Which.
        select: Selection,
        /// Restrict the choice to this presence group's members.
        group: Option<String>,
    },
    /// Nodes stop processing with state intact.
    Hang {
        /// Which.
        select: Selection,
    },
    /// Hung nodes go on from where they stopped.
    Resume {
        /// Which (`Ids` or `All` = every hung node).
        select: Selection,
    },
    /// Crashed nodes come back with identity and persisted state.
    Restart {
        /// Which (`Ids` or `All` = every crashed node).
        select: Selection,
    },
    /// Nodes leave gracefully.
    Leave {
        /// Which.
        select: Selection,
        /// Restrict the choice to this presence group's members.
        group: Option<String>,
    },
    /// Cut the network into groups (fractions of all nodes, by node number).
    Partition {
        /// Group sizes as fractions.
        groups: Vec<f64>,
        /// Cut only the first group's frames to the others.
        oneway: bool,
    },
    /// Remove every partition.
    Heal,
    /// Change link-model keys from now on.
    SetNetwork(NetworkPatch),
    /// Replace nodes by adversaries.
    Byzantine {
        /// Fraction of live nodes.
        fraction: f64,
        /// What they do.
        behaviour: Behaviour,
        /// Their address groups from the moment they turn (default: one new shared group).
        subnet: SubnetChoice,
        /// `eclipse`: the fraction of honest nodes attacked, chosen once for the event
        /// (default [`DEFAULT_TARGETS`]; in (0, 1]).
        targets: f64,
    },
    /// A fraction of live nodes form a presence group and start beaconing.
    Presence {
        /// Group name.
        group: String,
        /// Fraction of live nodes.
        fraction: f64,
    },
    /// Random live nodes look for peers at a distance.
    Foaf {
        /// Number of queries.
        count: u64,
        /// Queries per second.
        rate: f64,
        /// Target distance.
        distance: FoafDistance,
    },
}

impl Action {
    /// The action's name as written in scenario files.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Join { .. } => "join",
            Action::Subscribe { .. } => "subscribe",
            Action::Unsubscribe { .. } => "unsubscribe",
            Action::Publish { .. } => "publish",
            Action::Crash { .. } => "crash",
            Action::Hang { .. } => "hang",
            Action::Resume { .. } => "resume",
            Action::Restart { .. } => "restart",
            Action::Leave { .. } => "leave",
            Action::Partition { .. } => "partition",
            Action::Heal => "heal",
            Action::SetNetwork(_) => "set_network",
            Action::Byzantine { .. } => "byzantine",
            Action::Presence { .. } => "presence",
            Action::Foaf { .. } => "foaf",
        }
    }
}

/// A bound on a metric: the run fails if it is not met (or the metric is null).
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// Metric key; nested values use a dot (`latency_ms.p95`).
    pub metric: String,
    /// Lower bound, inclusive.
    pub min: Option<f64>,
    /// Upper bound, inclusive.
    pub max: Option<f64>,
    /// The line of the `[[expect]]` header.
    pub line: usize,
}

/// Every metric key an `[[expect]]` may name (dot-separated for nested values).
pub const METRIC_KEYS: &[&str] = &[
    "delivery_ratio",
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "latency_ms.max",
    "rmr",
    "ldh_max",
    "payload_frames_to_nonsubscribers",
    "detection_ms.p50",
    "detection_ms.p95",
    "detection_ms.p99",
    "detection_ms.max",
    "detection_missed",
    "false_positives",
    "components",
    "isolated_nodes",
    "components_at_heal",
    "remerge_ms",
    "forged_delivered",
    "duplicate_deliveries",
    "frames_sent",
    "bytes_sent",
    "bytes_per_node_per_s",
    "idle_bytes_per_node_per_s",
    "idle_frames_per_node_per_s",
    "events",
    "wall_s",
    "peak_rss_mb",
    "presence_seen_ms.p50",
    "presence_seen_ms.p95",
    "presence_seen_ms.max",
    "presence_gone_ms.p50",
    "presence_gone_ms.max",
    "foaf_success_ratio",
    "foaf_forwards_per_query.mean",
    "foaf_forwards_per_query.max",
    "signatures_per_node_per_s.mean",
    "signatures_per_node_per_s.max",
    "eclipsed_nodes",
    "honest_view_fraction.min",
    "honest_view_fraction.p5",
    "rejected_frames",
    "memory_per_node_kb",
    "events_per_s",
    "presence_gone_left_ms.p50",
    "presence_gone_left_ms.max",
    "presence_gone_crashed_ms.p50",
    "presence_gone_crashed_ms.max",
    "latency_before_crash_ms.p50",
    "latency_before_crash_ms.p95",
    "latency_before_crash_ms.p99",
    "latency_before_crash_ms.max",
    "latency_after_crash_ms.p50",
    "latency_after_crash_ms.p95",
    "latency_after_crash_ms.p99",
    "latency_after_crash_ms.max",
    "latency_p99_after_crash_ratio",
];
