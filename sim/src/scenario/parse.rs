//! Scenario parsing: TOML text to a [`Scenario`], or one [`ScenarioError`] naming the file, the
//! line and the dotted key.
//!
//! The text is read with `toml`'s spanned document API ([`DeTable`]), so every key and value keeps
//! its byte range and every error can point at a line. Keys are named as dotted paths; arrays of
//! tables are counted from 1 in file order, so `events[3].fraction` is the `fraction` of the third
//! `[[events]]` table and `expect[1].metric` the `metric` of the first `[[expect]]`.
//!
//! Validation is strict: unknown keys (at the top level, in `[network]`, in a latency table, in
//! each `[[events]]` for its action, in `[[expect]]`) are errors, as are out-of-range values.
//! Checks run in a fixed order and the first failure is returned, so a bad file gives exactly one
//! error.
use super::{
    Action, Behaviour, ConfigValue, DEFAULT_TARGETS, Expect, FoafDistance, LatencyDist, LossMode,
    METRIC_KEYS, NetworkPatch, NetworkSpec, Scenario, ScheduledAction, Selection, SubnetChoice,
};
use hearsay_proto::TimeDelta;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

/// A scenario file that cannot be run: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key (dotted path such as `events[2].fraction`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ScenarioError {}

type Result<T> = std::result::Result<T, ScenarioError>;

/// Keys allowed at the top level of a scenario.
const TOP_KEYS: &[&str] = &[
    "name", "seed", "nodes", "duration", "network", "config", "events", "expect",
];

/// Keys allowed in `[network]` (and inline in a `set_network` event).
const NETWORK_KEYS: &[&str] = &[
    "latency",
    "loss",
    "loss_mode",
    "duplicate",
    "reorder",
    "idle_timeout",
];

/// Keys allowed in `[network]` itself: the link model's, plus `subnets` (contract v4), which
/// describes addresses and cannot change during a run (so `set_network` does not take it).
const NETWORK_TABLE_KEYS: &[&str] = &[
    "latency",
    "loss",
    "loss_mode",
    "duplicate",
    "reorder",
    "idle_timeout",
    "subnets",
];

/// Keys allowed in `[[expect]]`.
const EXPECT_KEYS: &[&str] = &["metric", "min", "max"];

/// Every action with the keys it accepts besides `at` and `action`.
const ACTIONS: &[(&str, &[&str])] = &[
    ("join", &["contacts", "spread"]),
    ("subscribe", &["topic", "fraction"]),
    ("unsubscribe", &["topic", "fraction"]),
    (
        "publish",
        &["topic", "count", "rate", "size", "measure", "senders"],
    ),
    ("crash", &["fraction", "ids", "group"]),
    ("hang", &["fraction", "ids"]),
    ("resume", &["ids"]),
    ("restart", &["ids"]),
    ("leave", &["fraction", "ids", "group"]),
    ("partition", &["groups", "oneway"]),
    ("heal", &[]),
    ("set_network", NETWORK_KEYS),
    ("byzantine", &["fraction", "behaviour", "subnet", "targets"]),
    ("presence", &["group", "fraction"]),
    ("foaf", &["count", "rate", "distance"]),
];

/// Defaults for keys left out (the contract's example values where it has one).
mod default {
    pub const SEED: u64 = 7;
    pub const NODES: usize = 100;
    pub const DURATION_SECS: u64 = 120;
    pub const TOPIC: &str = "t";
    pub const FRACTION: f64 = 1.0;
    pub const CONTACTS: usize = 1;
    pub const COUNT: u64 = 50;
    pub const RATE_PER_S: f64 = 10.0;
    pub const SIZE: usize = 1024;
    pub const FOAF_DISTANCE: u32 = 2;
}

