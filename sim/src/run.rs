//! Running a scenario end to end, and the library API for building scenarios in code.

use crate::metrics::RunResult;
use crate::scenario::{Action, Expect, NetworkSpec, Scenario, ScheduledAction};
use crate::world::{CryptoChoice, SetupError, World};
use hearsay_proto::TimeDelta;
use std::collections::BTreeMap;
use std::time::Instant;

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Overrides the scenario's node count.
    pub nodes: Option<usize>,
    /// Crypto for the nodes.
    pub crypto: CryptoChoice,
    /// Show a progress bar on stderr (only if it is a terminal, and only after ~2 s).
    pub progress: bool,
    /// The scenario file, for the replay command.
    pub file: Option<String>,
    /// Count traffic by message kind (the result's `traffic`).
    pub traffic: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            seed: None,
            nodes: None,
            crypto: CryptoChoice::Fast,
            progress: false,
            file: None,
            traffic: false,
        }
    }
}

/// Runs `scenario` to its end and computes its metrics.
pub fn run_scenario(scenario: Scenario, opts: &RunOptions) -> Result<RunResult, SetupError> {
    let seed = opts.seed.unwrap_or(scenario.seed);
    let nodes = opts.nodes.unwrap_or(scenario.nodes);
    let baseline = crate::rss::rss_kb();
    let started = Instant::now();
    let mut world = World::new(scenario, seed, nodes, opts.crypto)?;
    if opts.traffic {
        world.count_traffic();
    }
    let end = world.end();
    let start = world.now();
    let total = (end - start).as_micros().max(1);
    let steps = 200u64;
    let mut bar: Option<indicatif::ProgressBar> = None;
    for k in 1..=steps {
        world.run_until(start + TimeDelta::from_micros(total / steps * k));
        if opts.progress && bar.is_none() && started.elapsed().as_secs_f64() > 2.0 {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(steps),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {percent}% of virtual time, {msg}",
            ) {
                b.set_style(style);
            }
            bar = Some(b);
        }
        if let Some(b) = &bar {
            b.set_position(k);
            b.set_message(format!("{} events", world.events_processed()));
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let wall = started.elapsed().as_secs_f64();
    Ok(world.finish(wall, baseline, opts.file.clone()))
}

/// Entry point of the library API: `Sim::builder().nodes(50).at(0, join).run()`.
#[derive(Debug)]
pub struct Sim;

impl Sim {
    /// A builder with the contract's defaults (100 nodes, seed 7, 120 s, default network).
    pub fn builder() -> SimBuilder {
        SimBuilder {
            scenario: Scenario {
                name: "built in code".to_string(),
                seed: 7,
                nodes: 100,
                duration: TimeDelta::from_secs(120),
                network: NetworkSpec::default(),
                config: BTreeMap::new(),
                events: Vec::new(),
                expects: Vec::new(),
            },
            crypto: CryptoChoice::Fast,
        }
    }
}

/// Builds a scenario in code.
#[derive(Debug, Clone)]
pub struct SimBuilder {
    scenario: Scenario,
    crypto: CryptoChoice,
}

impl SimBuilder {
    /// The scenario's name.
    pub fn name(mut self, name: &str) -> Self {
        self.scenario.name = name.to_string();
        self
    }
    /// Number of nodes.
    pub fn nodes(mut self, n: usize) -> Self {
        self.scenario.nodes = n;
        self
    }
    /// The seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.scenario.seed = seed;
        self
    }
    /// Virtual time to run.
    pub fn duration(mut self, d: TimeDelta) -> Self {
        self.scenario.duration = d;
        self
    }
    /// The link model.
    pub fn network(mut self, net: NetworkSpec) -> Self {
        self.scenario.network = net;
        self
    }
    /// A protocol configuration override, as in `[config]`.
    pub fn config(mut self, key: &str, value: crate::scenario::ConfigValue) -> Self {
        self.scenario.config.insert(key.to_string(), value);
        self
    }
    /// An action at virtual time `at`.
    pub fn at(mut self, at: TimeDelta, action: Action) -> Self {
        self.scenario.events.push(ScheduledAction {
            at,
            action,
            line: 0,
        });
        self
    }
    /// A bound on a metric.
    pub fn expect(mut self, metric: &str, min: Option<f64>, max: Option<f64>) -> Self {
        self.scenario.expects.push(Expect {
            metric: metric.to_string(),
            min,
            max,
            line: 0,
        });
        self
    }
    /// Real post-quantum crypto instead of the fast stand-in.
    pub fn crypto(mut self, crypto: CryptoChoice) -> Self {
        self.crypto = crypto;
        self
    }
    /// The scenario as built.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }
    /// Sets up the world without running it (to step it and inspect nodes in tests).
    pub fn build(self) -> Result<World, SetupError> {
        let (seed, nodes) = (self.scenario.seed, self.scenario.nodes);
        World::new(self.scenario, seed, nodes, self.crypto)
    }
    /// Runs to the end and returns the metrics.
    pub fn run(self) -> Result<RunResult, SetupError> {
        let opts = RunOptions {
            crypto: self.crypto,
            ..RunOptions::default()
        };
        run_scenario(self.scenario, &opts)
    }
}
