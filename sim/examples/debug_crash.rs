use hearsay_proto::TimeDelta;
use hearsay_sim::SIM_EPOCH;
use hearsay_sim::run::Sim;
use hearsay_sim::scenario::{Action, Selection};

fn main() {
    let n = 10;
    let mut w = Sim::builder()
        .nodes(n)
        .seed(1)
        .duration(TimeDelta::from_secs(60))
        .at(
            TimeDelta::ZERO,
            Action::Join {
                contacts: 1,
                spread: TimeDelta::ZERO,
            },
        )
        .at(
            TimeDelta::from_secs(5),
            Action::Crash {
                select: Selection::Ids(vec![3]),
                group: None,
            },
        )
        .build()
        .unwrap();
    w.record();
    w.run_until(SIM_EPOCH + TimeDelta::from_secs(4));
    let x = w.peer_id(3);
    for i in 0..n {
        let v = w.node(i).unwrap().inspect();
        println!(
            "{i}: active {} has3 {}",
            v.neighbors().count(),
            v.neighbors().any(|p| p == x)
        );
    }
    let n4 = w.node(4).unwrap();
    println!(
        "node4 poll_timeout {:?} now {:?} conns {:?} active {:?}",
        n4.poll_timeout().map(|t| t - SIM_EPOCH),
        w.now() - SIM_EPOCH,
        n4.inspect().connections().count(),
        n4.inspect().neighbors().count()
    );
    println!("{:?}", n4);
    w.run_until(SIM_EPOCH + TimeDelta::from_secs(12));
    for (t, i, e) in w.events() {
        if *t > SIM_EPOCH + TimeDelta::from_secs(4) {
            println!("{:?} {i} {e:?}", *t - SIM_EPOCH);
        }
    }
    for i in 0..n {
        if let Some(nd) = w.node(i) {
            println!(
                "{i} {:?} susp {:?}",
                nd.inspect().failure_detector_counters(),
                nd.inspect().suspects().collect::<Vec<_>>()
            );
        }
    }
}
