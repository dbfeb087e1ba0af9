use hearsay_proto::TimeDelta;
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::{CryptoChoice, World};

fn main() {
    let s = Scenario::load(std::path::Path::new("sim/scenarios/partition-remerge.toml")).unwrap();
    let mut w = World::new(s, 6, 20, CryptoChoice::Fast).unwrap();
    w.run_until(SIM_EPOCH + TimeDelta::from_secs(50));
    for ms in 0..1000 {
        w.run_until(SIM_EPOCH + TimeDelta::from_secs(50) + TimeDelta::from_millis(ms));
        eprintln!("t=50.{ms:03} events={}", w.events_processed());
    }
}
