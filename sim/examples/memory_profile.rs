//! Where a simulated node's memory goes: runs a scenario under a counting allocator and prints
//! the live heap after setup, at its peak and at the end, per node, with what the nodes hold
//! (records, retained messages) and what the shared byte-string store holds.
//!
//! Usage: `cargo run --release -p hearsay-sim --example memory_profile -- FILE [NODES]`.
//! Run it at two sizes (1,000 and 2,000 nodes, say): the difference over the difference in
//! nodes is the cost of one more node, free of the process's fixed costs.
#![allow(unsafe_code)] // the counting allocator below is the only unsafe code

use hearsay_proto::TopicId;
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::{CryptoChoice, World};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes currently allocated and their high-water mark.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn kib(bytes: usize) -> f64 {
    bytes as f64 / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(file) = args.get(1) else {
        eprintln!("usage: memory_profile FILE [NODES]");
        std::process::exit(2);
    };
    let scenario = match Scenario::load(std::path::Path::new(file)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let nodes = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(scenario.nodes);
    let seed = scenario.seed;
    let before = LIVE.load(Ordering::Relaxed);
    let mut world = match World::new(scenario, seed, nodes, CryptoChoice::Fast) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let setup = LIVE.load(Ordering::Relaxed) - before;
    let started = std::time::Instant::now();
    world.run();
    let wall = started.elapsed().as_secs_f64();
    let end = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let n = nodes.max(1);
    let running: Vec<usize> = (0..nodes).filter(|&i| world.node(i).is_some()).collect();
    let records: usize = running
        .iter()
        .filter_map(|&i| world.node(i))
        .map(|x| x.inspect().known_records())
        .sum();
    let topic = TopicId::from_name("t");
    let retained: usize = running
        .iter()
        .filter_map(|&i| world.node(i))
        .map(|x| x.inspect().retained(&topic))
        .sum();
    let per = |v: usize| v as f64 / running.len().max(1) as f64;
    let s = world.interner_stats();
    println!(
        "nodes {nodes}, {} events, {wall:.1} s",
        world.events_processed()
    );
    println!(
        "live heap after setup {:>10.0} KiB  ({:.2} KiB per node)",
        kib(setup),
        kib(setup) / n as f64
    );
    println!(
        "live heap, peak       {:>10.0} KiB  ({:.2} KiB per node)",
        kib(peak),
        kib(peak) / n as f64
    );
    println!(
        "live heap at the end  {:>10.0} KiB  ({:.2} KiB per node)",
        kib(end),
        kib(end) / n as f64
    );
    println!(
        "per running node: {:.1} cached records, {:.1} retained messages on topic \"t\"",
        per(records),
        per(retained)
    );
    println!(
        "interner: {} byte strings, {:.0} KiB ({:.2} KiB per node); {} hits, {} misses",
        s.entries,
        kib(s.bytes),
        kib(s.bytes) / n as f64,
        s.hits,
        s.misses
    );
    println!(
        "size_of: Node {} B, PeerRecord {} B",
        std::mem::size_of::<hearsay_proto::Node>(),
        std::mem::size_of::<hearsay_proto::PeerRecord>()
    );
}
