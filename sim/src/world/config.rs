//! Mapping a scenario's `[config]` table onto the nodes' `hearsay_proto::Config`.

use crate::scenario::{ConfigValue, Scenario};
use hearsay_proto::Config;

/// Why a scenario cannot be run (beyond parse errors): a bad `[config]` key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// Applies every key of the scenario's `[config]` table to `config`.
pub(super) fn apply_config(config: &mut Config, scenario: &Scenario) -> Result<(), SetupError> {
    for (key, value) in &scenario.config {
        apply_config_key(config, key, value)?;
    }
    Ok(())
}

/// Sets one `[config]` key. The names are the fields of `hearsay_proto::Config` and its parts;
/// the topic overlays' HyParView takes the membership names with a `topic_` prefix and
/// anti-entropy's take a `reconcile_` prefix (`sim/scenarios/README.md` lists them all).
fn apply_config_key(config: &mut Config, key: &str, value: &ConfigValue) -> Result<(), SetupError> {
    use ConfigValue as V;
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
            "shuffle_ttl" => h.shuffle_ttl = small(value)?,
            "prwl" => h.prwl = small(value)?,
            "shuffle_interval" => h.shuffle_interval = dur(value)?,
            "shuffle_interval_max" => h.shuffle_interval_max = dur(value)?,
            "shuffle_active" => h.shuffle_active = count(value)?,
            "shuffle_passive" => h.shuffle_passive = count(value)?,
            "retry_backoff_min" => h.retry_backoff_min = dur(value)?,
            "retry_backoff_max" => h.retry_backoff_max = dur(value)?,
            "retry_horizon" => h.retry_horizon = dur(value)?,
            "max_lost" => h.max_lost = count(value)?,
            "max_pending" => h.max_pending = count(value)?,
            "attempt_timeout" => h.attempt_timeout = dur(value)?,
            "repair_interval" => h.repair_interval = dur(value)?,
            "repair_backoff_max" => h.repair_backoff_max = dur(value)?,
            "request_retry" => h.request_retry = dur(value)?,
            "join_rate" => h.join_rate = count32(value)?,
            "join_rate_per_source" => h.join_rate_per_source = count32(value)?,
            "merge" => h.merge = flag(value)?.then(|| h.merge.clone().unwrap_or_default()),
            "merge_probe_interval" => {
                let d = dur(value)?;
                if let Some(m) = h.merge.as_mut() {
                    m.probe_interval = d;
                }
            }
            "merge_probe_interval_max" => {
                let d = dur(value)?;
                if let Some(m) = h.merge.as_mut() {
                    m.probe_interval_max = d;
                }
            }
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
        "find_rate_per_source" => t.find_rate_per_source = count32(value)?,
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
        "ihave_timeout_min" => p.ihave_timeout_min = dur(value)?,
        "graft_timeout_min" => p.graft_timeout_min = dur(value)?,
        "ihave_delay_min" => p.ihave_delay_min = dur(value)?,
        "repair_rtos" => p.repair_rtos = count32(value)?,
        "optimization_threshold" => p.optimization_threshold = small(value)?,
        "retention" => p.retention = dur(value)?,
        "cache_messages" => p.cache_messages = count(value)?,
        "cache_bytes" => p.cache_bytes = count(value)?,
        "seen_capacity" => p.seen_capacity = count(value)?,
        "seen_per_author" => p.seen_per_author = count(value)?,
        "clock_skew" => p.clock_skew = dur(value)?,
        "max_missing" => p.max_missing = count(value)?,
        "max_announcers" => p.max_announcers = count(value)?,
        "max_pending_ihave" => p.max_pending_ihave = count(value)?,
        // Anti-entropy.
        "reconcile_interval" => a.interval = dur(value)?,
        "reconcile_interval_max" => a.interval_max = dur(value)?,
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
