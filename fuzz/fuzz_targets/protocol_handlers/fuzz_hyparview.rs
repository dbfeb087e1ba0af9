//! HyParView driven alone (see main.rs for the input format and what is checked).

use super::*;

fn info(b: u8) -> PeerInfo {
    PeerInfo {
        peer: peer(b),
        addresses: Addresses::default(),
    }
}

fn infos(input: &mut Input<'_>, max: usize) -> Vec<PeerInfo> {
    let n = usize::from(input.u8()) % (max + 1);
    (0..n).map(|_| info(input.u8())).collect()
}

fn hv_message(input: &mut Input<'_>) -> hyparview::Message {
    use hyparview::{Message, Priority};
    match input.u8() % 7 {
        0 => Message::Join,
        1 => Message::ForwardJoin {
            node: info(input.u8()),
            ttl: input.u8() % 8,
        },
        2 => Message::Neighbor {
            priority: if input.bool() {
                Priority::High
            } else {
                Priority::Low
            },
        },
        3 => Message::NeighborReply {
            accepted: input.bool(),
        },
        4 => Message::Disconnect,
        5 => Message::Shuffle {
            origin: info(input.u8()),
            ttl: input.u8() % 8,
            nodes: BoundedVec::new(infos(input, 8)).expect("at most 8"),
        },
        _ => Message::ShuffleReply {
            nodes: BoundedVec::new(infos(input, 8)).expect("at most 8"),
        },
    }
}

struct HvCheck {
    config: hyparview::Config,
    /// The active view as told by NeighborUp / NeighborDown.
    up: BTreeSet<PeerId>,
}

impl HvCheck {
    fn drain(&mut self, hv: &mut HyParView) {
        while let Some(out) = hv.poll() {
            match out {
                hyparview::Output::Send { to, message } => {
                    assert_ne!(to, me(), "HyParView sends to itself: {message:?}");
                    if let hyparview::Message::Shuffle { ttl, .. }
                    | hyparview::Message::ForwardJoin { ttl, .. } = message
                    {
                        assert!(ttl <= self.config.arwl.max(7), "a walk with ttl {ttl}");
                    }
                }
                hyparview::Output::Connect { peer, .. } => {
                    assert_ne!(peer, me(), "HyParView dials itself")
                }
                hyparview::Output::Disconnect { .. } => {}
                hyparview::Output::NeighborUp { peer } => {
                    assert!(self.up.insert(peer), "NeighborUp for an active peer");
                }
                hyparview::Output::NeighborDown { peer, .. } => {
                    assert!(self.up.remove(&peer), "NeighborDown for an inactive peer");
                }
                hyparview::Output::Evidence { peer, .. } => {
                    assert_ne!(peer, me(), "evidence about itself");
                    assert!(!self.up.contains(&peer), "a stray walk from an active neighbour");
                }
            }
        }
    }

    fn check(&self, hv: &HyParView) {
        let active: BTreeSet<PeerId> = hv.active().copied().collect();
        let passive: BTreeSet<PeerId> = hv.passive().copied().collect();
        assert!(
            active.len() <= self.config.active_view,
            "active view overflow"
        );
        assert!(
            passive.len() <= self.config.passive_view,
            "passive view overflow"
        );
        assert!(
            hv.lost().count() <= self.config.max_lost,
            "lost list overflow"
        );
        assert!(
            hv.attempts() <= self.config.max_pending,
            "too many attempts"
        );
        assert!(
            active.is_disjoint(&passive),
            "a peer is both active and passive"
        );
        assert!(!active.contains(&me()) && !passive.contains(&me()));
        assert!(!hv.wants_link(&me()), "HyParView wants a link to itself");
        assert_eq!(
            active, self.up,
            "NeighborUp/Down do not match the active view"
        );
    }
}

/// Config `[active, passive, lost, pending, arwl, prwl, shuffle_active, shuffle_passive, rate,
/// rng]`; ops (op % 12):
/// 0 `[from, addr?, message...]` a built message; 1 `[from, len(2), frame]` a decoded one
/// (node-level or topic HyParView); 2-5 `[peer]` link up, link down, failed, left;
/// 6 `[contacts...]` join; 7 `[introduce?, peer]` introduce or link; 8 `[infos...]` remember;
/// 9 leave; 10-11 `[jump?, ms(2)]` time passes, then `handle_timeout`.
pub(super) fn run_hyparview(input: &mut Input<'_>) {
    let config = hyparview::Config {
        active_view: 1 + usize::from(input.u8() % 6),
        passive_view: usize::from(input.u8() % 12),
        max_lost: usize::from(input.u8() % 5),
        max_pending: usize::from(input.u8() % 9),
        arwl: input.u8() % 7,
        prwl: input.u8() % 7,
        shuffle_active: usize::from(input.u8() % 5),
        shuffle_passive: usize::from(input.u8() % 9),
        join_rate: 1 + u32::from(input.u8() % 60),
        ..hyparview::Config::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(input.u8()));
    let mut clock = Clock { now: T0 };
    let mut hv = HyParView::new(config.clone(), me(), Addresses::default(), T0, &mut rng);
    let mut c = HvCheck {
        config,
        up: BTreeSet::new(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let now = clock.now;
        match input.u8() % 12 {
            0 => {
                let from = other(input.u8());
                let addresses = input.bool().then(Addresses::default);
                let message = hv_message(input);
                hv.handle_message(now, from, addresses, message, &mut rng);
            }
            1 => {
                let from = other(input.u8());
                let message = match frame(input) {
                    Some(Frame::Membership(m)) => Some(m),
                    Some(Frame::Topic(TopicMessage::Membership { message, .. })) => Some(message),
                    _ => None,
                };
                if let Some(m) = message {
                    hv.handle_message(now, from, Some(Addresses::default()), m, &mut rng);
                }
            }
            2 => hv.on_link_up(now, other(input.u8())),
            3 => hv.on_link_down(now, other(input.u8()), &mut rng),
            4 => hv.on_failed(now, other(input.u8()), &mut rng),
            5 => hv.on_left(now, other(input.u8()), &mut rng),
            6 => {
                let contacts = infos(input, 4);
                hv.join(now, contacts);
            }
            7 => {
                let introduce = input.bool();
                let who = info(input.u8());
                if introduce {
                    let _ = hv.introduce(now, who);
                } else {
                    let _ = hv.link(now, who);
                }
            }
            8 => {
                let peers = infos(input, 8);
                hv.remember(peers, &mut rng);
            }
            9 => {
                hv.leave();
                // Leaving forgets the views without NeighborDown (the owner says goodbye).
                c.drain(&mut hv);
                c.up.clear();
            }
            _ => {
                clock.step(input, hv.poll_timeout());
                hv.handle_timeout(clock.now, &mut rng);
                after_timeout(clock.now, hv.poll_timeout(), "HyParView");
            }
        }
        c.drain(&mut hv);
        c.check(&hv);
    }
}
