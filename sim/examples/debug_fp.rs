use hearsay_proto::node::{DownReason, Event};
use hearsay_proto::wire::Frame;
use hearsay_proto::{TimeDelta, Timestamp};
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::scenario::Scenario;
use hearsay_sim::world::{CryptoChoice, NodeState, World};

fn main() {
    let s = Scenario::load(std::path::Path::new("sim/scenarios/membership-loss10.toml")).unwrap();
    let mut w = World::new(s, 8, 100, CryptoChoice::Fast).unwrap();
    w.record();
    w.run_until(SIM_EPOCH + TimeDelta::from_secs(290));
    let evs: Vec<(Timestamp, usize, Event)> = w.events().to_vec();
    let mut shown = 0;
    for (t, i, e) in &evs {
        if let Event::NeighborDown {
            peer,
            reason: DownReason::Failed,
        } = e
        {
            let x = w.index_of(peer).unwrap();
            if w.state(x) != NodeState::Running {
                continue;
            }
            shown += 1;
            if shown > 2 {
                break;
            }
            println!("FP at {:?}: {i} declared {x} failed", *t - SIM_EPOCH);
            for d in w.deliveries() {
                if d.at + TimeDelta::from_secs(8) >= *t
                    && d.at <= *t
                    && ((d.from == *i && d.to == x) || (d.from == x && d.to == *i))
                {
                    let f = Frame::decode(&d.frame)
                        .map(|f| format!("{f:?}"))
                        .unwrap_or_else(|e| format!("{e:?}"));
                    println!(
                        "  {:?} {}->{} {}",
                        d.at - SIM_EPOCH,
                        d.from,
                        d.to,
                        &f[..f.len().min(150)]
                    );
                }
            }
            for (t2, j, e2) in &evs {
                if (*j == *i || *j == x)
                    && *t2 + TimeDelta::from_secs(20) >= *t
                    && *t2 <= *t + TimeDelta::from_secs(1)
                {
                    println!("  ev {:?} {j} {e2:?}", *t2 - SIM_EPOCH);
                }
            }
        }
    }
}
