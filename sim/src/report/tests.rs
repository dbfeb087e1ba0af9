use super::html::esc;
use super::plots::axis_label;
use super::terminal::{MAX_COLS, clean};
use super::*;
use crate::metrics::{MeanMax, Metrics, Percentiles, Series};

fn sample() -> RunResult {
    let metrics = Metrics {
        delivery_ratio: Some(0.987_654_321),
        latency_ms: Percentiles::of(&[12.0, 40.5, 80.25, 300.0]),
        rmr: Some(2.5),
        ldh_max: Some(6),
        components: Some(1),
        frames_sent: Some(1_234_567),
        bytes_sent: Some(9_876_543_210),
        bytes_per_node_per_s: Some(1234.56),
        events: Some(42_000),
        wall_s: Some(1.234_567),
        foaf_forwards_per_query: Some(MeanMax {
            mean: 3.333,
            max: 9.0,
        }),
        ..Metrics::default()
    };
    let expectations = vec![
        ExpectOutcome {
            metric: "delivery_ratio".into(),
            min: Some(0.99),
            max: None,
            value: Some(0.987_654_321),
            passed: false,
        },
        ExpectOutcome {
            metric: "latency_ms.p95".into(),
            min: None,
            max: Some(500.0),
            value: Some(300.0),
            passed: true,
        },
        ExpectOutcome {
            metric: "components".into(),
            min: Some(1.0),
            max: Some(1.0),
            value: Some(1.0),
            passed: true,
        },
        ExpectOutcome {
            metric: "detection_ms.p99".into(),
            min: None,
            max: Some(3000.0),
            value: None,
            passed: false,
        },
    ];
    let series = Series {
        latency_ms: (0..5000).map(|i| f64::from(i % 300) + 0.5).collect(),
        deliveries_over_time: (0..100)
            .map(|i| (f64::from(i) * 0.6, (i * i) as u64))
            .collect(),
        active_view_degree: vec![3, 4, 4, 5, 5, 5, 5, 6, 6, 7],
        frames_per_node: (0..50).map(|i| 100 + (i * 37) % 90).collect(),
        components_over_time: Vec::new(),
    };
    RunResult {
        name: "churn <b>&\"".into(),
        file: Some("scenarios/churn.toml".into()),
        seed: 42,
        nodes: 50,
        duration_s: 60.0,
        crypto: "sim-fast".into(),
        metrics,
        expectations,
        warnings: vec!["action `hang` is not supported by this build; it was skipped".into()],
        trace_hash: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
        replay_command: "hearsay-sim run scenarios/churn.toml --seed 42 --crypto sim-fast".into(),
        series,
        traffic: Vec::new(),
    }
}

fn empty() -> RunResult {
    RunResult {
        name: String::new(),
        file: None,
        seed: 0,
        nodes: 0,
        duration_s: 0.0,
        crypto: String::new(),
        metrics: Metrics::default(),
        expectations: Vec::new(),
        warnings: Vec::new(),
        trace_hash: String::new(),
        replay_command: String::new(),
        series: Series::default(),
        traffic: Vec::new(),
    }
}

#[test]
fn terminal_lists_every_metric_with_nulls_and_failure() {
    let r = sample();
    let t = terminal_summary(&r);
    for key in METRIC_KEYS {
        assert!(
            t.lines()
                .any(|l| l.trim_start().starts_with(&format!("{key} "))),
            "metric {key} missing:\n{t}"
        );
    }
    let line = |key: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .unwrap()
            .to_owned()
    };
    assert!(line("detection_ms.p50").ends_with("null"));
    assert!(line("presence_gone_ms.max").ends_with("null"));
    assert!(line("delivery_ratio").ends_with("0.9877"));
    assert!(line("latency_ms.p95").ends_with("300.0"));
    assert!(line("ldh_max").ends_with(" 6"));
    assert!(line("bytes_sent").ends_with("9,876,543,210"));
    assert!(line("bytes_per_node_per_s").ends_with("1,235"));
    assert!(line("wall_s").ends_with("1.235"));
    assert!(t.contains("FAIL"));
    assert!(t.contains("≥ 0.99") && t.contains("≤ 500") && t.contains("1..1"));
    assert!(t.contains("churn <b>&\"") && t.contains(&r.trace_hash) && t.contains("sim-fast"));
    assert!(t.contains("not supported by this build"));
    let last = t.lines().last().unwrap();
    assert_eq!(last, format!("FAILED: replay with: {}", r.replay_command));
    for l in t.lines() {
        assert!(l.chars().count() <= MAX_COLS, "line too long: {l}");
    }
    // Metric order is the struct's.
    let pos = |k: &str| t.find(&format!("\n  {k} ")).unwrap();
    assert!(pos("delivery_ratio") < pos("latency_ms.p50") && pos("latency_ms.p99") < pos("rmr"));
    assert!(pos("foaf_success_ratio") < pos("events_per_s"));
}