impl Scenario {
    /// Parses scenario text; `file` names it in errors, and its stem is the default `name`.
    pub fn parse(text: &str, file: &str) -> std::result::Result<Scenario, ScenarioError> {
        let cx = Cx { file, text };
        let doc = DeTable::parse(text).map_err(|e| {
            let message = e.message().trim_end().replace('\n', "; ");
            ScenarioError {
                file: file.to_string(),
                line: e.span().map(|s| cx.line(s.start)),
                key: None,
                message: format!("invalid TOML: {message}"),
            }
        })?;
        let root = Tbl {
            cx: &cx,
            table: doc.get_ref(),
            path: String::new(),
            start: 0,
        };
        root.only(TOP_KEYS, "the top level")?;

        let name = match root.get("name") {
            Some(f) => f.str()?.to_string(),
            None => Path::new(file)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(file)
                .to_string(),
        };
        let seed = root
            .opt("seed", |f| f.count::<u64>(0))?
            .unwrap_or(default::SEED);
        let nodes = root
            .opt("nodes", |f| f.count::<usize>(1))?
            .unwrap_or(default::NODES);
        let duration = match root.get("duration") {
            Some(f) => {
                let d = f.duration()?;
                if d == TimeDelta::ZERO {
                    return Err(f.err("must be longer than zero"));
                }
                d
            }
            None => TimeDelta::from_secs(default::DURATION_SECS),
        };

        let mut network = NetworkSpec::default();
        if let Some(f) = root.get("network") {
            let t = f.table("a table ([network])")?;
            t.only(NETWORK_TABLE_KEYS, "[network]")?;
            network.apply(&network_patch(&t)?);
            network.subnets = t.opt("subnets", |f| f.count::<usize>(1))?;
        }

        let mut config = BTreeMap::new();
        if let Some(f) = root.get("config") {
            let t = f.table("a table ([config])")?;
            for (k, _) in t.entries() {
                let f = t.get(k.get_ref()).expect("key listed by entries");
                config.insert(k.get_ref().to_string(), config_value(&f)?);
            }
        }

        let mut events = Vec::new();
        if let Some(f) = root.get("events") {
            for t in f.tables("events")? {
                events.push(event(&t)?);
            }
        }

        let mut expects = Vec::new();
        if let Some(f) = root.get("expect") {
            for t in f.tables("expect")? {
                expects.push(expect(&t)?);
            }
        }

        Ok(Scenario {
            name,
            seed,
            nodes,
            duration,
            network,
            config,
            events,
            expects,
        })
    }

    /// Reads and parses a scenario file. A file that cannot be read gives an error without a
    /// line.
    pub fn load(path: &Path) -> std::result::Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            line: None,
            key: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Scenario::parse(&text, &file)
    }
}

/// The file being parsed.
struct Cx<'t> {
    file: &'t str,
    text: &'t str,
}

impl Cx<'_> {
    /// The 1-based line holding byte `offset`.
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, offset: usize, key: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            line: Some(self.line(offset)),
            key: (!key.is_empty()).then(|| key.to_string()),
            message: message.into(),
        }
    }
}

/// A table being read, with its dotted path and where it starts (its header, or the `{` of an
/// inline table).
struct Tbl<'t> {
    cx: &'t Cx<'t>,
    table: &'t DeTable<'t>,
    path: String,
    start: usize,
}

type Entry<'t> = (&'t Spanned<DeString<'t>>, &'t Spanned<DeValue<'t>>);

