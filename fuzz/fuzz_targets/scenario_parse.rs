//! The simulator's scenario parser (`Scenario::parse`, sim/src/scenario/parse.rs) on arbitrary
//! text (the input as lossy UTF-8).
//!
//! Checked: nothing panics; a refusal is a `ScenarioError` naming the file, with a non-empty
//! message and, when it has a line, one within the text; an accepted scenario keeps the
//! contract's ranges (at least one node, a positive duration, probabilities in [0, 1], positive
//! finite rates, latency bounds in order, distinct node ids, partition groups adding up to at
//! most 1, known metrics with `min <= max`, event lines within the text), and parsing is
//! deterministic.
#![no_main]

use hearsay_proto::TimeDelta;
use hearsay_sim::scenario::{
    Action, Expect, LatencyDist, METRIC_KEYS, NetworkPatch, NetworkSpec, Scenario, Selection,
};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz/scenario.toml";

fn probability(p: f64, what: &str) {
    assert!(
        (0.0..=1.0).contains(&p),
        "{what} = {p} is not a probability"
    );
}

fn rate(r: f64, what: &str) {
    assert!(
        r > 0.0 && r.is_finite(),
        "{what} = {r} is not a positive rate"
    );
}

fn latency(l: &LatencyDist) {
    match l {
        LatencyDist::Fixed(_) => {}
        LatencyDist::Uniform { min, max } => {
            assert!(min <= max, "uniform latency {min:?} > {max:?}")
        }
        LatencyDist::LogNormal { median, p99 } => {
            assert!(*median > TimeDelta::ZERO, "a zero median latency");
            assert!(p99 > median, "p99 {p99:?} <= median {median:?}");
        }
    }
}

fn network(n: &NetworkSpec) {
    latency(&n.latency);
    probability(n.loss, "loss");
    probability(n.duplicate, "duplicate");
    probability(n.reorder, "reorder");
}

fn patch(p: &NetworkPatch) {
    assert!(*p != NetworkPatch::default(), "an empty set_network");
    if let Some(l) = &p.latency {
        latency(l);
    }
    for (v, what) in [
        (p.loss, "loss"),
        (p.duplicate, "duplicate"),
        (p.reorder, "reorder"),
    ] {
        if let Some(v) = v {
            probability(v, what);
        }
    }
}

fn selection(s: &Selection) {
    match s {
        Selection::Fraction(f) => probability(*f, "fraction"),
        Selection::Ids(ids) => {
            assert!(!ids.is_empty(), "an empty id list");
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), ids.len(), "repeated node ids {ids:?}");
        }
        Selection::All => {}
    }
}

fn action(a: &Action) {
    match a {
        Action::Join { contacts, .. } => assert!(*contacts >= 1, "join with no contact"),
        Action::Subscribe { topic, fraction } | Action::Unsubscribe { topic, fraction } => {
            assert!(!topic.is_empty(), "an empty topic");
            probability(*fraction, "fraction");
        }
        Action::Publish {
            topic,
            count,
            rate: r,
            ..
        } => {
            assert!(!topic.is_empty(), "an empty topic");
            assert!(*count >= 1, "publish of no message");
            rate(*r, "publish rate");
        }
        Action::Crash { select, group } | Action::Leave { select, group } => {
            selection(select);
            if let Some(g) = group {
                assert!(!g.is_empty(), "an empty group");
                assert!(!matches!(select, Selection::Ids(_)), "group with ids");
            }
            assert!(!matches!(select, Selection::All), "crash or leave of `all`");
        }
        Action::Hang { select } => {
            selection(select);
            assert!(!matches!(select, Selection::All), "hang of `all`");
        }
        Action::Resume { select } | Action::Restart { select } => {
            selection(select);
            assert!(
                !matches!(select, Selection::Fraction(_)),
                "resume by fraction"
            );
        }
        Action::Partition { groups, .. } => {
            assert!(!groups.is_empty(), "a partition without groups");
            for g in groups {
                assert!(*g > 0.0 && *g <= 1.0, "partition group {g}");
            }
            let sum: f64 = groups.iter().sum();
            assert!(sum <= 1.0 + 1e-9, "partition groups add up to {sum}");
        }
        Action::Heal => {}
        Action::SetNetwork(p) => patch(p),
        Action::Byzantine { fraction, .. } => probability(*fraction, "byzantine fraction"),
        Action::Presence { group, fraction } => {
            assert!(!group.is_empty(), "an empty presence group");
            probability(*fraction, "presence fraction");
        }
        Action::Foaf { count, rate: r, .. } => {
            assert!(*count >= 1, "foaf of no query");
            rate(*r, "foaf rate");
        }
    }
}

fn expect(e: &Expect, lines: usize) {
    assert!(
        METRIC_KEYS.contains(&e.metric.as_str()),
        "unknown metric {}",
        e.metric
    );
    assert!(
        e.min.is_some() || e.max.is_some(),
        "an expect without bounds"
    );
    for v in [e.min, e.max].into_iter().flatten() {
        assert!(v.is_finite(), "a bound of {v}");
    }
    if let (Some(lo), Some(hi)) = (e.min, e.max) {
        assert!(lo <= hi, "min {lo} > max {hi}");
    }
    assert!(
        (1..=lines).contains(&e.line),
        "expect line {} of {lines}",
        e.line
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Lines as the parser counts them: one more than the newlines.
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let parsed = Scenario::parse(&text, FILE);
    assert_eq!(
        parsed,
        Scenario::parse(&text, FILE),
        "parsing is not deterministic"
    );
    match parsed {
        Err(e) => {
            assert_eq!(e.file, FILE);
            assert!(!e.message.is_empty(), "an error without a message");
            if let Some(line) = e.line {
                assert!((1..=lines).contains(&line), "error line {line} of {lines}");
            }
            assert!(e.to_string().starts_with(FILE));
        }
        Ok(s) => {
            assert!(s.nodes >= 1, "no nodes");
            assert!(s.duration > TimeDelta::ZERO, "a zero duration");
            network(&s.network);
            for ev in &s.events {
                assert!(
                    (1..=lines).contains(&ev.line),
                    "event line {} of {lines}",
                    ev.line
                );
                action(&ev.action);
            }
            for e in &s.expects {
                expect(e, lines);
            }
        }
    }
});
