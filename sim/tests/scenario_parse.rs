//! Scenario files: the shipped examples parse, defaults apply, and bad files give one error
//! naming the file, line and key.

use hearsay_proto::TimeDelta;
use hearsay_sim::scenario::{
    Action, Behaviour, ConfigValue, DEFAULT_TARGETS, FoafDistance, LatencyDist, LossMode,
    NetworkPatch, NetworkSpec, Scenario, Selection, SubnetChoice,
};
use std::path::{Path, PathBuf};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn load(name: &str) -> Scenario {
    let path = scenarios_dir().join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(text: &str) -> Scenario {
    Scenario::parse(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn ms(n: u64) -> TimeDelta {
    TimeDelta::from_millis(n)
}

fn secs(n: u64) -> TimeDelta {
    TimeDelta::from_secs(n)
}

#[test]
fn every_shipped_scenario_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(scenarios_dir()).expect("sim/scenarios exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.name.is_empty(), "{}", path.display());
            assert!(!s.events.is_empty(), "{}", path.display());
            assert!(!s.expects.is_empty(), "{}", path.display());
            count += 1;
        }
    }
    assert!(
        count >= 8,
        "expected the 8 contract examples, found {count}"
    );
}

/// `sim/scenarios-big` holds runs too large for CI (100,000 nodes): they are not run there,
/// but they must parse, and the 100k broadcast must stay the 10k one with ten times the nodes.
#[test]
fn big_scenarios_parse() {
    let big = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios-big");
    let s =
        Scenario::load(&big.join("scale-100k-broadcast.toml")).unwrap_or_else(|e| panic!("{e}"));
    let small = load("scale-10k-broadcast.toml");
    assert_eq!(s.nodes, 100_000);
    // The same run but for the node count (line numbers aside).
    let events = |s: &Scenario| -> Vec<String> {
        s.events
            .iter()
            .map(|e| format!("{:?} {:?}", e.at, e.action))
            .collect()
    };
    let expects = |s: &Scenario| -> Vec<String> {
        s.expects
            .iter()
            .map(|e| format!("{} {:?} {:?}", e.metric, e.min, e.max))
            .collect()
    };
    assert_eq!((s.seed, s.duration), (small.seed, small.duration));
    assert_eq!(events(&s), events(&small));
    assert_eq!(expects(&s), expects(&small));
}

#[test]
fn membership_crash_values() {
    let s = load("membership-crash.toml");
    assert!(s.name.starts_with("membership-crash:"));
    assert_eq!(s.seed, 5);
    assert_eq!(s.nodes, 200);
    assert_eq!(s.duration, secs(120));
    assert_eq!(s.network.idle_timeout, secs(30));
    assert_eq!(s.network.loss, 0.01);
    assert_eq!(s.network.loss_mode, LossMode::Drop);
    assert_eq!(
        s.network.latency,
        LatencyDist::Uniform {
            min: ms(10),
            max: ms(100)
        }
    );
    assert_eq!(s.events.len(), 3);
    assert_eq!(s.events[0].line, 11);
    assert_eq!(
        s.events[0].action,
        Action::Join {
            contacts: 1,
            spread: TimeDelta::ZERO
        }
    );
    assert_eq!(s.events[1].at, secs(40));
    assert_eq!(
        s.events[1].action,
        Action::Crash {
            select: Selection::Fraction(0.2),
            group: None
        }
    );
    assert_eq!(
        s.events[2].action,
        Action::Hang {
            select: Selection::Fraction(0.1)
        }
    );
    assert_eq!(s.expects.len(), 4);
    assert_eq!(s.expects[3].metric, "detection_ms.p99");
    assert_eq!(s.expects[3].min, None);
    assert_eq!(s.expects[3].max, Some(6000.0));
}

#[test]
fn broadcast_100_values() {
    let s = load("broadcast-100.toml");
    assert_eq!(s.seed, 1);
    assert_eq!(s.duration, secs(90));
    assert_eq!(s.network, NetworkSpec::default());
    let publishes: Vec<_> = s
        .events
        .iter()
        .filter_map(|e| match &e.action {
            Action::Publish {
                topic,
                count,
                rate,
                size,
                measure,
                senders,
            } => Some((
                e.at,
                topic.as_str(),
                *count,
                *rate,
                *size,
                *measure,
                *senders,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        publishes,
        vec![
            (secs(20), "t", 10, 2.0, 1024, false, 0),
            (secs(30), "t", 100, 10.0, 1024, true, 0),
        ]
    );
    assert_eq!(
        s.events[1].action,
        Action::Subscribe {
            topic: "t".into(),
            fraction: 1.0
        }
    );
    assert_eq!(s.expects[0].metric, "delivery_ratio");
    assert_eq!(s.expects[0].min, Some(1.0));
    assert_eq!(s.expects[0].line, 37);
}

#[test]
fn presence_and_partition_examples() {
    let s = load("presence-foaf-200.toml");
    assert_eq!(
        s.events[1].action,
        Action::Presence {
            group: "g".into(),
            fraction: 0.25
        }
    );
    assert_eq!(
        s.events[2].action,
        Action::Foaf {
            count: 200,
            rate: 10.0,
            distance: FoafDistance::Hops(2)
        }
    );
    assert_eq!(
        s.events[3].action,
        Action::Crash {
            select: Selection::Fraction(0.1),
            group: Some("g".into())
        }
    );
    assert_eq!(
        s.events[4].action,
        Action::Leave {
            select: Selection::Fraction(0.05),
            group: Some("g".into())
        }
    );
    let s = load("partition-heal.toml");
    assert_eq!(
        s.events[2].action,
        Action::Partition {
            groups: vec![0.5, 0.5],
            oneway: false
        }
    );
    assert_eq!(s.events[4].action, Action::Heal);
}

#[test]
fn defaults_apply() {
    let s = Scenario::parse("", "dir/my-scenario.toml").unwrap();
    assert_eq!(s.name, "my-scenario");
    assert_eq!(s.seed, 7);
    assert_eq!(s.nodes, 100);
    assert_eq!(s.duration, secs(120));
    assert_eq!(s.network, NetworkSpec::default());
    assert_eq!(
        s.network.latency,
        LatencyDist::Uniform {
            min: ms(10),
            max: ms(100)
        }
    );
    assert_eq!(s.network.idle_timeout, secs(10));
    assert!(s.config.is_empty() && s.events.is_empty() && s.expects.is_empty());

    let s = parse(
        r#"
[network]
loss = 0.2

[[events]]
at = "0s"
action = "join"

[[events]]
at = "1s"
action = "publish"

[[events]]
at = "2s"
action = "subscribe"

[[events]]
at = "3s"
action = "resume"

[[events]]
at = "4s"
action = "restart"

[[events]]
at = "5s"
action = "foaf"

[[events]]
at = "6s"
action = "partition"
groups = [0.3]

[[events]]
at = "7s"
action = "leave"
group = "g"
"#,
    );
    assert_eq!(s.network.loss, 0.2);
    assert_eq!(s.network.latency, NetworkSpec::default().latency);
    assert_eq!(s.network.loss_mode, LossMode::Drop);
    assert_eq!(s.network.duplicate, 0.0);
    assert_eq!(s.network.reorder, 0.0);
    assert_eq!(s.network.idle_timeout, secs(10));
    let actions: Vec<Action> = s.events.iter().map(|e| e.action.clone()).collect();
    assert_eq!(
        actions,
        vec![
            Action::Join {
                contacts: 1,
                spread: TimeDelta::ZERO
            },
            Action::Publish {
                topic: "t".into(),
                count: 50,
                rate: 10.0,
                size: 1024,
                measure: true,
                senders: 0
            },
            Action::Subscribe {
                topic: "t".into(),
                fraction: 1.0
            },
            Action::Resume {
                select: Selection::All
            },
            Action::Restart {
                select: Selection::All
            },
            Action::Foaf {
                count: 50,
                rate: 10.0,
                distance: FoafDistance::Hops(2)
            },
            Action::Partition {
                groups: vec![0.3],
                oneway: false
            },
            Action::Leave {
                select: Selection::Fraction(1.0),
                group: Some("g".into())
            },
        ]
    );
    let lines: Vec<usize> = s.events.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![5, 9, 13, 17, 21, 25, 29, 34]);
}

#[test]
fn all_actions_and_forms() {
    let s = parse(
        r#"
name = "everything"
seed = 18446744073709551615
nodes = 1
duration = "1.5s"

[network]
latency = { dist = "lognormal", median = "40ms", p99 = "250ms" }
loss = 1
loss_mode = "delay"
duplicate = 0.5
reorder = 0.25
idle_timeout = "2m"

[config]
active_view = 5
ratio = 0.5
eager = true
interval = "500ms"
label = "hello"

[[events]]
at = "250us"
action = "join"
contacts = 3
spread = "1h"

[[events]]
at = "1m"
action = "publish"
topic = "x"
count = 1
rate = "30/m"
size = 0
measure = false
senders = 4

[[events]]
at = "2s"
action = "crash"
ids = [3, 0, 7]

[[events]]
at = "2s"
action = "hang"
fraction = 0

[[events]]
at = "3s"
action = "resume"
ids = "hung"

[[events]]
at = "3s"
action = "restart"
ids = [3]

[[events]]
at = "3s"
action = "restart"
ids = "crashed"

[[events]]
at = "4s"
action = "leave"
ids = [1]

[[events]]
at = "5s"
action = "partition"
groups = [0.25, 0.25, 0.5]
oneway = true

[[events]]
at = "6s"
action = "set_network"
loss = 0.3
latency = { dist = "fixed", value = "50ms" }

[[events]]
at = "7s"
action = "byzantine"
fraction = 0.1
behaviour = "flood"

[[events]]
at = "8s"
action = "foaf"
count = 7
rate = 2.5
distance = "any"

[[events]]
at = "9s"
action = "unsubscribe"
topic = "x"
fraction = 0.5

[[events]]
at = "10s"
action = "publish"
rate = "4"

[[expect]]
metric = "latency_ms.p95"
min = 0
max = 250.5

[[expect]]
metric = "events_per_s"
min = 1
"#,
    );
    assert_eq!(s.name, "everything");
    assert_eq!(s.seed, u64::MAX);
    assert_eq!(s.nodes, 1);
    assert_eq!(s.duration, ms(1500));
    assert_eq!(
        s.network,
        NetworkSpec {
            latency: LatencyDist::LogNormal {
                median: ms(40),
                p99: ms(250)
            },
            loss: 1.0,
            loss_mode: LossMode::Delay,
            duplicate: 0.5,
            reorder: 0.25,
            idle_timeout: secs(120),
            subnets: None,
        }
    );
    assert_eq!(s.config["active_view"], ConfigValue::Int(5));
    assert_eq!(s.config["ratio"], ConfigValue::Float(0.5));
    assert_eq!(s.config["eager"], ConfigValue::Bool(true));
    assert_eq!(s.config["interval"], ConfigValue::Duration(ms(500)));
    assert_eq!(s.config["label"], ConfigValue::Text("hello".into()));

    assert_eq!(s.events[0].at, TimeDelta::from_micros(250));
    assert_eq!(
        s.events[0].action,
        Action::Join {
            contacts: 3,
            spread: secs(3600)
        }
    );
    assert_eq!(s.events[1].at, secs(60));
    assert_eq!(
        s.events[1].action,
        Action::Publish {
            topic: "x".into(),
            count: 1,
            rate: 0.5,
            size: 0,
            measure: false,
            senders: 4
        }
    );
    assert_eq!(
        s.events[2].action,
        Action::Crash {
            select: Selection::Ids(vec![3, 0, 7]),
            group: None
        }
    );
    assert_eq!(
        s.events[3].action,
        Action::Hang {
            select: Selection::Fraction(0.0)
        }
    );
    assert_eq!(
        s.events[4].action,
        Action::Resume {
            select: Selection::All
        }
    );
    assert_eq!(
        s.events[5].action,
        Action::Restart {
            select: Selection::Ids(vec![3])
        }
    );
    assert_eq!(
        s.events[6].action,
        Action::Restart {
            select: Selection::All
        }
    );
    assert_eq!(
        s.events[7].action,
        Action::Leave {
            select: Selection::Ids(vec![1]),
            group: None
        }
    );
    assert_eq!(
        s.events[8].action,
        Action::Partition {
            groups: vec![0.25, 0.25, 0.5],
            oneway: true
        }
    );
    assert_eq!(
        s.events[9].action,
        Action::SetNetwork(NetworkPatch {
            latency: Some(LatencyDist::Fixed(ms(50))),
            loss: Some(0.3),
            ..NetworkPatch::default()
        })
    );
    assert_eq!(
        s.events[10].action,
        Action::Byzantine {
            fraction: 0.1,
            behaviour: Behaviour::Flood,
            subnet: SubnetChoice::Shared,
            targets: DEFAULT_TARGETS
        }
    );
    assert_eq!(
        s.events[11].action,
        Action::Foaf {
            count: 7,
            rate: 2.5,
            distance: FoafDistance::Any
        }
    );
    assert_eq!(
        s.events[12].action,
        Action::Unsubscribe {
            topic: "x".into(),
            fraction: 0.5
        }
    );
    assert!(matches!(s.events[13].action, Action::Publish { rate, .. } if rate == 4.0));
    assert_eq!(s.expects[0].min, Some(0.0));
    assert_eq!(s.expects[0].max, Some(250.5));
    assert_eq!(s.expects[1].metric, "events_per_s");
    assert_eq!(s.expects[1].max, None);
}

#[test]
fn inline_events_and_nested_latency_table() {
    let s = parse(
        r#"events = [
  { at = "0s", action = "join" },
  { at = "1s", action = "heal" },
]

[network.latency]
dist = "uniform"
min = "1ms"
max = "1ms"
"#,
    );
    assert_eq!(s.events[0].line, 2);
    assert_eq!(s.events[1].line, 3);
    assert_eq!(
        s.network.latency,
        LatencyDist::Uniform {
            min: ms(1),
            max: ms(1)
        }
    );
}

/// Bad inputs: (what, text, line, key, words the message must contain).
const BAD: &[(&str, &str, usize, Option<&str>, &str)] = &[
    (
        "unknown key in an event",
        "[[events]]\nat = \"0s\"\naction = \"crash\"\nfraction = 0.1\nfractoin = 0.2\n",
        5,
        Some("events[1].fractoin"),
        "unknown key",
    ),
    (
        "key of another action",
        "[[events]]\nat = \"0s\"\naction = \"join\"\n\n[[events]]\nat = \"1s\"\naction = \"hang\"\nids = [1]\ngroup = \"g\"\n",
        9,
        Some("events[2].group"),
        "action `hang` accepts: at, action, fraction, ids",
    ),
    (
        "unknown action",
        "[[events]]\nat = \"0s\"\naction = \"explode\"\n",
        3,
        Some("events[1].action"),
        "valid actions: join, subscribe",
    ),
    (
        "missing action",
        "[[events]]\nat = \"0s\"\n",
        1,
        Some("events[1].action"),
        "missing",
    ),
    (
        "missing at",
        "\n[[events]]\naction = \"heal\"\n",
        2,
        Some("events[1].at"),
        "missing",
    ),
    (
        "unknown metric",
        "[[expect]]\nmetric = \"delivery_ratio\"\nmin = 1\n\n[[expect]]\nmetric = \"happiness\"\nmin = 1\n",
        6,
        Some("expect[2].metric"),
        "unknown metric \"happiness\"",
    ),
    (
        "nested metric without its part",
        "[[expect]]\nmetric = \"latency_ms\"\nmax = 1\n",
        2,
        Some("expect[1].metric"),
        "latency_ms.p95",
    ),
    (
        "bad duration",
        "[[events]]\nat = \"10 parsecs\"\naction = \"heal\"\n",
        2,
        Some("events[1].at"),
        "unknown unit",
    ),
    (
        "duration without unit",
        "duration = \"10\"\n",
        1,
        Some("duration"),
        "no unit",
    ),
    (
        "duration as a bare number",
        "duration = 10\n",
        1,
        Some("duration"),
        "needs a unit",
    ),
    (
        "negative duration",
        "seed = 1\n[network]\nidle_timeout = \"-5s\"\n",
        3,
        Some("network.idle_timeout"),
        "negative",
    ),
    (
        "zero duration",
        "duration = \"0s\"\n",
        1,
        Some("duration"),
        "longer than zero",
    ),
    (
        "fraction above 1",
        "[[events]]\nat = \"0s\"\naction = \"crash\"\nfraction = 1.5\n",
        4,
        Some("events[1].fraction"),
        "between 0 and 1",
    ),
    (
        "ids and fraction both",
        "[[events]]\nat = \"0s\"\naction = \"crash\"\nfraction = 0.5\nids = [1, 2]\n",
        5,
        Some("events[1].ids"),
        "not both",
    ),
    (
        "neither ids nor fraction",
        "[[events]]\nat = \"0s\"\naction = \"hang\"\n",
        1,
        Some("events[1]"),
        "`fraction` or `ids`",
    ),
    (
        "negative id",
        "[[events]]\nat = \"0s\"\naction = \"crash\"\nids = [1,\n -2]\n",
        5,
        Some("events[1].ids[2]"),
        "negative",
    ),
    (
        "expect without bounds",
        "[[expect]]\nmetric = \"components\"\n",
        1,
        Some("expect[1]"),
        "`min`, `max`",
    ),
    (
        "latency min above max",
        "[network]\nlatency = { dist = \"uniform\", min = \"100ms\", max = \"10ms\" }\n",
        2,
        Some("network.latency.min"),
        "exceeds max",
    ),
    (
        "lognormal p99 not above median",
        "[network]\nlatency = { dist = \"lognormal\", median = \"40ms\", p99 = \"40ms\" }\n",
        2,
        Some("network.latency.p99"),
        "must exceed the median",
    ),
    (
        "unknown latency dist",
        "[network]\nlatency = { dist = \"pareto\", value = \"1ms\" }\n",
        2,
        Some("network.latency.dist"),
        "fixed, uniform, lognormal",
    ),
    (
        "key of another latency dist",
        "[network]\nlatency = { dist = \"fixed\", min = \"1ms\" }\n",
        2,
        Some("network.latency.min"),
        "unknown key",
    ),
    (
        "unknown network key",
        "[network]\nloss = 0.1\njitter = \"5ms\"\n",
        3,
        Some("network.jitter"),
        "unknown key",
    ),
    (
        "unknown top-level key",
        "nodes = 5\n\n[[event]]\nat = \"0s\"\n",
        3,
        Some("event"),
        "unknown key",
    ),
    (
        "unknown expect key",
        "[[expect]]\nmetric = \"rmr\"\nmax = 1\nmean = 2\n",
        4,
        Some("expect[1].mean"),
        "unknown key",
    ),
    ("nodes zero", "nodes = 0\n", 1, Some("nodes"), "at least 1"),
    ("negative seed", "seed = -1\n", 1, Some("seed"), "negative"),
    (
        "wrong type",
        "name = 5\n",
        1,
        Some("name"),
        "expected a string, found integer 5",
    ),
    (
        "bad rate",
        "[[events]]\nat = \"0s\"\naction = \"publish\"\nrate = \"10/fortnight\"\n",
        4,
        Some("events[1].rate"),
        "unknown unit",
    ),
    (
        "zero rate",
        "[[events]]\nat = \"0s\"\naction = \"publish\"\nrate = \"0/s\"\n",
        4,
        Some("events[1].rate"),
        "positive",
    ),
    (
        "partition groups above 1",
        "[[events]]\nat = \"0s\"\naction = \"partition\"\ngroups = [0.6, 0.6]\n",
        4,
        Some("events[1].groups"),
        "more than 1",
    ),
    (
        "partition group of zero",
        "[[events]]\nat = \"0s\"\naction = \"partition\"\ngroups = [0.5, 0]\n",
        4,
        Some("events[1].groups[2]"),
        "(0, 1]",
    ),
    (
        "byzantine without behaviour",
        "[[events]]\nat = \"0s\"\naction = \"byzantine\"\nfraction = 0.1\n",
        1,
        Some("events[1].behaviour"),
        "missing",
    ),
    (
        "unknown behaviour",
        "[[events]]\nat = \"0s\"\naction = \"byzantine\"\nfraction = 0.1\nbehaviour = \"sulk\"\n",
        5,
        Some("events[1].behaviour"),
        "drop, forge, replay, flood",
    ),
    (
        "foaf distance out of range",
        "[[events]]\nat = \"0s\"\naction = \"foaf\"\ndistance = 9\n",
        4,
        Some("events[1].distance"),
        "between 1 and 8",
    ),
    (
        "resume with a wrong word",
        "[[events]]\nat = \"0s\"\naction = \"resume\"\nids = \"crashed\"\n",
        4,
        Some("events[1].ids"),
        "\"hung\"",
    ),
    (
        "set_network with nothing",
        "[[events]]\nat = \"0s\"\naction = \"set_network\"\n",
        1,
        Some("events[1]"),
        "at least one of",
    ),
    (
        "crash with group and ids",
        "[[events]]\nat = \"0s\"\naction = \"crash\"\nids = [1]\ngroup = \"g\"\n",
        5,
        Some("events[1].group"),
        "cannot be combined",
    ),
    (
        "config array",
        "[config]\nviews = [1, 2]\n",
        2,
        Some("config.views"),
        "expected an integer, float, boolean or string",
    ),
    (
        "events as a plain table",
        "[events]\nat = \"0s\"\n",
        1,
        Some("events"),
        "array of tables",
    ),
    (
        "loss mode",
        "[network]\nloss_mode = \"lose\"\n",
        2,
        Some("network.loss_mode"),
        "drop, delay",
    ),
    (
        "TOML syntax error",
        "name = \"x\"\nseed = 1\nnodes = = 3\n",
        3,
        None,
        "invalid TOML",
    ),
    (
        "TOML duplicate key",
        "seed = 1\nseed = 2\n",
        2,
        None,
        "duplicate key",
    ),
];

#[test]
fn bad_inputs_name_line_and_key() {
    let mut failures = Vec::new();
    for &(what, text, line, key, words) in BAD {
        match Scenario::parse(text, "bad.toml") {
            Ok(s) => failures.push(format!("{what}: parsed as {s:?}")),
            Err(e) => {
                if e.file != "bad.toml"
                    || e.line != Some(line)
                    || e.key.as_deref() != key
                    || !e.message.contains(words)
                {
                    failures.push(format!(
                        "{what}: got {e}\n    want line {line}, key {key:?}, message with {words:?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn valid_duration_forms() {
    for (text, micros) in [
        ("0s", 0),
        ("250us", 250),
        ("1.5s", 1_500_000),
        ("0.5ms", 500),
        ("2m", 120_000_000),
        ("1h", 3_600_000_000),
        ("10.000s", 10_000_000),
    ] {
        let s = parse(&format!("[[events]]\nat = \"{text}\"\naction = \"heal\"\n"));
        assert_eq!(s.events[0].at, TimeDelta::from_micros(micros), "{text}");
    }
    for bad in [
        "", "s", "1.s", ".5s", "1..5s", "1.2.3s", "0.0001us", "1S", "5 s", "+5s",
    ] {
        let text = format!("[[events]]\nat = \"{bad}\"\naction = \"heal\"\n");
        assert!(
            Scenario::parse(&text, "d.toml").is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn display_names_file_line_and_key() {
    let text = "nodes = 10\n\n[[events]]\nat = \"0s\"\naction = \"crash\"\nfraction = 1.5\n";
    let e = Scenario::parse(text, "scenarios/oops.toml").unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with("scenarios/oops.toml:6: key `events[1].fraction`: "),
        "{shown}"
    );
    assert!(shown.contains("1.5"), "{shown}");
}

#[test]
fn load_reports_unreadable_file_without_line() {
    let path = scenarios_dir().join("no-such-scenario.toml");
    let e = Scenario::load(&path).unwrap_err();
    assert_eq!(e.line, None);
    assert_eq!(e.key, None);
    assert!(e.file.ends_with("no-such-scenario.toml"));
    assert!(e.to_string().contains("no-such-scenario.toml: cannot read"));
}

/// Found by the `scenario_parse` fuzz target: a duration whose parts sum past `u64` µs
/// overflowed (a panic with overflow checks, a silently wrapped ~1,031 s without).
#[test]
fn a_duration_too_large_to_add_up_is_an_error() {
    let text = "duration = \"94522879700260684295381835397.9999h\"\n";
    let err = Scenario::parse(text, "big.toml").expect_err("must not parse");
    assert!(err.to_string().contains("big.toml"), "{err}");
}