impl<'t> Tbl<'t> {
    /// The dotted path of key `k` of this table.
    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{k}", self.path)
        }
    }

    fn get(&self, k: &str) -> Option<Field<'t>> {
        self.table.get(k).map(|value| Field {
            cx: self.cx,
            value,
            key: self.key(k),
        })
    }

    /// The entries in file order.
    fn entries(&self) -> Vec<Entry<'t>> {
        let mut v: Vec<Entry<'t>> = self.table.iter().collect();
        v.sort_by_key(|(k, _)| k.span().start);
        v
    }

    /// Fails on the first key (in file order) not in `allowed`; `what` names the table.
    fn only(&self, allowed: &[&str], what: &str) -> Result<()> {
        for (k, _) in self.entries() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let expected = if allowed.is_empty() {
                    format!("{what} takes no keys")
                } else {
                    format!("{what} accepts: {}", allowed.join(", "))
                };
                return Err(self.cx.error(
                    k.span().start,
                    &self.key(k.get_ref()),
                    format!("unknown key; {expected}"),
                ));
            }
        }
        Ok(())
    }

    /// An error about this table as a whole (reported at its start, keyed by its path).
    fn error(&self, message: impl Into<String>) -> ScenarioError {
        self.cx.error(self.start, &self.path, message)
    }

    /// An error about a missing key (reported at the table's start).
    fn missing(&self, k: &str, what: &str) -> ScenarioError {
        self.cx.error(
            self.start,
            &self.key(k),
            format!("missing; {what} requires `{k}`"),
        )
    }

    /// Key `k` read with `read`, if present.
    fn opt<T>(&self, k: &str, read: impl FnOnce(&Field<'t>) -> Result<T>) -> Result<Option<T>> {
        self.get(k).map(|f| read(&f)).transpose()
    }

    /// Key `k` read with `read`; missing is an error naming `what` needs it.
    fn req<T>(&self, k: &str, what: &str, read: impl FnOnce(&Field<'t>) -> Result<T>) -> Result<T> {
        match self.get(k) {
            Some(f) => read(&f),
            None => Err(self.missing(k, what)),
        }
    }
}

/// One value, with its dotted key.
struct Field<'t> {
    cx: &'t Cx<'t>,
    value: &'t Spanned<DeValue<'t>>,
    key: String,
}

impl<'t> Field<'t> {
    fn v(&self) -> &'t DeValue<'t> {
        self.value.get_ref()
    }

    fn start(&self) -> usize {
        self.value.span().start
    }

    fn err(&self, message: impl Into<String>) -> ScenarioError {
        self.cx.error(self.start(), &self.key, message)
    }

    fn wrong_type(&self, expected: &str) -> ScenarioError {
        self.err(format!("expected {expected}, found {}", describe(self.v())))
    }

