//! Writes valid inputs for the cargo-fuzz targets into a corpus directory, so the fuzzers start
//! from real frames and records instead of having to discover kilobytes of valid keys and
//! signatures by mutation. `fuzz/run.sh` calls it; existing files are overwritten with the same
//! bytes (the fixtures are deterministic).
//!
//! Usage: `cargo run -p hearsay-benches --example fuzz_seeds -- CORPUS_DIR`

use hearsay_benches::{
    fixture_frame, fixture_gossip_frame, fixture_hello_frame, fixture_topic_frames,
};
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
    let mut seeds: Vec<(&str, String, Vec<u8>)> = seeds
        .into_iter()
        .map(|(t, n, b)| (t, n.to_string(), b))
        .collect();
    let mut topic_frames = fixture_topic_frames();
    topic_frames.push(("gossip", fixture_gossip_frame(64)));
    for (name, frame) in topic_frames {
        seeds.push(("frame_decode", format!("seed-{name}"), frame.to_vec()));
        // node_frames reads records [op (even: a frame), len_hi, len_lo, frame...], then a wait.
        let mut record = vec![0u8, (frame.len() >> 8) as u8, frame.len() as u8];
        record.extend_from_slice(&frame);
        record.extend_from_slice(&[1, 0x02, 0x00]);
        seeds.push(("node_frames", format!("seed-{name}"), record));
    }
    for (target, name, bytes) in seeds {
        let dir = corpus.join(target);
        let written =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(&name), &bytes));
        if let Err(e) = written {
            eprintln!(
                "fuzz_seeds: cannot write {}: {e}",
                dir.join(&name).display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
