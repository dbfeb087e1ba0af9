//! Separate `hearsay run` processes on 127.0.0.1, driven only through the CLI and the control
//! API: they join, deliver a topic's messages, list each other, refuse requests without the
//! token, serve metrics, and fail cleanly on bad input.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A temp directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("hearsay-run-{test}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn home(&self, i: usize) -> PathBuf {
        self.0.join(format!("node{i}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Child processes killed (SIGKILL) and reaped on drop, whatever happened.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    fn push(&mut self, child: Child) -> usize {
        self.0.push(child);
        self.0.len() - 1
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn hearsay(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearsay"));
    cmd.env_remove("HEARSAY_HOME")
        .env("HOME", home)
        .arg("--home")
        .arg(home);
    cmd
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "command failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a command that must fail; returns the one error line it ends with (logs may precede it).
fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run hearsay");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should have failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("hearsay: error: "), "{stderr}");
    last.to_owned()
}

fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `hearsay run` for node `i` and waits for its control API; returns its `PEERID@ADDR`.
fn start(children: &mut Children, dir: &TempDir, i: usize, extra: &[&str]) -> (String, String) {
    let home = dir.home(i);
    let created = ok(hearsay(&home)
        .args(["identity", "create", &format!("n{i}")])
        .output()
        .unwrap());
    let peer_id = created.split_whitespace().nth(1).unwrap().to_owned();
    (peer_id, launch(children, dir, i, "127.0.0.1:0", extra))
}

/// Runs node `i` (its identity exists) on `bind` subscribed to `chat`, after removing the run-time files
/// a killed run leaves behind; waits for its control API and returns its `PEERID@ADDR`.
fn launch(children: &mut Children, dir: &TempDir, i: usize, bind: &str, extra: &[&str]) -> String {
    let home = dir.home(i);
    for f in ["control.addr", "control.token", "node.addr"] {
        let _ = fs::remove_file(home.join(f));
    }
    let child = hearsay(&home)
        .args(["run", "--identity", &format!("n{i}"), "--bind", bind])
        .args(["--subscribe", "chat"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hearsay run");
    let idx = children.push(child);
    wait_for(
        Duration::from_secs(20),
        "the node writes control.addr",
        || {
            if let Ok(Some(status)) = children.0[idx].try_wait() {
                panic!("hearsay run exited early: {status}");
            }
            home.join("control.addr").exists()
        },
    );
    let node_addr = fs::read_to_string(home.join("node.addr")).unwrap();
    node_addr.trim().to_owned()
}

fn status_of(home: &Path) -> serde_json::Value {
    let out = ok(hearsay(home).args(["status", "--json"]).output().unwrap());
    serde_json::from_str(&out).expect("status --json is JSON")
}

fn kill(children: &mut Children, idx: usize) {
    children.0[idx].kill().unwrap();
    children.0[idx].wait().unwrap();
}

fn peers_of(home: &Path) -> Vec<String> {
    let out = ok(hearsay(home).args(["peers", "--json"]).output().unwrap());
    let list: serde_json::Value = serde_json::from_str(&out).expect("peers --json is JSON");
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn three_nodes_deliver_a_topic_through_the_cli() {
    let dir = TempDir::new("three");
    let mut children = Children::default();
    let (id0, addr0) = start(&mut children, &dir, 0, &["--metrics", "127.0.0.1:0"]);
    let (id1, _) = start(&mut children, &dir, 1, &["--bootstrap", &addr0]);
    let (id2, _) = start(&mut children, &dir, 2, &["--bootstrap", &addr0]);
    let homes: Vec<PathBuf> = (0..3).map(|i| dir.home(i)).collect();

    // The token file is private.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(homes[0].join("control.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    wait_for(Duration::from_secs(20), "node 0 sees nodes 1 and 2", || {
        let peers = peers_of(&homes[0]);
        peers.contains(&id1) && peers.contains(&id2)
    });
    let peers2 = peers_of(&homes[2]);
    assert!(peers2.contains(&id0) || peers2.contains(&id1), "{peers2:?}");
    // Let the topic overlay form.
    wait_for(
        Duration::from_secs(20),
        "every node has a topic neighbour",
        || {
            homes.iter().all(|h| {
                let out = ok(hearsay(h).args(["status", "--json"]).output().unwrap());
                let s: serde_json::Value = serde_json::from_str(&out).unwrap();
                s["neighbors"].as_u64().unwrap_or(0) > 0
            })
        },
    );
    std::thread::sleep(Duration::from_millis(1500));

    let subscriber = hearsay(&homes[2])
        .args([
            "subscribe",
            "--topic",
            "chat",
            "--count",
            "2",
            "--timeout",
            "20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    ok(hearsay(&homes[0])
        .args(["publish", "--topic", "chat", "--message", "hello from 0"])
        .output()
        .unwrap());
    let file = dir.0.join("payload.txt");
    fs::write(&file, "hello from 1").unwrap();
    ok(hearsay(&homes[1])
        .args(["publish", "--topic", "chat", "--file"])
        .arg(&file)
        .output()
        .unwrap());
    let out = ok(subscriber.wait_with_output().unwrap());
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let mut payloads: Vec<&str> = lines
        .iter()
        .map(|l| l["payload"].as_str().unwrap())
        .collect();
    payloads.sort();
    assert_eq!(payloads, ["hello from 0", "hello from 1"]);
    for l in &lines {
        assert_eq!(l["topic"], "chat");
        assert!(l["hops"].as_u64().unwrap() >= 1);
        assert_eq!(l["id"].as_str().unwrap().len(), 64);
    }
    let authors: Vec<&str> = lines
        .iter()
        .map(|l| l["author"].as_str().unwrap())
        .collect();
    assert!(authors.contains(&id0.as_str()) && authors.contains(&id1.as_str()));

    // Status, human and JSON.
    let status = ok(hearsay(&homes[0]).arg("status").output().unwrap());
    assert!(status.contains(&id0) && status.contains("chat"), "{status}");

    // The control API refuses a missing or a wrong token.
    let control: std::net::SocketAddr = fs::read_to_string(homes[0].join("control.addr"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let timeout = Some(Duration::from_secs(5));
    let none = hearsay::http::request(control, "GET", "/v1/status", None, b"", timeout).unwrap();
    assert_eq!(none.status, 401);
    let wrong =
        hearsay::http::request(control, "GET", "/v1/peers", Some("00"), b"", timeout).unwrap();
    assert_eq!(wrong.status, 401);
    let bad_token = dir.0.join("bad.token");
    fs::write(&bad_token, "nope\n").unwrap();
    let err = fails(
        hearsay(&homes[0])
            .args(["status", "--control", &control.to_string(), "--token-file"])
            .arg(&bad_token),
    );
    assert!(err.contains("401") && err.contains("token"), "{err}");

    // Metrics in the Prometheus text format.
    let out = ok(hearsay(&homes[0])
        .args(["status", "--json"])
        .output()
        .unwrap());
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    let metrics: std::net::SocketAddr = s["metrics"].as_str().unwrap().parse().unwrap();
    let body = hearsay::http::request(metrics, "GET", "/metrics", None, b"", timeout)
        .unwrap()
        .body()
        .unwrap();
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("# TYPE hearsay_frames_in_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("hearsay_deliveries_total{topic=\"chat\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("hearsay_published_total 1\n"), "{text}");
    for family in [
        "# TYPE hearsay_core_frames_in_total counter\n",
        "# TYPE hearsay_drops_total counter\n",
        "# TYPE hearsay_view_size gauge\n",
        "# TYPE hearsay_verify_failures_total counter\n",
        "# TYPE hearsay_delivery_latency_seconds histogram\n",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let sample = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {name}:\n{text}"))
    };
    assert!(sample("hearsay_core_frames_in_total{kind=\"topic\"}") > 0.0);
    assert!(sample("hearsay_core_frames_out_total{kind=\"session\"}") > 0.0);
    assert_eq!(sample("hearsay_view_size{view=\"active\"}"), 2.0);
    // One message delivered here (node 1's): one latency observation, in the +Inf bucket too.
    assert_eq!(sample("hearsay_delivery_latency_seconds_count"), 1.0);
    assert_eq!(
        sample("hearsay_delivery_latency_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("hearsay_"), "{line}");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad sample {line}"));
    }

    // A second node on the same home, one clear line.
    let err = fails(hearsay(&homes[0]).args(["run", "--identity", "n0"]));
    assert!(err.contains("another `hearsay run` is using"), "{err}");

    // A port that is taken, one clear line.
    let other = dir.home(3);
    ok(hearsay(&other)
        .args(["identity", "create", "n3"])
        .output()
        .unwrap());
    let quic = addr0.split_once('@').unwrap().1;
    let err = fails(hearsay(&other).args(["run", "--identity", "n3", "--bind", quic]));
    assert!(err.contains("in use") && err.contains("--bind"), "{err}");
}

#[test]
fn a_killed_node_rejoins_from_its_peer_cache() {
    let dir = TempDir::new("restart");
    let mut children = Children::default();
    let (id0, addr0) = start(&mut children, &dir, 0, &[]);
    let (id1, _) = start(&mut children, &dir, 1, &["--bootstrap", &addr0]);
    let home1 = dir.home(1);
    wait_for(Duration::from_secs(20), "node 1 sees node 0", || {
        peers_of(&home1).contains(&id0)
    });
    // The cache is written every 2 s.
    std::thread::sleep(Duration::from_secs(3));
    let killed = children.0.len() - 1;
    children.0[killed].kill().unwrap();
    children.0[killed].wait().unwrap();
    // SIGKILL leaves the run-time files behind; a new run replaces them.
    for f in ["control.addr", "control.token", "node.addr"] {
        let _ = fs::remove_file(home1.join(f));
    }
    let child = hearsay(&home1)
        .args(["run", "--identity", "n1", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    children.push(child);
    wait_for(Duration::from_secs(20), "node 1 restarts", || {
        home1.join("control.addr").exists()
    });
    wait_for(
        Duration::from_secs(20),
        "node 1 rejoins without --bootstrap",
        || peers_of(&home1).contains(&id0),
    );
    let out = ok(hearsay(&home1).args(["status", "--json"]).output().unwrap());
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["starts"], 2);
    // The core's state was restored: a higher boot count, hence sequence numbers from
    // 2 << 32 on, never one the killed run could have used.
    assert_eq!(s["boot_count"], 2);
    assert_eq!(s["peer_id"], id1.as_str());

    // SIGTERM: node 0 leaves gracefully, exits 0 and removes its run-time files.
    let pid = children.0[0].id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    wait_for(Duration::from_secs(10), "node 0 exits on SIGTERM", || {
        exited = children.0[0].try_wait().unwrap();
        exited.is_some()
    });
    assert!(exited.unwrap().success());
    assert!(!dir.home(0).join("control.addr").exists());
    assert!(!dir.home(0).join("control.token").exists());
}

#[test]
fn bad_input_gets_one_clear_line() {
    let dir = TempDir::new("bad");
    let home = dir.home(0);
    let err = fails(hearsay(&home).args(["status"]));
    assert!(err.contains("no node is running"), "{err}");
    let err = fails(hearsay(&home).args(["publish", "--topic", "t", "--message", "m"]));
    assert!(err.contains("no node is running"), "{err}");
    let err = fails(hearsay(&home).args(["run", "--identity", "ghost"]));
    assert!(err.contains("no identity named \"ghost\""), "{err}");
    assert!(err.contains("identity create ghost"), "{err}");
    let err = fails(hearsay(&home).args(["run", "--identity", "x", "--bootstrap", "nowhere"]));
    assert!(err.contains("nowhere"), "{err}");
    let err = fails(hearsay(&home).args(["run", "--identity", "x", "--roles", "king"]));
    assert!(err.contains("unknown role"), "{err}");
    let err = fails(hearsay(&home).args(["run", "--bogus"]));
    assert!(err.contains("--bogus"), "{err}");
    let err = fails(hearsay(&home).args(["run"]));
    assert!(err.contains("--identity"), "{err}");

    // A config file may hold the flags; a bad key is named.
    let config = dir.0.join("bad.toml");
    fs::write(&config, "identity = \"x\"\nport = 3\n").unwrap();
    let err = fails(hearsay(&home).args(["run", "--config"]).arg(&config));
    assert!(err.contains("port"), "{err}");
    let config = dir.0.join("good.toml");
    fs::write(&config, "identity = \"ghost\"\nbind = \"127.0.0.1:0\"\n").unwrap();
    let err = fails(hearsay(&home).args(["run", "--config"]).arg(&config));
    assert!(err.contains("no identity named \"ghost\""), "{err}");
}

#[test]
fn an_unreachable_bootstrap_is_an_error() {
    let dir = TempDir::new("unreachable");
    let home = dir.home(0);
    ok(hearsay(&home)
        .args(["identity", "create", "solo"])
        .output()
        .unwrap());
    // A port nobody listens on: take one and let it go.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fails(hearsay(&home).args([
        "run",
        "--identity",
        "solo",
        "--bootstrap",
        &format!("127.0.0.1:{port}"),
    ]));
    assert!(err.contains("cannot reach any bootstrap peer"), "{err}");
    assert!(!home.join("control.addr").exists());
}

#[test]
fn an_offline_node_catches_up_from_a_restarted_anchor() {
    let dir = TempDir::new("anchor");
    let mut children = Children::default();
    // Node 0 is an anchor and a reflector; 1 and 2 are plain peers.
    let anchor_flags = ["--roles", "anchor,reflector", "--mailbox", "100"];
    let (id0, addr0) = start(&mut children, &dir, 0, &anchor_flags);
    let (_, addr1) = start(&mut children, &dir, 1, &["--bootstrap", &addr0]);
    let (_, _) = start(&mut children, &dir, 2, &["--bootstrap", &addr0]);
    let (home0, home1, home2) = (dir.home(0), dir.home(1), dir.home(2));
    for home in [&home1, &home2] {
        wait_for(Duration::from_secs(20), "a peer sees the anchor", || {
            peers_of(home).contains(&id0)
        });
    }
    // The reflector told node 1 the address its connection came from: its own QUIC socket.
    let s1 = status_of(&home1);
    let quic1 = addr1.split_once('@').unwrap().1;
    let seen = s1["observed_addresses"].as_array().unwrap();
    assert!(
        seen.iter().any(|a| a
            .as_str()
            .unwrap()
            .starts_with(&format!("{quic1} (by {id0}"))),
        "{s1}"
    );
    let s0 = status_of(&home0);
    assert_eq!(
        s0["roles_active"],
        serde_json::json!(["anchor", "reflector"])
    );
    // Peer caches are written every 2 s; let the topic overlay settle too.
    std::thread::sleep(Duration::from_secs(3));

    // Node 1 goes down hard; four messages are published while it is away.
    kill(&mut children, 1);
    let mut missed = Vec::new();
    for k in 0..3 {
        let text = format!("missed {k} from node 2");
        ok(hearsay(&home2)
            .args(["publish", "--topic", "chat", "--message", &text])
            .output()
            .unwrap());
        missed.push(text);
    }
    let text = "missed 3 from the anchor".to_owned();
    ok(hearsay(&home0)
        .args(["publish", "--topic", "chat", "--message", &text])
        .output()
        .unwrap());
    missed.push(text);
    wait_for(
        Duration::from_secs(20),
        "the anchor stores all four",
        || status_of(&home0)["mailbox_messages"].as_u64() == Some(4),
    );

    // Everyone else goes down too, then the anchor restarts from its store alone.
    kill(&mut children, 2);
    kill(&mut children, 0);
    // (at the address the others remember)
    let quic0 = addr0.split_once('@').unwrap().1;
    launch(&mut children, &dir, 0, quic0, &anchor_flags);
    wait_for(
        Duration::from_secs(20),
        "the anchor restores its mailbox",
        || status_of(&home0)["mailbox_restored"] == 4,
    );
    assert_eq!(status_of(&home0)["boot_count"], 2);

    // Node 1 returns without --bootstrap and gets the four messages from the anchor.
    launch(&mut children, &dir, 1, "127.0.0.1:0", &[]);
    wait_for(Duration::from_secs(30), "node 1 rejoins the anchor", || {
        peers_of(&home1).contains(&id0)
    });
    let out = ok(hearsay(&home1)
        .args([
            "subscribe",
            "--topic",
            "chat",
            "--replay",
            "--count",
            "4",
            "--timeout",
            "45s",
        ])
        .output()
        .unwrap());
    let mut got: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
            v["payload"].as_str().unwrap().to_owned()
        })
        .collect();
    got.sort();
    assert_eq!(got, missed, "{out}");
    // The restarted node runs as boot 2: its sequence numbers cannot repeat the first run's.
    assert_eq!(status_of(&home1)["boot_count"], 2);
}

#[test]
fn a_passphrase_protected_identity_runs_only_with_its_passphrase() {
    let dir = TempDir::new("passphrase");
    let home = dir.home(0);
    let good = dir.0.join("good.txt");
    let bad = dir.0.join("bad.txt");
    fs::write(&good, "correct horse battery\n").unwrap();
    fs::write(&bad, "correct horse battery staple\n").unwrap();
    let short = dir.0.join("short.txt");
    fs::write(&short, "abc\n").unwrap();
    let err = fails(
        hearsay(&home)
            .args(["identity", "create", "p", "--passphrase-file"])
            .arg(&short),
    );
    assert!(err.contains("too short"), "{err}");
    let created = ok(hearsay(&home)
        .args(["identity", "create", "p", "--passphrase-file"])
        .arg(&good)
        .output()
        .unwrap());
    let peer = created.split_whitespace().nth(1).unwrap().to_owned();
    // The key file holds no seed in clear; list and show work without the passphrase.
    let key = fs::read_to_string(home.join("identities/p.key")).unwrap();
    assert!(key.starts_with("hearsay-identity v1 argon2id\n"), "{key}");
    let list = ok(hearsay(&home).args(["identity", "list"]).output().unwrap());
    assert_eq!(list.trim(), format!("p {peer}"));
    let show = ok(hearsay(&home)
        .args(["identity", "show", "p"])
        .output()
        .unwrap());
    assert!(show.contains("protected-by: passphrase"), "{show}");

    let err = fails(hearsay(&home).args(["run", "--identity", "p"]));
    assert!(err.contains("protected by a passphrase"), "{err}");
    let err = fails(
        hearsay(&home)
            .args(["run", "--identity", "p", "--passphrase-file"])
            .arg(&bad),
    );
    assert!(err.contains("wrong passphrase"), "{err}");

    // The right passphrase, from the environment this time.
    let mut children = Children::default();
    let child = hearsay(&home)
        .env("HEARSAY_PASSPHRASE", "correct horse battery")
        .args(["run", "--identity", "p", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let idx = children.push(child);
    wait_for(Duration::from_secs(60), "the protected node starts", || {
        if let Ok(Some(status)) = children.0[idx].try_wait() {
            panic!("hearsay run exited: {status}");
        }
        home.join("control.addr").exists()
    });
    assert_eq!(status_of(&home)["peer_id"], peer.as_str());
}

#[test]
fn groups_presence_and_encrypted_letters_through_the_cli() {
    let dir = TempDir::new("services");
    let mut children = Children::default();
    let (id0, addr0) = start(&mut children, &dir, 0, &[]);
    let (id1, _) = start(&mut children, &dir, 1, &["--bootstrap", &addr0]);
    let (_, _) = start(&mut children, &dir, 2, &["--bootstrap", &addr0]);
    let (home0, home1, home2) = (dir.home(0), dir.home(1), dir.home(2));
    for home in [&home1, &home2] {
        wait_for(Duration::from_secs(20), "a peer sees node 0", || {
            peers_of(home).contains(&id0)
        });
    }

    // A group made on node 0 and shared with node 1 out of band.
    let made = ok(hearsay(&home0)
        .args(["group", "create", "friends"])
        .output()
        .unwrap());
    let topic = made.split_whitespace().nth(1).unwrap().to_owned();
    let secret = ok(hearsay(&home0)
        .args(["group", "export", "friends"])
        .output()
        .unwrap());
    let secret_file = dir.0.join("friends.secret");
    fs::write(&secret_file, &secret).unwrap();
    let imported = ok(hearsay(&home1)
        .args(["group", "import", "pals", "--secret-file"])
        .arg(&secret_file)
        .output()
        .unwrap());
    assert_eq!(imported.split_whitespace().nth(1), Some(topic.as_str()));
    let err = fails(hearsay(&home2).args(["presence", "start", "--group", "friends"]));
    assert!(err.contains("no group named"), "{err}");

    ok(hearsay(&home0)
        .args(["presence", "start", "--group", "friends"])
        .output()
        .unwrap());
    ok(hearsay(&home1)
        .args(["presence", "start", "--group", "pals"])
        .output()
        .unwrap());
    wait_for(
        Duration::from_secs(60),
        "node 0 sees node 1 present",
        || {
            let out = ok(hearsay(&home0)
                .args(["presence", "online", "--group", "friends"])
                .output()
                .unwrap());
            out.contains(&id1)
        },
    );

    // A letter from node 2 to node 1: node 1 opens it, node 0 (which relays) cannot.
    let sent = ok(hearsay(&home2)
        .args(["send", "--to", &id1, "--message", "for your eyes only"])
        .output()
        .unwrap());
    assert!(sent.starts_with("sent "), "{sent}");
    let out = ok(hearsay(&home1)
        .args(["inbox", "--replay", "--count", "1", "--timeout", "40s"])
        .output()
        .unwrap());
    let letter: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(letter["payload"], "for your eyes only");
    assert_eq!(letter["direct"], true);
    let err = fails(hearsay(&home0).args(["inbox", "--replay", "--count", "1", "--timeout", "2s"]));
    assert!(err.contains("only 0 of 1"), "{err}");
    let err = fails(hearsay(&home2).args(["send", "--to", "nobody", "--message", "x"]));
    assert!(err.contains("bad recipient"), "{err}");
}

#[test]
fn an_acknowledged_message_survives_a_crash_before_it_was_sent() {
    let dir = TempDir::new("outbox");
    let mut children = Children::default();
    // Node 0 is alone: what it publishes is acknowledged but reaches nobody yet.
    let (id0, _) = start(&mut children, &dir, 0, &[]);
    let home0 = dir.home(0);
    for k in 0..2 {
        let out = ok(hearsay(&home0)
            .args([
                "publish",
                "--topic",
                "chat",
                "--message",
                &format!("kept {k}"),
            ])
            .output()
            .unwrap());
        assert!(out.starts_with("published "), "{out}");
    }
    kill(&mut children, 0);
    // Node 1 starts; node 0 comes back (same home) and joins it.
    let (_, addr1) = start(&mut children, &dir, 1, &[]);
    launch(
        &mut children,
        &dir,
        0,
        "127.0.0.1:0",
        &["--bootstrap", &addr1],
    );
    let out = ok(hearsay(&dir.home(1))
        .args([
            "subscribe",
            "--topic",
            "chat",
            "--replay",
            "--count",
            "2",
            "--timeout",
            "45s",
        ])
        .output()
        .unwrap());
    let mut got: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["payload"].as_str().unwrap().to_owned(),
                v["author"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("kept 0".to_owned(), id0.clone()),
            ("kept 1".to_owned(), id0)
        ]
    );
}
