//! Runs the built `hearsay` binary against throw-away home directories.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

/// A unique directory under the system temp dir, removed when dropped.
struct TempHome(PathBuf);

impl TempHome {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("hearsay-cli-{test}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temp home");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempHome {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment: no HEARSAY_HOME, and HOME pointed at `fake_home` so a
/// bug can never touch the real ~/.hearsay.
fn hearsay(fake_home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearsay"));
    cmd.env_remove("HEARSAY_HOME").env("HOME", fake_home);
    cmd
}

/// Runs `hearsay --home HOME ARGS...`.
fn run(home: &Path, args: &[&str]) -> Output {
    hearsay(home)
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run hearsay")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "expected success, got {:?}; stderr: {}",
        out.status,
        stderr(out)
    );
}

/// Exit code 1 and exactly one line on stderr.
fn assert_fails_with_one_line(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "stderr should be one line: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(out.stdout.is_empty(), "stdout should be empty on error");
}

fn is_peer_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[test]
fn identity_lifecycle() {
    let home = TempHome::new("lifecycle");
    let home = home.path();
    let mut outputs = Vec::new();

    // Empty keystore: list prints nothing.
    let out = run(home, &["identity", "list"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
    outputs.push(out);

    let out = run(home, &["identity", "create", "alice"]);
    assert_ok(&out);
    outputs.push(out);
    let out = run(home, &["identity", "create", "bob"]);
    assert_ok(&out);
    outputs.push(out);

    // list: one sorted `NAME PEERID` line per identity.
    let out = run(home, &["identity", "list"]);
    assert_ok(&out);
    let listing = stdout(&out);
    let lines: Vec<(&str, &str)> = listing
        .lines()
        .map(|l| l.split_once(' ').expect("NAME PEERID"))
        .collect();
    assert_eq!(lines.len(), 2, "{listing:?}");
    assert_eq!(lines[0].0, "alice");
    assert_eq!(lines[1].0, "bob");
    let alice_id = lines[0].1.to_owned();
    assert!(is_peer_id(&alice_id), "{alice_id:?}");
    assert!(is_peer_id(lines[1].1));
    assert_ne!(alice_id, lines[1].1, "two creates must give two identities");
    outputs.push(out);

    // show prints the same peer id.
    let out = run(home, &["identity", "show", "alice"]);
    assert_ok(&out);
    let shown = stdout(&out);
    assert!(shown.contains("alice"), "{shown:?}");
    assert!(shown.contains(&alice_id), "{shown:?} lacks {alice_id}");
    outputs.push(out);

    // The key file: mode 0600, in a 0700 directory, in the documented format.
    let key_path = home.join("identities").join("alice.key");
    let mode = fs::metadata(&key_path)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    let dir_mode = fs::metadata(home.join("identities"))
        .expect("keystore dir")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "keystore dir mode {dir_mode:o}");
    let contents = fs::read_to_string(&key_path).expect("read key file");
    let secret_hex = contents
        .strip_prefix("hearsay-identity v1\n")
        .expect("magic line")
        .trim_end()
        .to_owned();
    assert_eq!(secret_hex.len(), 192);

    // Creating the same name again fails and leaves the key untouched.
    let out = run(home, &["identity", "create", "alice"]);
    assert_fails_with_one_line(&out, "already exists");
    assert_eq!(fs::read_to_string(&key_path).expect("reread"), contents);
    outputs.push(out);

    // No output so far ever contained the secret, whole or in part.
    for out in &outputs {
        for text in [stdout(out), stderr(out)] {
            for chunk in secret_hex.as_bytes().chunks(16) {
                let chunk = std::str::from_utf8(chunk).expect("hex");
                assert!(!text.contains(chunk), "secret leaked: {text:?}");
            }
        }
    }

    // Delete: gone from list and from disk; deleting again fails.
    let out = run(home, &["identity", "delete", "alice"]);
    assert_ok(&out);
    assert!(!key_path.exists());
    let out = run(home, &["identity", "delete", "alice"]);
    assert_fails_with_one_line(&out, "no identity named");
    let out = run(home, &["identity", "show", "alice"]);
    assert_fails_with_one_line(&out, "no identity named");
    let out = run(home, &["identity", "delete", "bob"]);
    assert_ok(&out);
    let out = run(home, &["identity", "list"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
}

#[test]
fn invalid_names_are_rejected_and_nothing_is_written() {
    let home = TempHome::new("names");
    let home = home.path();
    let too_long = "a".repeat(65);
    for name in [
        "../escape",
        "a.b",
        "has space",
        "",
        "ünï",
        too_long.as_str(),
    ] {
        let out = run(home, &["identity", "create", name]);
        assert_fails_with_one_line(&out, "invalid identity name");
        let out = run(home, &["identity", "show", name]);
        assert_fails_with_one_line(&out, "invalid identity name");
    }
    assert!(!home.join("escape.key").exists());
    let written: Vec<_> = fs::read_dir(home)
        .expect("home")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(written.is_empty(), "{written:?}");
    let ok = "a".repeat(64);
    assert_ok(&run(home, &["identity", "create", &ok]));
}

#[test]
fn home_defaults_to_hearsay_home_then_home_dot_hearsay() {
    let fake_home = TempHome::new("defaults");
    let fake_home = fake_home.path();
    let hearsay_home = fake_home.join("elsewhere");

    let out = hearsay(fake_home)
        .env("HEARSAY_HOME", &hearsay_home)
        .args(["identity", "create", "viaenv"])
        .output()
        .expect("run");
    assert_ok(&out);
    assert!(hearsay_home.join("identities/viaenv.key").is_file());

    let out = hearsay(fake_home)
        .args(["identity", "create", "viahome"])
        .output()
        .expect("run");
    assert_ok(&out);
    assert!(fake_home.join(".hearsay/identities/viahome.key").is_file());

    // --home wins over both.
    let out = run(&fake_home.join("flag"), &["identity", "list"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_corrupt_key_file_is_reported_not_trusted() {
    let home = TempHome::new("corrupt");
    let home = home.path();
    assert_ok(&run(home, &["identity", "create", "good"]));
    fs::write(home.join("identities/bad.key"), "not a key\n").expect("write");
    fs::write(home.join("identities/notes.txt"), "ignored\n").expect("write");

    let out = run(home, &["identity", "show", "bad"]);
    assert_fails_with_one_line(&out, "not a valid key file");

    // list still shows the good one, warns about the bad one, and exits 1.
    let out = run(home, &["identity", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let listing = stdout(&out);
    assert!(listing.starts_with("good "), "{listing:?}");
    assert_eq!(listing.lines().count(), 1);
    assert!(stderr(&out).contains("bad"), "{}", stderr(&out));
}

#[test]
fn version_is_printed() {
    let home = TempHome::new("version");
    let out = hearsay(home.path()).arg("--version").output().expect("run");
    assert_ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("hearsay {}", env!("CARGO_PKG_VERSION"))
    );
}
