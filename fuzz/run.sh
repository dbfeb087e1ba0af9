#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS seconds each (libFuzzer's -max_total_time).
# Usage: fuzz/run.sh SECONDS
# Needs a nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz if missing.
# Findings land in fuzz/artifacts/TARGET/, the growing corpus in fuzz/corpus/TARGET/ (seeded
# with valid inputs by `cargo run -p hearsay-benches --example fuzz_seeds`); the inputs of
# fixed bugs are kept in fuzz/regressions/TARGET/ and replayed by every run.
set -euo pipefail

if [[ $# -ne 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 SECONDS" >&2
    exit 2
fi
seconds=$1

# cargo-fuzz finds the fuzz/ directory from the project root.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "cargo-fuzz not found; installing it" >&2
    cargo install cargo-fuzz --locked
fi

# Valid frames and records to start from: they are several KiB of keys and signatures that
# mutation alone would never find.
cargo run --quiet -p hearsay-benches --example fuzz_seeds -- fuzz/corpus

targets=$(cargo fuzz list)
if [[ -z $targets ]]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

for target in $targets; do
    echo "=== fuzzing $target for ${seconds}s" >&2
    # A Hello frame is ~6.6 KiB; libFuzzer's default -max_len of 4 KiB would cut every seed.
    # fuzz/regressions/TARGET holds the inputs of bugs found and fixed (tracked in git): they
    # run first, every time.
    corpora=("fuzz/corpus/$target")
    mkdir -p "${corpora[0]}"
    if [[ -d fuzz/regressions/$target ]]; then
        corpora+=("fuzz/regressions/$target")
    fi
    cargo +nightly fuzz run "$target" "${corpora[@]}" -- -max_total_time="$seconds" -max_len=16384
done
