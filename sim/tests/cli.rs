//! The `hearsay-sim` command: every shipped scenario runs to the end with every metric in its
//! JSON; same seed in two processes gives the same trace hash; failures exit non-zero with the
//! replay command; a malformed file gets one message and exit code 2; `--help` describes
//! every flag and a bad command line exits 2 without running anything.

use hearsay_sim::scenario::METRIC_KEYS;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hearsay-sim"))
}

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hearsay-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn trace_hash(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace hash: "))
        .expect("no trace hash printed")
        .to_string()
}

#[test]
fn every_shipped_scenario_runs_to_the_end_with_every_metric_in_its_json() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    for file in files {
        let json_path = tmp(&format!(
            "{}.json",
            file.file_stem().unwrap().to_string_lossy()
        ));
        // Big scenarios run at a few hundred nodes here; CI runs them full size in release.
        let nodes = hearsay_sim::scenario::Scenario::load(&file)
            .unwrap()
            .nodes
            .min(300)
            .to_string();
        let out = run(&[
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--nodes",
            &nodes,
            "--json",
            json_path.to_str().unwrap(),
        ]);
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "{} did not run to the end (exit {code:?}): {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        let metrics = &json["metrics"];
        for key in METRIC_KEYS {
            let (top, sub) = key
                .split_once('.')
                .map_or((*key, None), |(a, b)| (a, Some(b)));
            let v = metrics
                .get(top)
                .unwrap_or_else(|| panic!("{}: metric {key} missing", file.display()));
            if let Some(sub) = sub
                && !v.is_null()
            {
                assert!(
                    v.get(sub).is_some(),
                    "{}: metric {key} missing",
                    file.display()
                );
            }
        }
        assert!(metrics["events"].as_u64().unwrap() > 0);
        assert_eq!(json["passed"].as_bool(), Some(code == Some(0)));
    }
}

#[test]
fn same_seed_two_processes_same_trace_hash() {
    let file = scenarios_dir().join("partition-remerge.toml");
    let f = file.to_str().unwrap();
    let a = run(&["run", f, "--quiet", "--seed", "42"]);
    let b = run(&["run", f, "--quiet", "--seed", "42"]);
    let c = run(&["run", f, "--quiet", "--seed", "43"]);
    assert_eq!(trace_hash(&a), trace_hash(&b));
    assert_ne!(trace_hash(&a), trace_hash(&c));
}

#[test]
fn a_failing_expectation_exits_non_zero_and_prints_the_replay_command() {
    let path = tmp("failing.toml");
    std::fs::write(
        &path,
        "name = \"fails\"\nnodes = 5\nduration = \"5s\"\n[[events]]\nat = \"0s\"\naction = \"join\"\n[[expect]]\nmetric = \"components\"\nmin = 2\n",
    )
    .unwrap();
    let out = run(&["run", path.to_str().unwrap(), "--seed", "9"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("replay with"), "{stderr}");
    assert!(
        stderr.contains(&format!("run {} --seed 9 --nodes 5", path.display())),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn a_passing_run_exits_zero_and_writes_the_html_report() {
    let path = tmp("passing.toml");
    std::fs::write(
        &path,
        "nodes = 6\nduration = \"5s\"\n[network]\nlatency = { dist = \"fixed\", value = \"20ms\" }\n[[events]]\nat = \"0s\"\naction = \"join\"\n[[expect]]\nmetric = \"components\"\nmax = 1\n",
    )
    .unwrap();
    let html = tmp("passing.html");
    let out = run(&[
        "run",
        path.to_str().unwrap(),
        "--quiet",
        "--report",
        html.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(html).unwrap();
    assert!(page.contains("<svg"));
}

#[test]
fn a_malformed_scenario_gets_one_message_naming_file_line_and_key_and_exit_code_2() {
    let path = tmp("bad.toml");
    std::fs::write(
        &path,
        "nodes = 5\n\n[[events]]\nat = \"0s\"\naction = \"crash\"\nfraction = 1.5\n",
    )
    .unwrap();
    let out = run(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");
    assert!(
        stderr.contains(&format!("{}:6", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("fraction"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is half-run");
    // Unknown config parameters are refused before anything runs.
    std::fs::write(&path, "nodes = 5\n[config]\nno_such_knob = 3\n").unwrap();
    let out = run(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_knob"));
}

#[test]
fn help_exits_zero_and_describes_the_run_command_and_every_flag() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run"), "{text}");
    for args in [&["run", "--help"][..], &["run", "-h"], &["help", "run"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "FILE", "--seed", "--nodes", "--json", "--report", "--crypto", "fast", "real",
            "--quiet",
        ] {
            assert!(
                text.contains(flag),
                "{args:?} does not mention {flag}: {text}"
            );
        }
    }
}

#[test]
fn a_bad_command_line_exits_2_before_running_anything() {
    let file = scenarios_dir().join("partition-remerge.toml");
    let f = file.to_str().unwrap();
    for args in [
        &["run", f, "--bogus"][..],
        &["run", f, "--seed", "-1"],
        &["run", f, "--seed"],
        &["run", f, "--nodes", "0"],
        &["run", f, "--crypto", "slow"],
        &["run", f, "extra"],
        &["run"],
        &["frobnicate"],
        &[],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} ran something");
        assert!(!out.stderr.is_empty(), "{args:?} gave no message");
    }
}

#[test]
fn flags_may_come_before_the_file_and_the_last_repeat_wins() {
    let file = scenarios_dir().join("partition-remerge.toml");
    let f = file.to_str().unwrap();
    let a = run(&["run", "--seed", "42", "--quiet", f]);
    let b = run(&[
        "run", f, "--seed", "7", "--seed", "42", "--quiet", "--crypto", "fast",
    ]);
    assert_eq!(a.status.code(), b.status.code());
    assert_eq!(trace_hash(&a), trace_hash(&b));
}
