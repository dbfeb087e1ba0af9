//! Peer scores acting at the node (SPEC.md §13.8): evidence from every protocol goes into one
//! score, and a peer whose score falls below the graylist threshold is cut off with its own
//! reason and refused a place afterwards.

use hearsay_proto::membership::swim::{Gossip, Message as Swim, Update};
use hearsay_proto::testing::{Victim, topic};
use hearsay_proto::testing::{insecure_config as config, insecure_identity as identity};
use hearsay_proto::wire::BoundedVec;
use hearsay_proto::{DownReason, Event, Frame, Identity, TimeDelta, Transmit};

/// A PING from `liar` carrying eight SUSPECT/DEAD claims about `victim` above its incarnation.
fn lies(victim: &Victim, seq: u64) -> Frame {
    let me = victim.node.peer_id();
    let inc = victim.node.inspect().incarnation();
    let updates: Vec<Gossip> = (1..=8u64)
        .map(|k| Gossip {
            update: if k % 2 == 0 {
                Update::Dead {
                    peer: me,
                    incarnation: inc + k,
                }
            } else {
                Update::Suspect {
                    peer: me,
                    incarnation: inc + k,
                    by: None,
                }
            },
            hops: 3,
        })
        .collect();
    Frame::FailureDetection(Swim::Ping {
        seq,
        want_view: false,
        updates: BoundedVec::new(updates).expect("8 updates"),
        rtt_us: None,
    })
}

fn down_reasons(v: &mut Victim, peer: &Identity) -> Vec<DownReason> {
    v.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::NeighborDown { peer: p, reason } if p == peer.peer_id() => Some(reason),
            _ => None,
        })
        .collect()
}

/// A neighbour that lies about this node (SUSPECT/DEAD at an incarnation it never had) costs
/// it no signature, and each lie is evidence: past the graylist (eleven lies with nothing to
/// its credit) the liar is cut off with reason `Misbehaved`, its link closed. Ten lies are
/// tolerated (an honest peer never sends one, but the threshold is the documented one).
#[test]
fn a_neighbour_lying_about_this_node_is_graylisted() {
    let h = identity(1);
    let mut v = Victim::subscribed(config(), topic(), &h);
    let liar = identity(7);
    v.connect(&liar);
    v.join(&liar);
    v.drain();
    // Ten lies (two PINGs of eight would be sixteen): send them one claim at a time.
    let me = v.node.peer_id();
    let inc = v.node.inspect().incarnation();
    for k in 1..=10u64 {
        let one = Frame::FailureDetection(Swim::Ping {
            seq: k,
            want_view: false,
            updates: BoundedVec::new(vec![Gossip {
                update: Update::Suspect {
                    peer: me,
                    incarnation: inc + k,
                    by: None,
                },
                hops: 3,
            }])
            .unwrap(),
            rtt_us: None,
        });
        v.send(&liar, one).expect("frame");
    }
    assert_eq!(
        v.counters().peers_graylisted,
        0,
        "ten lies are the threshold"
    );
    assert!(v.node.inspect().neighbors().any(|p| p == liar.peer_id()));
    v.drain();
    // Ten times that: the first PING past the threshold cuts it off.
    for seq in 0..13 {
        let _ = v.send(&liar, lies(&v, 100 + seq));
    }
    assert_eq!(v.counters().peers_graylisted, 1);
    assert_eq!(
        v.node.inspect().failure_detector_counters().refutations,
        0,
        "no lie made it sign"
    );
    assert!(v.node.inspect().score(&liar.peer_id()).abuse < -100);
    assert!(!v.node.inspect().neighbors().any(|p| p == liar.peer_id()));
    let transmits = v.transmits();
    assert!(
        transmits
            .iter()
            .any(|t| matches!(t, Transmit::Disconnect { peer } if *peer == liar.peer_id()))
    );
    assert_eq!(down_reasons(&mut v, &liar), vec![DownReason::Misbehaved]);
    // Coming straight back, its connection is refused while its score stays graylisted.
    let refused = v.counters().connections_refused;
    v.node.handle_connected(v.now, liar.peer_id());
    assert_eq!(v.counters().connections_refused, refused + 1);
    assert!(!v.node.inspect().connections().any(|p| p == liar.peer_id()));
    // The evidence decays (9/10 every 30 s): half an hour later it is forgiven.
    v.advance(TimeDelta::from_secs(1800));
    assert_eq!(v.node.inspect().score(&liar.peer_id()).abuse, 0);
    let refused = v.counters().connections_refused;
    v.connect(&liar);
    assert_eq!(v.counters().connections_refused, refused);
    assert!(v.node.inspect().connections().any(|p| p == liar.peer_id()));
}
