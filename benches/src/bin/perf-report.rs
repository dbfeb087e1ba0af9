//! `perf-report`: measures hearsay's hot paths, a two-node in-process throughput run, the
//! simulator at several sizes and real nodes over loopback QUIC, and writes PERFORMANCE.md at
//! the workspace root with the machine every figure ran on.
//!
//! ```text
//! cargo run --release -p hearsay-benches --bin perf-report [-- --quick] [--big] [--out FILE]
//!     [--only 1,3,...]
//! ```
//!
//! Sections: 1 crypto per provider; 2 node throughput in process; 3 wire codec per frame kind,
//! envelope, IBLT; 4 simulator (child processes, and in process through the library API);
//! 5 ten real nodes over loopback QUIC (latency); 6 Plumtree's receive path; 7 QUIC throughput
//! between two real nodes.
//!
//! `--quick` cuts iteration counts (the whole report in a few minutes); `--big` adds a
//! 100 000-node simulator run. Timing is plain `std::time::Instant` over many iterations: the
//! figures are means, not criterion's statistics (`cargo bench -p hearsay-benches` for those).
//! Nothing here gates on a wall-clock figure.

use chacha20::ChaCha8Rng;
use hearsay_benches::fixture_identity;
use hearsay_benches::frames::all_frames;
use hearsay_benches::pair::Receiver;
use hearsay_proto::antientropy::iblt::{Iblt, cells_for};
use hearsay_proto::broadcast::plumtree::{Message as Plum, Plumtree, SignatureValidator};
use hearsay_proto::crypto::{
    CryptoProvider, EncapsulationKeyBytes, InsecureTestProvider, PureRustProvider, SignatureBytes,
};
use hearsay_proto::privacy::envelope::{Sealed, open, seal};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{Config, Frame, Identity, IdentitySeeds};
use hearsay_tokio::AwsLcProvider;
use rand_core::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ options and helpers

#[derive(Debug, Clone)]
struct Options {
    quick: bool,
    big: bool,
    out: PathBuf,
    /// Sections to run (1 to 7); all by default.
    only: Vec<u8>,
}