    fn str(&self) -> Result<&'t str> {
        self.v().as_str().ok_or_else(|| self.wrong_type("a string"))
    }

    /// A string that must not be empty (topic and group names).
    fn name(&self) -> Result<String> {
        let s = self.str()?;
        if s.is_empty() {
            return Err(self.err("must not be empty"));
        }
        Ok(s.to_string())
    }

    fn bool(&self) -> Result<bool> {
        self.v()
            .as_bool()
            .ok_or_else(|| self.wrong_type("a boolean (true or false)"))
    }

    fn int(&self) -> Result<i128> {
        match self.v() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.err("integer out of range")),
            _ => Err(self.wrong_type("an integer")),
        }
    }

    /// An integer of at least `min`, converted to `T`.
    fn count<T: TryFrom<i128>>(&self, min: i128) -> Result<T> {
        let n = self.int()?;
        if n < min {
            return Err(self.err(if min == 0 {
                format!("must not be negative, got {n}")
            } else {
                format!("must be at least {min}, got {n}")
            }));
        }
        T::try_from(n).map_err(|_| self.err(format!("{n} is too large")))
    }

    /// An integer or float, finite.
    fn number(&self) -> Result<f64> {
        let n = match self.v() {
            DeValue::Integer(_) => self.int()? as f64,
            DeValue::Float(x) => x
                .as_str()
                .parse::<f64>()
                .map_err(|_| self.err(format!("`{}` is not a number", x.as_str())))?,
            _ => return Err(self.wrong_type("a number")),
        };
        if !n.is_finite() {
            return Err(self.err(format!("must be a finite number, got {n}")));
        }
        Ok(n)
    }

    /// A number in [0, 1].
    fn probability(&self) -> Result<f64> {
        let p = self.number()?;
        if !(0.0..=1.0).contains(&p) {
            return Err(self.err(format!("must be between 0 and 1, got {p}")));
        }
        Ok(p)
    }

    fn duration(&self) -> Result<TimeDelta> {
        match self.v() {
            DeValue::String(s) => parse_duration(s).map_err(|m| self.err(m)),
            DeValue::Integer(_) | DeValue::Float(_) => Err(self
                .err("a duration needs a unit: write it as a string such as \"10s\" or \"250ms\"")),
            _ => Err(self.wrong_type("a duration string such as \"10s\"")),
        }
    }

    /// Per second: "10/s", "10/m" (per minute), "10" or a bare TOML number; must be > 0.
    fn rate(&self) -> Result<f64> {
        let r = match self.v() {
            DeValue::Integer(_) | DeValue::Float(_) => self.number()?,
            DeValue::String(s) => parse_rate(s).map_err(|m| self.err(m))?,
            _ => return Err(self.wrong_type("a rate such as \"10/s\"")),
        };
        if !(r > 0.0 && r.is_finite()) {
            return Err(self.err(format!("must be a positive rate, got {r}")));
        }
        Ok(r)
    }

    /// A table; `expected` describes it for type errors.
    fn table(&self, expected: &str) -> Result<Tbl<'t>> {
        match self.v() {
            DeValue::Table(table) => Ok(Tbl {
                cx: self.cx,
                table,
                path: self.key.clone(),
                start: self.start(),
            }),
            _ => Err(self.wrong_type(expected)),
        }
    }

    fn array(&self, expected: &str) -> Result<&'t [Spanned<DeValue<'t>>]> {
        match self.v() {
            DeValue::Array(a) => Ok(a),
            _ => Err(self.wrong_type(expected)),
        }
    }

    /// The element `i` (0-based) of an array, keyed `key[i+1]`.
    fn element(&self, i: usize, value: &'t Spanned<DeValue<'t>>) -> Field<'t> {
        Field {
            cx: self.cx,
            value,
            key: format!("{}[{}]", self.key, i + 1),
        }
    }

    /// An array of tables (`[[name]]`), each keyed `name[N]`, N from 1.
    fn tables(&self, name: &str) -> Result<Vec<Tbl<'t>>> {
        let items = self.array(&format!("an array of tables ([[{name}]])"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| self.element(i, v).table(&format!("a table ([[{name}]])")))
            .collect()
    }

    /// A non-empty list of distinct non-negative integers.
    fn ids(&self) -> Result<Vec<usize>> {
        let items = self.array("a list of node numbers such as [0, 3]")?;
        if items.is_empty() {
            return Err(self.err("must list at least one node"));
        }
        let mut ids = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            let id: usize = self.element(i, v).count(0)?;
            if ids.contains(&id) {
                return Err(self.element(i, v).err(format!("node {id} is listed twice")));
            }
            ids.push(id);
        }
        Ok(ids)
    }
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("string \"{}\"", s.escape_debug()),
        DeValue::Integer(i) => format!("integer {i}"),
        DeValue::Float(x) => format!("float {x}"),
        DeValue::Boolean(b) => format!("boolean {b}"),
        other => other.type_str().to_string(),
    }
}

