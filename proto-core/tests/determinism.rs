//! Determinism: the same seeded exchange, run in two separate processes, produces byte-identical
//! outputs (every frame, connection event and application event, in order).

use hearsay_proto::node::Command;
use hearsay_proto::testing::{Net, hex, node_with};
use hearsay_proto::{Config, TimeDelta};
use std::process::Command as Process;

const CHILD_ENV: &str = "HEARSAY_DETERMINISM_CHILD";
const BEGIN: &str = "<<<TRACE";
const END: &str = "TRACE>>>";

/// A seeded scenario exercising handshakes, record refreshes (which draw from the node RNG),
/// a graceful leave and a dropped connection.
fn scenario() -> String {
    // Short record lifetimes so that refreshes (which draw from the node RNG) happen early.
    let config = || Config {
        record_lifetime: TimeDelta::from_secs(120),
        ..Config::default()
    };
    let mut net = Net::new((1..=5).map(|s| node_with(s, config())).collect());
    net.start_trace();
    for i in 1..5 {
        net.join(i, (i - 1) / 2);
        net.advance(TimeDelta::from_millis(250));
    }
    net.advance(TimeDelta::from_secs(200));
    net.nodes[3]
        .handle_command(net.now, Command::Leave)
        .unwrap();
    net.run();
    let (a, b) = (net.id(0), net.id(2));
    net.nodes[0].handle_disconnected(net.now, b);
    net.nodes[2].handle_disconnected(net.now, a);
    net.run();
    net.advance(TimeDelta::from_secs(30));
    let mut trace = net.trace().to_string();
    for (i, n) in net.nodes.iter().enumerate() {
        let s = n.persistent_state().to_bytes().unwrap();
        trace.push_str(&format!("state {i} {}\n", hex(&s)));
    }
    trace
}

/// Runs only inside the child processes that `same_seed_same_bytes_in_two_processes` starts.
#[test]
fn determinism_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    println!("{BEGIN}\n{}{END}", scenario());
}

fn run_child() -> String {
    let exe = std::env::current_exe().unwrap();
    let out = Process::new(exe)
        .args([
            "--exact",
            "determinism_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let start = stdout.find(BEGIN).expect("child printed no trace") + BEGIN.len() + 1;
    let end = stdout.find(END).unwrap();
    stdout[start..end].to_string()
}

#[test]
fn same_seed_same_bytes_in_two_processes() {
    let a = run_child();
    let b = run_child();
    // The trace is substantial: handshakes, refreshes, goodbyes, disconnects, persisted state.
    assert!(a.matches("frame ").count() > 20, "trace too small:\n{a}");
    assert!(a.contains("NeighborDown") && a.contains("Left") && a.contains("Disconnected"));
    same(&a, &b, "two processes diverged");
    // And this process agrees with both.
    same(&scenario(), &a, "this process diverged from its children");
}

/// Compares two traces, reporting the first line that differs rather than megabytes of hex.
fn same(a: &str, b: &str, what: &str) {
    if a == b {
        return;
    }
    let line = a
        .lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or(a.lines().count().min(b.lines().count()));
    let cut = |s: &str| {
        s.lines()
            .nth(line)
            .map(|l| l.chars().take(160).collect::<String>())
    };
    panic!(
        "{what}: first difference at line {line}:\n  {:?}\n  {:?}",
        cut(a),
        cut(b)
    );
}
