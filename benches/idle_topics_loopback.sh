#!/usr/bin/env bash
# Idle cost of real nodes: N `hearsay run` processes on loopback, each subscribed to the same
# TOPICS idle topics; after SETTLE seconds, measures DUR seconds and prints bytes and frames sent
# per node per second (the node's own counters, `status --json`), CPU % of one core and RSS.
# Usage: benches/idle_topics_loopback.sh   (env: N=10 TOPICS=300 SETTLE=120 DUR=600 BIN=...)
# Traffic stays on 127.0.0.1. Build first: cargo build --release -p hearsay
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/hearsay}
N=${N:-10}; TOPICS=${TOPICS:-300}; SETTLE=${SETTLE:-120}; DUR=${DUR:-600}
R=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$R"; }
trap cleanup EXIT
topics=(); for i in $(seq 1 "$TOPICS"); do topics+=(--subscribe "t$i"); done
for i in $(seq 0 $((N - 1))); do "$BIN" --home "$R/n$i" identity create "n$i" >/dev/null; done
"$BIN" --home "$R/n0" run --identity n0 --bind 127.0.0.1:0 "${topics[@]}" >"$R/n0.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [[ -s $R/n0/node.addr ]] && break; sleep 0.1; done
for i in $(seq 1 $((N - 1))); do
    "$BIN" --home "$R/n$i" run --identity "n$i" --bind 127.0.0.1:0 \
        --bootstrap "$(cat "$R/n0/node.addr")" "${topics[@]}" >"$R/n$i.log" 2>&1 &
    pids+=($!)
done
sleep "$SETTLE"
snap() {
    for i in $(seq 0 $((N - 1))); do "$BIN" --home "$R/n$i" status --json | tr -d '\n'; echo; done
    for p in "${pids[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat"; done
    date +%s.%N
}
snap >"$R/before"
sleep "$DUR"
snap >"$R/after"
for p in "${pids[@]}"; do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done >"$R/rss"
python3 - "$R" "$N" "$TOPICS" <<'PY'
import json, os, sys
r, n, topics = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def read(name):
    lines = open(os.path.join(r, name)).read().split("\n")
    return [json.loads(l) for l in lines[:n]], [int(x) for x in lines[n:2 * n]], float(lines[2 * n])
(s0, c0, t0), (s1, c1, t1) = read("before"), read("after")
dt, hz = t1 - t0, os.sysconf("SC_CLK_TCK")
out = [(b["bytes_out"] - a["bytes_out"]) / dt for a, b in zip(s0, s1)]
frames = [(b["frames_out"] - a["frames_out"]) / dt for a, b in zip(s0, s1)]
cpu = [(y - x) / hz / dt * 100 for x, y in zip(c0, c1)]
rss = [int(x) / 1024 for x in open(os.path.join(r, "rss")).read().split()]
mean = lambda v: sum(v) / len(v)
print(f"{n} nodes, {topics} idle topics each, {dt:.0f} s measured")
print(f"bytes sent per node per s: mean {mean(out):.0f} (max {max(out):.0f}), {mean(out) / topics:.1f} per topic")
print(f"frames sent per node per s: mean {mean(frames):.1f}")
print(f"CPU per node (% of one core): mean {mean(cpu):.2f} (max {max(cpu):.2f})")
print(f"RSS per node: mean {mean(rss):.1f} MB (max {max(rss):.1f})")
PY