#[test]
fn terminal_passing_run_has_no_failed_line() {
    let mut r = sample();
    r.expectations.retain(|e| e.passed);
    let t = terminal_summary(&r);
    assert!(!t.contains("FAILED") && !t.contains("FAIL ") && t.contains("PASS"));
}

#[test]
fn html_escapes_and_plots() {
    let r = sample();
    let h = html_report(&r);
    assert!(h.contains("churn &lt;b&gt;&amp;&quot;"), "name not escaped");
    assert!(!h.contains("<b>&\""), "raw name leaked");
    assert!(h.contains(&r.trace_hash));
    // Four non-empty series, one empty (components_over_time, which is then left out).
    assert_eq!(h.matches("<svg").count(), 4);
    assert_eq!(h.matches("</svg>").count(), 4);
    assert!(!h.contains("no data"));
    for key in METRIC_KEYS {
        assert!(h.contains(&format!(">{key}<")), "metric {key} missing");
    }
    assert!(h.contains(">null<") && h.contains(">FAIL<") && h.contains(">PASS<"));
    assert!(h.contains("&lt;b&gt;") && !h.contains("<script"));
    assert!(
        !h.contains(" src=") && !h.contains("<link") && !h.contains("url("),
        "external assets"
    );
    assert!(h.contains(&esc(&r.replay_command)));
    assert!(
        h.contains("latency (ms)") && h.contains("fraction of deliveries"),
        "axis labels missing"
    );

    let mut r = r;
    r.series.frames_per_node.clear();
    r.series.components_over_time = vec![(0.0, 3), (10.0, 2), (20.0, 1)];
    let h = html_report(&r);
    assert_eq!(h.matches("<svg").count(), 4);
    assert_eq!(h.matches("no data").count(), 1);
    assert!(h.contains("components over time"));
}

#[test]
fn all_empty_renders() {
    let r = empty();
    let t = terminal_summary(&r);
    assert!(!t.contains("FAILED") && t.contains("(none)"));
    assert_eq!(t.matches("null").count(), METRIC_KEYS.len());
    let h = html_report(&r);
    assert_eq!(h.matches("<svg").count(), 0);
    assert_eq!(h.matches("no data").count(), 4);
    assert!(h.ends_with("</html>\n"));
}

#[test]
fn awkward_series_do_not_panic() {
    let mut r = empty();
    let cases: Vec<Series> = vec![
        Series {
            latency_ms: vec![5.0],
            deliveries_over_time: vec![(0.0, 0)],
            active_view_degree: vec![0],
            frames_per_node: vec![0],
            components_over_time: vec![(1.0, 1)],
        },
        Series {
            latency_ms: vec![f64::NAN, f64::INFINITY, 7.0, 7.0],
            deliveries_over_time: vec![(1.0, 5), (1.0, 5)],
            active_view_degree: vec![u64::from(u32::MAX); 3],
            frames_per_node: vec![u64::MAX / 2; 1000],
            components_over_time: vec![(0.0, 0), (0.0, 0)],
        },
        Series {
            latency_ms: vec![f64::NAN],
            deliveries_over_time: (0..100_000)
                .map(|i| (f64::from(i) * 1e-3, i as u64))
                .collect(),
            active_view_degree: (0..300).collect(),
            frames_per_node: (0..20_000).map(|i| i % 977).collect(),
            components_over_time: vec![(-5.0, 2), (1e12, 1)],
        },
    ];
    for s in cases {
        r.series = s;
        let h = html_report(&r);
        assert!(!h.contains("plot failed"), "{h}");
        // Thinning keeps even huge series small.
        assert!(h.len() < 1_000_000, "report is {} bytes", h.len());
    }
}

