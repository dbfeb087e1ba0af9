//! Runs `hearsay demo` small and checks that every message reached every running node.

use std::process::Command;

#[test]
fn demo_delivers_everything_before_and_after_a_node_crashes() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args(["demo", "--nodes", "4", "--messages", "10"])
        .env_remove("HEARSAY_HOME")
        .env_remove("HOME")
        .output()
        .expect("run hearsay demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("delivery: 50 of 50 (100.0%)"),
        "not everything delivered:\n{stdout}"
    );
    assert!(stdout.contains("node 2 crashed"), "{stdout}");
    assert!(
        stdout.contains("latency, publish to each delivery:"),
        "{stdout}"
    );
    assert!(stdout.contains("frames in"), "{stdout}");
}

#[test]
fn demo_rejects_too_few_nodes_in_one_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_hearsay"))
        .args(["demo", "--nodes", "1"])
        .output()
        .expect("run hearsay demo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--nodes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