impl Options {
    fn parse() -> Result<Options, String> {
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
    fn runs(&self, k: u8) -> bool {
        self.only.is_empty() || self.only.contains(&k)
    }

    /// `full` iterations normally, a tenth (at least `min`) with `--quick`.
    fn iters(&self, full: usize, min: usize) -> usize {
        if self.quick {
            (full / 10).max(min)
        } else {
            full
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Mean time per call of `f` over `n` calls (`f` gets the call's index).
fn time_per_op(n: usize, mut f: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed() / n.max(1) as u32
}

/// The lowest mean time per call of `f` over `rounds` rounds of `n / rounds` calls: robust to
/// the preemption spikes of a shared machine for calls of tens of nanoseconds.
fn best_per_op(n: usize, rounds: usize, mut f: impl FnMut(usize)) -> Duration {
    let per_round = (n / rounds.max(1)).max(1);
    (0..rounds.max(1))
        .map(|_| time_per_op(per_round, &mut f))
        .min()
        .unwrap_or_default()
}

fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

fn per_s(d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        1.0 / d.as_secs_f64()
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M/s", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.1} k/s", r / 1e3)
    } else {
        format!("{r:.0} /s")
    }
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Runs `cmd` and returns (stdout, wall time), or why it failed.
fn run_child(cmd: &mut Command) -> Result<(String, Duration), String> {
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

fn machine() -> String {
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

// ------------------------------------------------------------------ 1. crypto

#[derive(Debug, Clone, Copy)]
struct CryptoFigures {
    sign: Duration,
    verify: Duration,
    encaps: Duration,
    decaps: Duration,
}

fn crypto(provider: &dyn CryptoProvider, opts: &Options) -> CryptoFigures {
    let mut rng = ChaCha8Rng::from_seed([9; 32]);
    let identity = Identity::from_seeds(provider, IdentitySeeds::generate(&mut rng));
    // A record-sized message whose first eight bytes change per call: deterministic ML-DSA
    // signing of one fixed message always takes the same number of rejection rounds.
    let mut message = vec![0x5au8; 256];
    let n_sign = opts.iters(2_000, 200);
    let sign = time_per_op(n_sign, |i| {
        message[..8].copy_from_slice(&(i as u64).to_le_bytes());
        black_box(identity.signer().sign(black_box(&message)).expect("signs"));
    });
    // Verify distinct (message, signature) pairs, cycling through them.
    let pairs: Vec<(Vec<u8>, SignatureBytes)> = (0..64u64)
        .map(|k| {
            let mut m = vec![0xa5u8; 256];
            m[..8].copy_from_slice(&(k + 1_000_000).to_le_bytes());
            let sig = identity.signer().sign(&m).expect("signs");
            (m, sig)
        })
        .collect();
    let vk = identity.verifying_key().clone();
    let n_verify = opts.iters(5_000, 500);
    let verify = time_per_op(n_verify, |i| {
        let (m, s) = &pairs[i % pairs.len()];
        assert!(provider.verify(&vk, black_box(m), black_box(s)));
    });
    let ek = identity.encapsulation_key().clone();
    let n_kem = opts.iters(5_000, 500);
    let mut entropy = [0u8; 32];
    let encaps = time_per_op(n_kem, |_| {
        rng.fill_bytes(&mut entropy);
        black_box(provider.encapsulate(&ek, &entropy).expect("encapsulates"));
    });
    let cts: Vec<_> = (0..64)
        .map(|_| {
            rng.fill_bytes(&mut entropy);
            provider.encapsulate(&ek, &entropy).expect("encapsulates").0
        })
        .collect();
    let decaps = time_per_op(n_kem, |i| {
        black_box(
            identity
                .decapsulator()
                .decapsulate(&cts[i % cts.len()])
                .expect("decapsulates"),
        );
    });
    CryptoFigures {
        sign,
        verify,
        encaps,
        decaps,
    }
}

// ------------------------------------------------------------------ 2. node throughput

#[derive(Debug, Clone, Copy)]
struct Throughput {
    messages: usize,
    delivered: usize,
    per_message: Duration,
}

/// One receiving node fed `n` distinct pre-signed 1 KiB GOSSIP frames from its topic neighbour.
fn node_throughput(provider: Arc<dyn CryptoProvider>, n: usize) -> Result<Throughput, String> {
    let mut receiver = Receiver::new(provider)?;
    let frames = receiver.gossip_frames(0, n, 1024);
    let mut delivered = 0;
    let start = Instant::now();
    for frame in frames {
        delivered += receiver.feed(frame);
    }
    let elapsed = start.elapsed();
    Ok(Throughput {
        messages: n,
        delivered,
        per_message: elapsed / n.max(1) as u32,
    })
}

// ------------------------------------------------------------------ 3. wire, envelope, iblt

struct WireRow {
    kind: &'static str,
    name: &'static str,
    len: usize,
    encode: Duration,
    decode: Duration,
}

fn wire_rows(opts: &Options) -> Vec<WireRow> {
    all_frames()
        .into_iter()
        .map(|fixture| {
            let bytes = fixture.bytes();
            // About the same total work per frame: fewer iterations for big frames.
            let n = opts.iters(
                (400_000_000 / (bytes.len() + 200)).clamp(5_000, 200_000),
                5_000,
            );
            let frame = &fixture.frame;
            let encode = best_per_op(n, 5, |_| {
                black_box(black_box(frame).encode().expect("encodes"));
            });
            let decode = best_per_op(n, 5, |_| {
                black_box(Frame::decode_shared(black_box(&bytes)).expect("decodes"));
            });
            WireRow {
                kind: fixture.kind,
                name: fixture.name,
                len: bytes.len(),
                encode,
                decode,
            }
        })
        .collect()
}

fn envelope_rows(opts: &Options) -> Vec<(usize, Duration, Duration)> {
    let provider = PureRustProvider;
    let identities: Vec<Identity> = (0..100u8).map(fixture_identity).collect();
    let keys: Vec<EncapsulationKeyBytes> = identities
        .iter()
        .map(|i| i.encapsulation_key().clone())
        .collect();
    let plaintext = vec![0xa5u8; 1024];
    let mut rng = ChaCha8Rng::from_seed([42; 32]);
    [1usize, 10, 100]
        .into_iter()
        .map(|count| {
            let n = opts.iters(2_000 / count, 3).max(3);
            let seal_t = time_per_op(n, |_| {
                black_box(seal(&provider, &keys[..count], &plaintext, &mut rng).expect("seals"));
            });
            // Open as the recipient whose slot is tried last: one decapsulation per slot.
            let sealed = seal(&provider, &keys[..count], &plaintext, &mut rng).expect("seals");
            let me = &identities[count - 1];
            let mut slots = sealed.slots.clone().into_vec();
            let mine = slots
                .iter()
                .position(|slot| {
                    let single = Sealed {
                        content: sealed.content.clone(),
                        slots: BoundedVec::new(vec![slot.clone()]).expect("one slot"),
                    };
                    open(&single, me.decapsulator()).is_ok()
                })
                .expect("the recipient has a slot");
            let slot = slots.remove(mine);
            slots.push(slot);
            let worst = Sealed {
                content: sealed.content.clone(),
                slots: BoundedVec::new(slots).expect("same count"),
            };
            let open_t = time_per_op(n, |_| {
                black_box(open(black_box(&worst), me.decapsulator()).expect("opens"));
            });
            (count, seal_t, open_t)
        })
        .collect()
}

/// The `n`th id of a deterministic SplitMix64 stream.
fn id(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let mut z = n
            .wrapping_mul(4)
            .wrapping_add(i as u64)
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

fn iblt_rows(opts: &Options) -> Vec<(String, Duration)> {
    const SEED: [u8; 32] = [0x5e; 32];
    let mut rows = Vec::new();
    let ids: Vec<[u8; 32]> = (0..10_000).map(id).collect();
    let empty = Iblt::new(cells_for(1_000), SEED).expect("a valid size");
    let n = opts.iters(100, 10);
    let t = time_per_op(n, |_| {
        let mut table = empty.clone();
        for x in &ids {
            table.insert(black_box(x));
        }
        black_box(table);
    });
    rows.push(("insert 10 000 ids (table for d = 1 000)".to_string(), t));
    for d in [100u64, 1_000] {
        let mut a = Iblt::new(cells_for(d as usize), SEED).expect("a valid size");
        let mut b = a.clone();
        for k in 0..1_000 {
            a.insert(&id(k));
            b.insert(&id(k));
        }
        for k in 1_000..1_000 + d {
            if k % 2 == 0 {
                a.insert(&id(k));
            } else {
                b.insert(&id(k));
            }
        }
        let n = opts.iters(2_000, 100);
        let mut ok = true;
        let t = time_per_op(n, |_| {
            ok &= a.subtract(&b).and_then(Iblt::decode).is_ok();
        });
        let note = if ok { "" } else { " (decode failed)" };
        rows.push((format!("subtract + decode, d = {d}{note}"), t));
        let bytes = a.to_bytes();
        let t = time_per_op(n, |_| {
            black_box(Iblt::from_bytes(black_box(&bytes)).expect("parses"));
        });
        rows.push((format!("parse a d = {d} table ({} bytes)", bytes.len()), t));
    }
    rows
}

// ------------------------------------------------------------------ 6. plumtree receive path

fn plumtree_rows(opts: &Options) -> Vec<(String, Duration)> {
    use hearsay_benches::FIXTURE_NOW;
    use hearsay_benches::receive::{author, fresh, gossip, ids, ihave, replay, sender};
    let from = sender();
    let mut rows = Vec::new();
    let real = gossip(&author(&PureRustProvider), opts.iters(1_000, 200), 1024);
    let fake = gossip(
        &author(&InsecureTestProvider),
        opts.iters(4_096, 1_000),
        1024,
    );
    let validators: [(&str, SignatureValidator, &[Plum]); 3] = [
        (
            "pure-rust",
            SignatureValidator(Arc::new(PureRustProvider)),
            &real,
        ),
        (
            "aws-lc-rs",
            SignatureValidator(Arc::new(AwsLcProvider)),
            &real,
        ),
        (
            "insecure test provider",
            SignatureValidator(Arc::new(InsecureTestProvider)),
            &fake,
        ),
    ];
    for (name, validator, pool) in &validators {
        let n = pool.len();
        let total = replay(n as u64, pool, fresh, |p: &mut Plumtree, m| {
            p.handle_message(FIXTURE_NOW, from, m, validator);
            while p.poll().is_some() {}
        });
        rows.push((
            format!("new 1 KiB GOSSIP, validator {name} ({n} messages)"),
            total / n.max(1) as u32,
        ));
    }
    let insecure = &validators[2].1;
    // What the stand-in check itself costs (BLAKE3 over key and message, a signature-sized
    // output), to subtract from the insecure row.
    if let Plum::Gossip(p) = &fake[0] {
        let n = opts.iters(200_000, 20_000);
        let t = time_per_op(n, |_| {
            black_box(
                p.message
                    .verify(&InsecureTestProvider, black_box(&p.author_key)),
            )
            .ok();
        });
        rows.push((
            "(the insecure stand-in's signature check alone, 1 KiB message)".into(),
            t,
        ));
    }

    let mut seen = fresh();
    seen.handle_message(FIXTURE_NOW, from, fake[0].clone(), insecure);
    while seen.poll().is_some() {}
    let n = opts.iters(1_000_000, 100_000);
    let t = time_per_op(n, |_| {
        seen.handle_message(FIXTURE_NOW, from, black_box(fake[0].clone()), insecure);
        while seen.poll().is_some() {}
    });
    rows.push(("duplicate 1 KiB GOSSIP (dropped, PRUNE queued)".into(), t));

    let known = ids(&fake[..64]);
    let batch = ihave(&known);
    let n = opts.iters(20_000, 2_000);
    let mut total = Duration::ZERO;
    for _ in 0..n {
        let mut p = fresh();
        let start = Instant::now();
        p.handle_message(FIXTURE_NOW, from, black_box(batch.clone()), insecure);
        while p.poll().is_some() {}
        total += start.elapsed();
    }
    rows.push((
        "IHAVE of 64 unknown ids (64 missing entries, timers)".into(),
        total / n as u32,
    ));

    let mut holder = fresh();
    for m in &fake[..64] {
        holder.handle_message(FIXTURE_NOW, from, m.clone(), insecure);
    }
    while holder.poll().is_some() {}
    let n = opts.iters(200_000, 20_000);
    let t = time_per_op(n, |_| {
        holder.handle_message(FIXTURE_NOW, from, black_box(batch.clone()), insecure);
        while holder.poll().is_some() {}
    });
    rows.push(("IHAVE of 64 ids already held (ignored)".into(), t));
    let iwant = Plum::IWant(BoundedVec::new(known[..16].to_vec()).expect("16 ids fit"));
    let t = time_per_op(n, |_| {
        holder.handle_message(FIXTURE_NOW, from, black_box(iwant.clone()), insecure);
        while holder.poll().is_some() {}
    });
    rows.push(("IWANT of 16 held messages (16 repairs queued)".into(), t));
    rows
}

// ------------------------------------------------------------------ 4. simulator

/// The simulator binary: next to this one (same target directory), built on demand.
fn sim_binary() -> Result<PathBuf, String> {
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
struct SimCase {
    label: String,
    result: Result<(serde_json::Value, Duration), String>,
}

fn sim_case(bin: &Path, label: &str, scenario: &str, nodes: Option<usize>) -> SimCase {
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

fn metric(v: &serde_json::Value, path: &[&str]) -> String {
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

fn loopback(messages: usize) -> Result<(String, Duration), String> {
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

// ------------------------------------------------------------------ the report

fn main() {
    let opts = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("perf-report: {e}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let load_start = read_trimmed("/proc/loadavg");
    let mut md = String::new();
    let _ = writeln!(md, "# hearsay performance\n");
    let _ = writeln!(
        md,
        "Generated by `cargo run --release -p hearsay-benches --bin perf-report{}` \
         (benches/src/bin/perf-report.rs); rerun it to refresh every figure. \
         Mode: **{}**{}.\n",
        if opts.quick { " -- --quick" } else { "" },
        if opts.quick {
            "quick (fewer iterations)"
        } else {
            "full"
        },
        if opts.big {
            ", with the 100k-node run"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "**Noise warning.** Timings are means over `std::time::Instant` loops on a machine \
         that may be shared with other work; treat them as indicative (± tens of percent), \
         not as criterion-grade statistics. Nothing gates on them. Load average \
         (1/5/15 min, running/total, last pid) at start: `{load_start}`; at the end: see the \
         footer.\n"
    );
    let _ = writeln!(md, "## Machine\n\n{}", machine());

    // 1. crypto
    let pure: Arc<dyn CryptoProvider> = Arc::new(PureRustProvider);
    let aws: Arc<dyn CryptoProvider> = Arc::new(AwsLcProvider);
    let providers = [
        ("pure-rust (RustCrypto ml-dsa/ml-kem)", pure.clone()),
        ("aws-lc-rs (hearsay_tokio::AwsLcProvider)", aws.clone()),
    ];
    if opts.runs(1) || opts.runs(2) {
        eprintln!("perf-report: crypto");
    }
    let figures: Vec<CryptoFigures> = if opts.runs(1) || opts.runs(2) {
        providers.iter().map(|(_, p)| crypto(&**p, &opts)).collect()
    } else {
        Vec::new()
    };
    if opts.runs(1) {
        let _ = writeln!(
            md,
            "## 1. Post-quantum crypto per provider\n\n\
         ML-DSA-65 (deterministic, 256-byte messages varied per call) and ML-KEM-768. \
         Mean time per operation, and operations per second on one core.\n"
        );
        let _ = writeln!(
            md,
            "| Provider | ML-DSA-65 sign | ML-DSA-65 verify | ML-KEM-768 encaps | ML-KEM-768 decaps |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        for ((name, _), f) in providers.iter().zip(&figures) {
            let cell = |d: Duration| format!("{} ({})", fmt_dur(d), fmt_rate(per_s(d)));
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} |",
                cell(f.sign),
                cell(f.verify),
                cell(f.encaps),
                cell(f.decaps)
            );
        }
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-12);
        let _ = writeln!(
            md,
            "| *aws-lc-rs speed-up* | ×{:.2} | ×{:.2} | ×{:.2} | ×{:.2} |\n",
            ratio(figures[0].sign, figures[1].sign),
            ratio(figures[0].verify, figures[1].verify),
            ratio(figures[0].encaps, figures[1].encaps),
            ratio(figures[0].decaps, figures[1].decaps),
        );
        let _ = writeln!(
            md,
            "`AwsLcProvider` runs only ML-DSA verify and ML-KEM decapsulation on aws-lc-rs; \
             signing (deterministic, SPEC.md §3) and encapsulation (caller-supplied entropy) stay \
             on the pure-Rust crates by design (runtime-tokio/src/crypto.rs), so those two \
             columns should match within noise.\n"
        );
    }

    if opts.runs(2) {
        // 2. node throughput
        eprintln!("perf-report: node throughput");
        let n = opts.iters(5_000, 1_000);
        let _ = writeln!(
            md,
            "## 2. Node throughput: signed 1 KiB messages, end to end in process\n\n\
         Two `hearsay_proto::Node`s with a lossless in-memory pump become topic neighbours; \
         the receiver is then fed {n} distinct pre-signed 1 KiB Plumtree GOSSIP frames from \
         its neighbour through `Node::handle_frame` (decode, author-key check, ML-DSA-65 \
         verify, dedup, retention, delivery event), draining its transmits and events after \
         each. *Ratio* = messages accepted per second ÷ the provider's raw verify rate from \
         section 1 (the aim is ≥ 70 %).\n"
        );
        let _ = writeln!(
            md,
            "| Provider | Delivered | Per message | Beyond verify | Accepted/s | Raw verify/s | Ratio |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for ((name, p), f) in providers.iter().zip(&figures) {
            match node_throughput(p.clone(), n) {
                Ok(t) => {
                    let accepted = per_s(t.per_message);
                    let raw = per_s(f.verify);
                    let _ = writeln!(
                        md,
                        "| {name} | {} / {} | {} | {} | {} | {} | **{:.0} %** |",
                        t.delivered,
                        t.messages,
                        fmt_dur(t.per_message),
                        fmt_dur(t.per_message.saturating_sub(f.verify)),
                        fmt_rate(accepted),
                        fmt_rate(raw),
                        100.0 * accepted / raw.max(1e-9)
                    );
                }
                Err(e) => {
                    let _ = writeln!(md, "| {name} | failed: {e} | | | | | |");
                }
            }
        }
        match node_throughput(Arc::new(InsecureTestProvider), opts.iters(20_000, 2_000)) {
            Ok(t) => {
                let _ = writeln!(
                    md,
                    "| insecure test provider (BLAKE3 stand-in: the node's own cost) | {} / {} | {} | – | {} | – | – |",
                    t.delivered,
                    t.messages,
                    fmt_dur(t.per_message),
                    fmt_rate(per_s(t.per_message)),
                );
            }
            Err(e) => {
                let _ = writeln!(md, "| insecure test provider | failed: {e} | | | | | |");
            }
        }
        md.push('\n');
    }

    if opts.runs(3) {
        // 3. wire, envelope, iblt
        eprintln!("perf-report: wire, envelope, iblt");
        let _ = writeln!(
            md,
            "## 3. Wire codec, envelope encryption, IBLT\n\n\
         Frame encode (`Frame::encode`) and decode (`Frame::decode_shared`, what the node runs \
         on every received frame) of one realistic frame of every message the core sends \
         (`hearsay_benches::frames`: real signed records and messages, one address per peer, \
         an 8-peer SHUFFLE sample, a full 64-entry IHAVE, the default 64-cell sketch, ...). \
         Each figure is the best of five rounds' means (calls of tens of nanoseconds are \
         otherwise at the mercy of one preemption). Criterion: `cargo bench -p \
         hearsay-benches --bench wire`.\n"
        );
        let _ = writeln!(
            md,
            "| Kind | Message | Bytes | Encode | Decode | Encode MiB/s | Decode MiB/s |\n|---|---|---|---|---|---|---|"
        );
        let mib_s =
            |len: usize, d: Duration| len as f64 / (1 << 20) as f64 / d.as_secs_f64().max(1e-12);
        for r in wire_rows(&opts) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.0} | {:.0} |",
                r.kind,
                r.name,
                r.len,
                fmt_dur(r.encode),
                fmt_dur(r.decode),
                mib_s(r.len, r.encode),
                mib_s(r.len, r.decode),
            );
        }
        let _ = writeln!(
            md,
            "\nEnvelope encryption of 1 KiB (pure-rust provider; *open* as the recipient whose \
         slot is tried last, one ML-KEM decapsulation per slot):\n"
        );
        let _ = writeln!(
            md,
            "| Recipients | Seal | Open (worst slot) |\n|---|---|---|"
        );
        for (count, s, o) in envelope_rows(&opts) {
            let _ = writeln!(md, "| {count} | {} | {} |", fmt_dur(s), fmt_dur(o));
        }
        let _ = writeln!(md, "\nIBLT set reconciliation (1 000 shared ids):\n");
        let _ = writeln!(md, "| Operation | Time |\n|---|---|");
        for (name, t) in iblt_rows(&opts) {
            let _ = writeln!(md, "| {name} | {} |", fmt_dur(t));
        }
        md.push('\n');
    }

    if opts.runs(4) {
        // 4. simulator
        let _ = writeln!(
            md,
            "## 4. Simulator\n\n\
         Each case runs as its own `hearsay-sim run FILE --json OUT --quiet [--nodes N]` child \
         process, so the peak RSS (the simulator's own `peak_rss_mb`, VmHWM) is per case. \
         Simulator crypto is its fast stand-in (real sizes). Wall time is the child's; \
         events/s is the simulator's. RMR, LDH and latency are deterministic for a seed.\n"
        );
        let mut cases = vec![
            ("broadcast-100", "broadcast-100.toml", None),
            ("1k nodes", "scale-10k-broadcast.toml", Some(1_000)),
            ("10k nodes", "scale-10k-broadcast.toml", Some(10_000)),
        ];
        if opts.big {
            cases.push(("100k nodes", "scale-10k-broadcast.toml", Some(100_000)));
        }
        match sim_binary() {
            Ok(bin) => {
                let results: Vec<SimCase> = cases
                    .iter()
                    .map(|(label, file, nodes)| sim_case(&bin, label, file, *nodes))
                    .collect();
                let _ = writeln!(
                    md,
                    "| Case | Scenario | Nodes | Wall | Events | Events/s | Peak RSS | Memory/node | \
                 Delivery | RMR | LDH max | Latency p50 / p95 / p99 |"
                );
                let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
                for (case, (_, file, _)) in results.iter().zip(&cases) {
                    match &case.result {
                        Ok((v, wall)) => {
                            let _ = writeln!(
                                md,
                                "| {} | {file} | {} | {:.1} s | {} | {} | {} MB | {} KB | {} | {} | {} | {} / {} / {} ms |",
                                case.label,
                                v["nodes"],
                                wall.as_secs_f64(),
                                metric(v, &["events"]),
                                metric(v, &["events_per_s"]),
                                metric(v, &["peak_rss_mb"]),
                                metric(v, &["memory_per_node_kb"]),
                                metric(v, &["delivery_ratio"]),
                                metric(v, &["rmr"]),
                                metric(v, &["ldh_max"]),
                                metric(v, &["latency_ms", "p50"]),
                                metric(v, &["latency_ms", "p95"]),
                                metric(v, &["latency_ms", "p99"]),
                            );
                        }
                        Err(e) => {
                            let _ =
                                writeln!(md, "| {} | {file} | failed: {e} |||||||||||", case.label);
                        }
                    }
                }
                if !opts.big {
                    let _ = writeln!(md, "\n100k nodes: not run (pass `--big`).");
                }
            }
            Err(e) => {
                let _ = writeln!(md, "Simulator not run: {e}");
            }
        }
        let _ = writeln!(
            md,
            "\nIn process, through the library API (`hearsay_benches::simulate::SCENARIO`, the \
         scenario of `cargo bench -p hearsay-benches --bench sim`: N nodes join, all subscribe, \
         50 messages of 1 KiB at 10/s; 20 virtual seconds; fast stand-in crypto; set-up \
         excluded). The simulator counts one *event* per item its scheduler pops \
         (`World::events_processed`: a frame handed to a node, a node timer, a dial, a \
         scripted action); frames are those handed to nodes (`LinkStats::delivered`).\n"
        );
        let _ = writeln!(
            md,
            "| Nodes | Events | Frames delivered | Wall | Events/s | Frames/s | Virtual ÷ wall time |\n|---|---|---|---|---|---|---|"
        );
        for nodes in [50, 200] {
            eprintln!("perf-report: simulator in process, {nodes} nodes");
            match hearsay_benches::simulate::run(nodes) {
                Ok(r) => {
                    let _ = writeln!(
                        md,
                        "| {nodes} | {} | {} | {} | {} | {} | ×{:.0} |",
                        r.events,
                        r.frames,
                        fmt_dur(r.wall),
                        fmt_rate(r.events_per_s()),
                        fmt_rate(r.frames_per_s()),
                        r.virtual_time.as_secs_f64() / r.wall.as_secs_f64().max(1e-9),
                    );
                }
                Err(e) => {
                    let _ = writeln!(md, "| {nodes} | failed: {e} ||||||");
                }
            }
        }
        md.push('\n');
    }

    if opts.runs(5) {
        // 5. real nodes
        let messages = if opts.quick { 50 } else { 100 };
        let _ = writeln!(
            md,
            "## 5. Real nodes over loopback QUIC\n\n\
         `cargo run --release -p hearsay-tokio --example loopback_bench -- 10 {messages}`: 10 \
         nodes in one process on 127.0.0.1 (aws-lc-rs crypto, post-quantum TLS), {messages} \
         messages of 1 KiB, one every 20 ms from a random node. Its output:\n"
        );
        match loopback(messages) {
            Ok((out, wall)) => {
                let _ = writeln!(md, "| Figure | Value |\n|---|---|");
                for line in out.lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        let _ = writeln!(md, "| {} | {} |", k.trim(), v.trim());
                    }
                }
                let _ = writeln!(
                    md,
                    "| wall time of the child (cargo up-to-date check included) | {:.1} s |",
                    wall.as_secs_f64()
                );
            }
            Err(e) => {
                let _ = writeln!(md, "Not run: {e}");
            }
        }
    }

    if opts.runs(6) {
        // 6. Plumtree receive path
        eprintln!("perf-report: plumtree receive path");
        let _ = writeln!(
            md,
            "\n## 6. Plumtree receive path\n\n\
         One topic's `Plumtree::handle_message` with five eager neighbours (the default active \
         view, so a new message is delivered and pushed on to four peers), outputs drained \
         (`hearsay_benches::receive`). A new message is checked by `SignatureValidator` with \
         the named provider; the insecure test provider's stand-in leaves the state machine's \
         own cost. Section 2 is the same path inside a whole node (`Node::handle_frame`). \
         Criterion: `cargo bench -p hearsay-benches --bench plumtree`.\n"
        );
        let _ = writeln!(md, "| Input | Per call | Calls/s |\n|---|---|---|");
        for (name, t) in plumtree_rows(&opts) {
            let _ = writeln!(md, "| {name} | {} | {} |", fmt_dur(t), fmt_rate(per_s(t)));
        }
    }

    if opts.runs(7) {
        // 7. QUIC throughput between two nodes
        use hearsay_benches::quic::Case;
        let (small, big) = if opts.quick {
            (1_000, 200)
        } else {
            (5_000, 1_000)
        };
        let cases = [
            Case {
                size: 1024,
                count: small,
                window: None,
            },
            Case {
                size: 64 * 1024,
                count: big,
                window: None,
            },
            Case {
                size: 64 * 1024,
                count: big,
                window: Some(16),
            },
        ];
        let _ = writeln!(
            md,
            "\n## 7. QUIC throughput between two nodes on loopback\n\n\
         Per case, a fresh pair of `hearsay_tokio` nodes in one process (tokio, 2 worker \
         threads) on 127.0.0.1, default `TransportConfig`: B bootstraps from A and both \
         subscribe to one topic. A then publishes the case's messages, awaiting each \
         `NodeHandle::publish` (A signs every message), while a task on B reads its \
         subscription. *Back to back*: nothing else, as fast as the API accepts; *window of \
         W*: A also waits while W of its messages are not yet delivered at B (an in-process \
         oracle a real application lacks: what the link sustains without overrunning the \
         driver's bounded per-peer send queue, 4 MiB by default). Rates run from the first \
         publish to the last delivery (when messages were lost, over the delivered ones \
         only); a case ends when all arrived, nothing arrived for {} s, or {} s after the \
         last publish. *Lagged*: deliveries B's subscriber lost to its bounded buffer; *overflows*: \
         peers disconnected because their send queue overflowed (`hearsay_benches::quic`). \
         TLS is aws-lc-rs (X25519MLKEM768) in every row; the insecure rows swap the \
         protocol's ML-DSA signatures for the test stand-in, leaving the transport's \
         ceiling.\n",
            hearsay_benches::quic::STALL.as_secs(),
            hearsay_benches::quic::DEADLINE.as_secs()
        );
        let _ = writeln!(
            md,
            "| Protocol crypto | Payload | Publishing | Delivered / published | Lagged | Publish accepted/s | Delivered msg/s | Payload MiB/s | Wall | Frames / MiB out (A) | Overflows / write stalls |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
        let configs = [
            ("aws-lc-rs (default)", hearsay_tokio::default_config()),
            (
                "insecure test provider",
                Config {
                    crypto: Arc::new(InsecureTestProvider),
                    ..Config::default()
                },
            ),
        ];
        for (name, config) in configs {
            eprintln!("perf-report: QUIC throughput, {name}");
            match hearsay_benches::quic::throughput(config, &cases) {
                Ok(runs) => {
                    for r in runs {
                        let [a, b] = &r.counters;
                        let _ = writeln!(
                            md,
                            "| {name} | {} KiB | {} | {} / {} | {} | {} | {} | {:.1} | {:.2} s | {} / {:.1} | {} / {} |",
                            r.case.size / 1024,
                            match r.case.window {
                                None => "back to back".to_string(),
                                Some(w) => format!("window of {w}"),
                            },
                            r.delivered,
                            r.published,
                            r.lagged,
                            fmt_rate(r.publish_per_s()),
                            fmt_rate(r.messages_per_s()),
                            r.mib_per_s(),
                            r.total_time.as_secs_f64(),
                            a.frames_out,
                            a.bytes_out as f64 / (1 << 20) as f64,
                            a.send_queue_overflows + b.send_queue_overflows,
                            a.write_stalls + b.write_stalls,
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(md, "| {name} | failed: {e} ||||||||||");
                }
            }
        }
    }

    let load_end = read_trimmed("/proc/loadavg");
    let _ = writeln!(
        md,
        "\n---\nReport took {:.0} s. Load average at the end: `{load_end}`.",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = std::fs::write(&opts.out, &md) {
        eprintln!("perf-report: cannot write {}: {e}", opts.out.display());
        std::process::exit(1);
    }
    print!("{md}");
    eprintln!("perf-report: wrote {}", opts.out.display());
}