/// Parses "<number><unit>" with unit us, ms, s, m or h; the number may have a decimal part but
/// the result must be a whole number of microseconds.
fn parse_duration(s: &str) -> std::result::Result<TimeDelta, String> {
    const FORM: &str =
        "a duration is a number and a unit (us, ms, s, m, h), such as \"10s\" or \"1.5s\"";
    if s.trim_start().starts_with('-') {
        return Err(format!("\"{s}\" is negative; {FORM}"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!("\"{s}\" is not a duration; {FORM}"));
    }
    if unit.is_empty() {
        return Err(format!("\"{s}\" has no unit; {FORM}"));
    }
    let per: u128 = match unit.trim_start() {
        "us" => 1,
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        other => {
            return Err(format!("\"{s}\": unknown unit \"{other}\"; {FORM}"));
        }
    };
    if unit.len() != unit.trim_start().len() {
        return Err(format!("\"{s}\": no space between number and unit; {FORM}"));
    }
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || frac.contains('.') || (num.contains('.') && frac.is_empty()) {
        return Err(format!("\"{s}\": malformed number; {FORM}"));
    }
    let too_large = || format!("\"{s}\" is too large");
    if int.len() > 30 {
        return Err(too_large());
    }
    let whole: u128 = int.parse().map_err(|_| too_large())?;
    let frac = frac.trim_end_matches('0');
    let mut micros = whole.checked_mul(per).ok_or_else(too_large)?;
    if !frac.is_empty() {
        // More than 10 significant decimals can never be a whole number of microseconds here.
        if frac.len() > 10 {
            return Err(format!("\"{s}\" is finer than a microsecond"));
        }
        let den = 10u128.pow(frac.len() as u32);
        let scaled = frac.parse::<u128>().map_err(|_| too_large())? * per;
        if !scaled.is_multiple_of(den) {
            return Err(format!("\"{s}\" is finer than a microsecond"));
        }
        micros = micros.checked_add(scaled / den).ok_or_else(too_large)?;
    }
    u64::try_from(micros)
        .map(TimeDelta::from_micros)
        .map_err(|_| too_large())
}

/// Parses "10/s", "10/m" (per minute) or "10" (per second) into events per second.
fn parse_rate(s: &str) -> std::result::Result<f64, String> {
    const FORM: &str = "a rate is \"N/s\", \"N/m\" (per minute) or a number (per second)";
    let (num, per) = match s.split_once('/') {
        Some((n, "s")) => (n, 1.0),
        Some((n, "m")) => (n, 60.0),
        Some((_, unit)) => return Err(format!("\"{s}\": unknown unit \"/{unit}\"; {FORM}")),
        None => (s, 1.0),
    };
    let ok = !num.is_empty() && num.chars().all(|c| c.is_ascii_digit() || c == '.');
    match num.parse::<f64>() {
        Ok(n) if ok => Ok(n / per),
        _ => Err(format!("\"{s}\" is not a rate; {FORM}")),
    }
}

/// The `[network]` keys present in `t` (other keys are ignored here; the caller checks them).
fn network_patch(t: &Tbl<'_>) -> Result<NetworkPatch> {
    Ok(NetworkPatch {
        latency: t.opt("latency", latency)?,
        loss: t.opt("loss", Field::probability)?,
        loss_mode: t.opt("loss_mode", |f| match f.str()? {
            "drop" => Ok(LossMode::Drop),
            "delay" => Ok(LossMode::Delay),
            other => Err(f.err(format!("unknown loss mode \"{other}\"; valid: drop, delay"))),
        })?,
        duplicate: t.opt("duplicate", Field::probability)?,
        reorder: t.opt("reorder", Field::probability)?,
        idle_timeout: t.opt("idle_timeout", Field::duration)?,
    })
}

fn latency(f: &Field<'_>) -> Result<LatencyDist> {
    let t = f.table("a latency table such as { dist = \"fixed\", value = \"50ms\" }")?;
    let dist_field = t
        .get("dist")
        .ok_or_else(|| t.missing("dist", "a latency table"))?;
    let dist = dist_field.str()?;
    let (keys, what): (&[&str], _) = match dist {
        "fixed" => (&["dist", "value"], "a fixed latency"),
        "uniform" => (&["dist", "min", "max"], "a uniform latency"),
        "lognormal" => (&["dist", "median", "p99"], "a lognormal latency"),
        other => {
            return Err(dist_field.err(format!(
                "unknown latency distribution \"{other}\"; valid: fixed, uniform, lognormal"
            )));
        }
    };
    t.only(keys, what)?;
    match dist {
        "fixed" => Ok(LatencyDist::Fixed(t.req("value", what, Field::duration)?)),
        "uniform" => {
            let min = t.req("min", what, Field::duration)?;
            let max = t.req("max", what, Field::duration)?;
            if min > max {
                let f = t.get("min").expect("read above");
                return Err(f.err(format!("min ({min:?}) exceeds max ({max:?})")));
            }
            Ok(LatencyDist::Uniform { min, max })
        }
        _ => {
            let median = t.req("median", what, Field::duration)?;
            let p99 = t.req("p99", what, Field::duration)?;
            if median == TimeDelta::ZERO {
                let f = t.get("median").expect("read above");
                return Err(f.err("must be longer than zero"));
            }
            if p99 <= median {
                let f = t.get("p99").expect("read above");
                return Err(f.err(format!("p99 ({p99:?}) must exceed the median ({median:?})")));
            }
            Ok(LatencyDist::LogNormal { median, p99 })
        }
    }
}

fn config_value(f: &Field<'_>) -> Result<ConfigValue> {
    Ok(match f.v() {
        DeValue::Integer(_) => ConfigValue::Int(
            f.int()?
                .try_into()
                .map_err(|_| f.err("integer out of range"))?,
        ),
        DeValue::Float(_) => ConfigValue::Float(f.number()?),
        DeValue::Boolean(b) => ConfigValue::Bool(*b),
        DeValue::String(s) => match parse_duration(s) {
            Ok(d) => ConfigValue::Duration(d),
            Err(_) => ConfigValue::Text(s.to_string()),
        },
        _ => return Err(f.wrong_type("an integer, float, boolean or string")),
    })
}

fn expect(t: &Tbl<'_>) -> Result<Expect> {
    t.only(EXPECT_KEYS, "[[expect]]")?;
    let metric_field = t
        .get("metric")
        .ok_or_else(|| t.missing("metric", "[[expect]]"))?;
    let metric = metric_field.str()?;
    if !METRIC_KEYS.contains(&metric) {
        let nested: Vec<&str> = METRIC_KEYS
            .iter()
            .copied()
            .filter(|k| k.strip_prefix(metric).is_some_and(|r| r.starts_with('.')))
            .collect();
        let hint = if nested.is_empty() {
            format!("known metrics: {}", METRIC_KEYS.join(", "))
        } else {
            format!("name a nested value: {}", nested.join(", "))
        };
        return Err(metric_field.err(format!("unknown metric \"{metric}\"; {hint}")));
    }
    let min = t.opt("min", Field::number)?;
    let max = t.opt("max", Field::number)?;
    match (min, max) {
        (None, None) => return Err(t.error("needs `min`, `max` or both")),
        (Some(lo), Some(hi)) if lo > hi => {
            let f = t.get("min").expect("read above");
            return Err(f.err(format!("min ({lo}) exceeds max ({hi})")));
        }
        _ => {}
    }
    Ok(Expect {
        metric: metric.to_string(),
        min,
        max,
        line: t.cx.line(t.start),
    })
}

fn event(t: &Tbl<'_>) -> Result<ScheduledAction> {
    let line = t.cx.line(t.start);
    let action_field = t
        .get("action")
        .ok_or_else(|| t.missing("action", "every event"))?;
    let name = action_field.str()?;
    let Some(&(name, keys)) = ACTIONS.iter().find(|(n, _)| *n == name) else {
        let valid: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
        return Err(action_field.err(format!(
            "unknown action \"{name}\"; valid actions: {}",
            valid.join(", ")
        )));
    };
    let mut allowed = vec!["at", "action"];
    allowed.extend_from_slice(keys);
    let what = format!("action `{name}`");
    t.only(&allowed, &what)?;
    let at = t.req("at", "every event", Field::duration)?;
    let action = match name {
        "join" => Action::Join {
            contacts: t
                .opt("contacts", |f| f.count::<usize>(1))?
                .unwrap_or(default::CONTACTS),
            spread: t.opt("spread", Field::duration)?.unwrap_or(TimeDelta::ZERO),
        },
        "subscribe" | "unsubscribe" => {
            let topic = t
                .opt("topic", Field::name)?
                .unwrap_or_else(|| default::TOPIC.to_string());
            let fraction = t
                .opt("fraction", Field::probability)?
                .unwrap_or(default::FRACTION);
            if name == "subscribe" {
                Action::Subscribe { topic, fraction }
            } else {
                Action::Unsubscribe { topic, fraction }
            }
        }
        "publish" => Action::Publish {
            topic: t
                .opt("topic", Field::name)?
                .unwrap_or_else(|| default::TOPIC.to_string()),
            count: t
                .opt("count", |f| f.count::<u64>(1))?
                .unwrap_or(default::COUNT),
            rate: t.opt("rate", Field::rate)?.unwrap_or(default::RATE_PER_S),
            size: t
                .opt("size", |f| f.count::<usize>(0))?
                .unwrap_or(default::SIZE),
            measure: t.opt("measure", Field::bool)?.unwrap_or(true),
            senders: t.opt("senders", |f| f.count::<usize>(0))?.unwrap_or(0),
        },
        "crash" | "hang" => {
            let group = t.opt("group", Field::name)?;
            let select = fraction_or_ids(t)?
                .ok_or_else(|| t.error(format!("{what} needs `fraction` or `ids`")))?;
            if group.is_some() && matches!(select, Selection::Ids(_)) {
                return Err(group_with_ids(t));
            }
            if name == "crash" {
                Action::Crash { select, group }
            } else {
                Action::Hang { select }
            }
        }
        "leave" => {
            let group = t.opt("group", Field::name)?;
            let select = match (fraction_or_ids(t)?, &group) {
                (Some(Selection::Ids(_)), Some(_)) => return Err(group_with_ids(t)),
                (Some(s), _) => s,
                // The whole group leaves.
                (None, Some(_)) => Selection::Fraction(1.0),
                (None, None) => {
                    return Err(t.error(format!("{what} needs `fraction`, `ids` or `group`")));
                }
            };
            Action::Leave { select, group }
        }
        "resume" => Action::Resume {
            select: ids_or_all(t, "hung")?,
        },
        "restart" => Action::Restart {
            select: ids_or_all(t, "crashed")?,
        },
        "partition" => Action::Partition {
            groups: t.req("groups", &what, partition_groups)?,
            oneway: t.opt("oneway", Field::bool)?.unwrap_or(false),
        },
        "heal" => Action::Heal,
        "set_network" => {
            let patch = network_patch(t)?;
            if patch == NetworkPatch::default() {
                return Err(t.error(format!(
                    "{what} needs at least one of: {}",
                    NETWORK_KEYS.join(", ")
                )));
            }
            Action::SetNetwork(patch)
        }
        "byzantine" => {
            let fraction = t.req("fraction", &what, Field::probability)?;
            let behaviour = t.req("behaviour", &what, |f| match f.str()? {
                "drop" => Ok(Behaviour::Drop),
                "forge" => Ok(Behaviour::Forge),
                "replay" => Ok(Behaviour::Replay),
                "flood" => Ok(Behaviour::Flood),
                "liar" => Ok(Behaviour::Liar),
                "eclipse" => Ok(Behaviour::Eclipse),
                "root" => Ok(Behaviour::Root),
                other => Err(f.err(format!(
                    "unknown behaviour \"{other}\"; valid: drop, forge, replay, flood, liar, eclipse, root"
                ))),
            })?;
            let subnet = t
                .opt("subnet", |f| match f.str()? {
                    "shared" => Ok(SubnetChoice::Shared),
                    "own" => Ok(SubnetChoice::Own),
                    other => Err(f.err(format!(
                        "unknown subnet choice \"{other}\"; valid: shared, own"
                    ))),
                })?
                .unwrap_or_default();
            let targets = match t.get("targets") {
                None => DEFAULT_TARGETS,
                Some(f) if behaviour != Behaviour::Eclipse => {
                    return Err(f.err("`targets` applies only to behaviour = \"eclipse\""));
                }
                Some(f) => {
                    let x = f.number()?;
                    if !(x > 0.0 && x <= 1.0) {
                        return Err(f.err(format!("must be a fraction in (0, 1], got {x}")));
                    }
                    x
                }
            };
            Action::Byzantine {
                fraction,
                behaviour,
                subnet,
                targets,
            }
        }
        "presence" => Action::Presence {
            group: t.req("group", &what, Field::name)?,
            fraction: t.req("fraction", &what, Field::probability)?,
        },
        "foaf" => Action::Foaf {
            count: t
                .opt("count", |f| f.count::<u64>(1))?
                .unwrap_or(default::COUNT),
            rate: t.opt("rate", Field::rate)?.unwrap_or(default::RATE_PER_S),
            distance: t
                .opt("distance", foaf_distance)?
                .unwrap_or(FoafDistance::Hops(default::FOAF_DISTANCE)),
        },
        _ => unreachable!("every name in ACTIONS is handled"),
    };
    Ok(ScheduledAction { at, action, line })
}

/// `fraction` or `ids` (not both); `None` when neither is given.
fn fraction_or_ids(t: &Tbl<'_>) -> Result<Option<Selection>> {
    match (t.get("fraction"), t.get("ids")) {
        (Some(f), Some(i)) => {
            let later = if f.start() > i.start() { f } else { i };
            Err(later.err("give either `fraction` or `ids`, not both"))
        }
        (Some(f), None) => Ok(Some(Selection::Fraction(f.probability()?))),
        (None, Some(i)) => Ok(Some(Selection::Ids(i.ids()?))),
        (None, None) => Ok(None),
    }
}

fn group_with_ids(t: &Tbl<'_>) -> ScenarioError {
    t.get("group")
        .expect("checked by the caller")
        .err("`group` restricts the choice of a `fraction`; it cannot be combined with `ids`")
}

/// `ids` as a list, or the word `all` ("hung" or "crashed"); left out means the word.
fn ids_or_all(t: &Tbl<'_>, all: &str) -> Result<Selection> {
    match t.get("ids") {
        None => Ok(Selection::All),
        Some(f) => match f.v() {
            DeValue::String(s) if s == all => Ok(Selection::All),
            DeValue::Array(_) => Ok(Selection::Ids(f.ids()?)),
            _ => Err(f.wrong_type(&format!(
                "a list of node numbers such as [0, 3] or \"{all}\""
            ))),
        },
    }
}

fn partition_groups(f: &Field<'_>) -> Result<Vec<f64>> {
    let items = f.array("a list of fractions such as [0.5, 0.5]")?;
    if items.is_empty() {
        return Err(f.err("must list at least one group"));
    }
    let mut groups = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        let e = f.element(i, v);
        let g = e.number()?;
        if !(g > 0.0 && g <= 1.0) {
            return Err(e.err(format!("a group must be a fraction in (0, 1], got {g}")));
        }
        groups.push(g);
    }
    let sum: f64 = groups.iter().sum();
    if sum > 1.0 + 1e-9 {
        return Err(f.err(format!("the groups add up to {sum}, more than 1")));
    }
    Ok(groups)
}

fn foaf_distance(f: &Field<'_>) -> Result<FoafDistance> {
    match f.v() {
        DeValue::String(s) if s == "any" => Ok(FoafDistance::Any),
        DeValue::Integer(_) => {
            let d = f.int()?;
            if !(1..=8).contains(&d) {
                return Err(f.err(format!("must be between 1 and 8 hops, got {d}")));
            }
            Ok(FoafDistance::Hops(d as u32))
        }
        _ => Err(f.wrong_type("a hop count from 1 to 8 or \"any\"")),
    }
}
