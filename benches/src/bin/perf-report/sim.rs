//! The measurements in other processes: the simulator (section 4) and ten real nodes over
//! loopback QUIC (5).

use crate::options::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

// ------------------------------------------------------------------ 4. simulator

/// The simulator binary: next to this one (same target directory), built on demand.
pub(crate) fn sim_binary() -> Result<PathBuf, String> {
    let here = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = here
        .parent()
        .ok_or("no directory for the current executable")?
        .join("hearsay-sim");
    if !path.exists() {
        eprintln!("perf-report: building hearsay-sim");
        run_child(Command::new(cargo()).current_dir(workspace_root()).args([
            "build",
            "--release",
            "-p",
            "hearsay-sim",
            "--bin",
            "hearsay-sim",
        ]))?;
    }
    Ok(path)
}

#[derive(Debug)]
pub(crate) struct SimCase {
    pub(crate) label: String,
    pub(crate) result: Result<(serde_json::Value, Duration), String>,
}

pub(crate) fn sim_case(bin: &Path, label: &str, scenario: &str, nodes: Option<usize>) -> SimCase {
    let dir = std::env::temp_dir().join(format!("hearsay-perf-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let json = dir.join(format!("{}.json", label.replace(' ', "_")));
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg(workspace_root().join("sim/scenarios").join(scenario))
        .arg("--json")
        .arg(&json)
        .arg("--quiet");
    if let Some(n) = nodes {
        cmd.arg("--nodes").arg(n.to_string());
    }
    eprintln!("perf-report: simulator {label}");
    let result = run_child(&mut cmd).and_then(|(_, wall)| {
        let text = std::fs::read_to_string(&json).map_err(|e| e.to_string())?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        Ok((value, wall))
    });
    SimCase {
        label: label.to_string(),
        result,
    }
}

pub(crate) fn metric(v: &serde_json::Value, path: &[&str]) -> String {
    let mut cur = &v["metrics"];
    for p in path {
        cur = &cur[*p];
    }
    match cur {
        serde_json::Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if n.is_u64() || n.is_i64() {
                format!("{n}")
            } else if f.abs() >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.3}")
            }
        }
        serde_json::Value::Null => "–".into(),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------ 5. real nodes

pub(crate) fn loopback(messages: usize) -> Result<(String, Duration), String> {
    eprintln!("perf-report: loopback_bench (10 real nodes over QUIC)");
    run_child(Command::new(cargo()).current_dir(workspace_root()).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "hearsay-tokio",
        "--example",
        "loopback_bench",
        "--",
        "10",
        &messages.to_string(),
    ]))
}