#[test]
fn every_metric_field_is_listed() {
    // A fully populated Metrics: every JSON leaf must be one of METRIC_KEYS, and vice versa.
    let p = Percentiles::of(&[1.0]);
    let m = Metrics {
        delivery_ratio: Some(1.0),
        latency_ms: p,
        rmr: Some(1.0),
        ldh_max: Some(1),
        payload_frames_to_nonsubscribers: Some(1),
        detection_ms: p,
        detection_missed: Some(1),
        false_positives: Some(1),
        components: Some(1),
        isolated_nodes: Some(1),
        components_at_heal: Some(1),
        remerge_ms: Some(1.0),
        forged_delivered: Some(1),
        duplicate_deliveries: Some(1),
        frames_sent: Some(1),
        bytes_sent: Some(1),
        bytes_per_node_per_s: Some(1.0),
        idle_bytes_per_node_per_s: Some(1.0),
        idle_frames_per_node_per_s: Some(1.0),
        events: Some(1),
        wall_s: Some(1.0),
        peak_rss_mb: Some(1.0),
        presence_seen_ms: Some(crate::metrics::P50P95Max {
            p50: 1.0,
            p95: 1.0,
            max: 1.0,
        }),
        presence_gone_ms: Some(crate::metrics::MedianMax { p50: 1.0, max: 1.0 }),
        foaf_success_ratio: Some(1.0),
        foaf_forwards_per_query: Some(MeanMax {
            mean: 1.0,
            max: 1.0,
        }),
        signatures_per_node_per_s: Some(MeanMax {
            mean: 0.5,
            max: 1.5,
        }),
        eclipsed_nodes: Some(1),
        honest_view_fraction: Some(crate::metrics::MinP5 { min: 0.5, p5: 0.6 }),
        rejected_frames: Some(1),
        memory_per_node_kb: Some(1.0),
        events_per_s: Some(1.0),
        presence_gone_left_ms: Some(crate::metrics::MedianMax { p50: 1.0, max: 1.0 }),
        presence_gone_crashed_ms: Some(crate::metrics::MedianMax { p50: 1.0, max: 1.0 }),
        latency_before_crash_ms: p,
        latency_after_crash_ms: p,
        latency_p99_after_crash_ratio: Some(1.0),
    };
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut found = Vec::new();
    leaves("", &serde_json::to_value(&m).unwrap(), &mut found);
    let mut listed: Vec<String> = METRIC_KEYS.iter().map(|k| (*k).to_owned()).collect();
    found.sort();
    listed.sort();
    assert_eq!(found, listed);
    let r = RunResult {
        metrics: m,
        ..empty()
    };
    assert!(metric_rows(&r).iter().all(|(_, v)| v.is_some()));
}

#[test]
fn number_formatting() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(1_234_567), "1,234,567");
    assert_eq!(thousands_f(-1234.4), "-1,234");
    assert_eq!(fmt_value("rmr", None), "null");
    assert_eq!(fmt_value("components", Some(3.0)), "3");
    assert_eq!(fmt_value("detection_ms.p99", Some(1500.04)), "1500.0");
    assert_eq!(fmt_value("remerge_ms", Some(2.26)), "2.3");
    assert_eq!(axis_label(12_000.0, 50_000.0, None), "12k");
    assert_eq!(axis_label(3_200_000.0, 5e6, None), "3.2M");
    assert_eq!(axis_label(0.25, 1.0, None), "0.25");
    assert_eq!(axis_label(1.000_000_1, 2.0, Some(0)), "1");
    assert_eq!(axis_label(250.0, 600.0, None), "250");
    assert_eq!(clean("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
    let e = ExpectOutcome {
        metric: "x".into(),
        min: None,
        max: None,
        value: None,
        passed: false,
    };
    assert_eq!(fmt_bound(&e), "any");
}
