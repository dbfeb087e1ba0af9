//! A small simulator scenario run through `hearsay_sim`'s library API (no child process), for
//! the simulator benchmark (`benches/sim.rs`) and perf-report's in-process figure.
//!
//! The simulator counts an *event* per item its discrete-event scheduler pops
//! ([`World::events_processed`]): a frame handed to a node, a node's timer, a dial completing,
//! a scripted action. Events per wall second is its throughput.

use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::{CryptoChoice, World};
use std::time::{Duration, Instant};

/// The scenario: `nodes` nodes join through one contact each, all subscribe to one topic, and
/// after 10 virtual seconds 50 messages of 1 KiB are published at 10 per second; 20 virtual
/// seconds in all, 10-100 ms link latency, no loss. The simulator's fast stand-in crypto.
pub const SCENARIO: &str = r#"
name = "bench: join, subscribe, 50 messages"
seed = 11
nodes = 50
duration = "20s"

[network]
latency = { dist = "uniform", min = "10ms", max = "100ms" }

[[events]]
at = "0s"
action = "join"
contacts = 1

[[events]]
at = "0s"
action = "subscribe"
topic = "t"
fraction = 1.0

[[events]]
at = "10s"
action = "publish"
topic = "t"
count = 50
rate = "10/s"
size = 1024
"#;

/// A world set up for [`SCENARIO`] with `nodes` nodes, not yet run.
pub fn world(nodes: usize) -> Result<World, String> {
    let scenario = Scenario::parse(SCENARIO, "bench.toml").map_err(|e| e.to_string())?;
    let seed = scenario.seed;
    World::new(scenario, seed, nodes, CryptoChoice::Fast).map_err(|e| e.0)
}

/// What one run did, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct SimRun {
    /// Nodes simulated.
    pub nodes: usize,
    /// Scheduler events processed.
    pub events: u64,
    /// Frames handed to nodes.
    pub frames: u64,
    /// Wall time of the run (set-up excluded).
    pub wall: Duration,
    /// Virtual time simulated.
    pub virtual_time: Duration,
}

impl SimRun {
    /// Events per wall second.
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Frames delivered per wall second.
    pub fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Sets up and runs [`SCENARIO`] with `nodes` nodes to its end.
pub fn run(nodes: usize) -> Result<SimRun, String> {
    let mut world = world(nodes)?;
    let start_at = world.now();
    let started = Instant::now();
    world.run();
    let wall = started.elapsed();
    let virtual_us = (world.now() - start_at).as_micros();
    Ok(SimRun {
        nodes,
        events: world.events_processed(),
        frames: world.link_stats().delivered,
        wall,
        virtual_time: Duration::from_micros(virtual_us),
    })
}
