//! Writes valid inputs for the cargo-fuzz targets into a corpus directory, so the fuzzers start
//! from real frames and records instead of having to discover kilobytes of valid keys and
//! signatures by mutation. `fuzz/run.sh` calls it; existing files are overwritten with the same
//! bytes (the fixtures are deterministic).
//!
//! Usage: `cargo run -p hearsay-benches --example fuzz_seeds -- CORPUS_DIR`

use hearsay_benches::{fixture_frame, fixture_hello_frame};
use hearsay_proto::Frame;
use hearsay_proto::wire::{Goodbye, GoodbyeReason, SessionMessage};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(corpus) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds CORPUS_DIR");
        return ExitCode::from(2);
    };
    let Frame::Session(SessionMessage::Hello(hello)) = fixture_frame() else {
        unreachable!("the fixture frame is a Hello");
    };
    let goodbye = Frame::Session(SessionMessage::Goodbye(Goodbye {
        reason: GoodbyeReason::Leaving,
    }));
    let seeds = [
        ("frame_decode", "seed-hello", fixture_hello_frame().to_vec()),
        (
            "frame_decode",
            "seed-goodbye",
            goodbye.encode().expect("goodbye encodes").to_vec(),
        ),
        (
            "record_decode",
            "seed-record",
            hello.record.to_bytes().expect("record encodes"),
        ),
    ];
    for (target, name, bytes) in seeds {
        let dir = corpus.join(target);
        let written =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(name), &bytes));
        if let Err(e) = written {
            eprintln!("fuzz_seeds: cannot write {}: {e}", dir.join(name).display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
