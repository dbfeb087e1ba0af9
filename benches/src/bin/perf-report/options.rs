//! perf-report's options, timing and formatting helpers, and the machine description.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ options and helpers

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) big: bool,
    pub(crate) out: PathBuf,
    /// Sections to run (1 to 7); all by default.
    pub(crate) only: Vec<u8>,
}

impl Options {
    pub(crate) fn parse() -> Result<Options, String> {
        let mut out = Options {
            quick: false,
            big: false,
            out: workspace_root().join("PERFORMANCE.md"),
            only: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => out.quick = true,
                "--big" => out.big = true,
                "--out" => out.out = args.next().ok_or("--out takes a path")?.into(),
                "--only" => {
                    let list = args.next().ok_or("--only takes a list such as 1,2")?;
                    for k in list.split(',') {
                        out.only
                            .push(k.trim().parse().map_err(|_| format!("bad section `{k}`"))?);
                    }
                }
                "-h" | "--help" => {
                    return Err(
                        "usage: perf-report [--quick] [--big] [--out FILE] [--only 1,2,...] (sections 1 to 7)".into(),
                    );
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(out)
    }

    /// Whether section `k` runs.
    pub(crate) fn runs(&self, k: u8) -> bool {
        self.only.is_empty() || self.only.contains(&k)
    }

    /// `full` iterations normally, a tenth (at least `min`) with `--quick`.
    pub(crate) fn iters(&self, full: usize, min: usize) -> usize {
        if self.quick {
            (full / 10).max(min)
        } else {
            full
        }
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Mean time per call of `f` over `n` calls (`f` gets the call's index).
pub(crate) fn time_per_op(n: usize, mut f: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed() / n.max(1) as u32
}

/// The lowest mean time per call of `f` over `rounds` rounds of `n / rounds` calls: robust to
/// the preemption spikes of a shared machine for calls of tens of nanoseconds.
pub(crate) fn best_per_op(n: usize, rounds: usize, mut f: impl FnMut(usize)) -> Duration {
    let per_round = (n / rounds.max(1)).max(1);
    (0..rounds.max(1))
        .map(|_| time_per_op(per_round, &mut f))
        .min()
        .unwrap_or_default()
}

pub(crate) fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

pub(crate) fn per_s(d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        1.0 / d.as_secs_f64()
    }
}

pub(crate) fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

pub(crate) fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `cmd` and returns (stdout, wall time), or why it failed.
pub(crate) fn run_child(cmd: &mut Command) -> Result<(String, Duration), String> {
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let wall = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" / ");
        return Err(format!("{} ({tail})", out.status));
    }
    Ok((stdout, wall))
}

// ------------------------------------------------------------------ machine

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown")
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_string()
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = read_trimmed("/proc/sys/kernel/osrelease");
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let mut s = String::new();
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| CPU | {cpu} |");
    let _ = writeln!(s, "| Cores (available to the process) | {cores} |");
    let _ = writeln!(s, "| OS | {os}, Linux {kernel} |");
    let _ = writeln!(s, "| rustc | {rustc} |");
    let _ = writeln!(s, "| Date | {date} |");
    s
}
