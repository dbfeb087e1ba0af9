//! Announcements: IHAVE batches out, and what a node does with an IHAVE for a message it
//! lacks (wait "timeout 1", then GRAFT the announcers one by one).

use super::*;

impl Plumtree {
    pub(super) fn on_ihave(&mut self, now: Timestamp, from: PeerId, entries: Vec<Announcement>) {
        for a in entries {
            if self.seen.contains(&a.id) {
                self.optimize(from, a);
                continue;
            }
            if let Some(m) = self.missing.get_mut(&a.id) {
                if m.announcers.iter().all(|(p, _)| *p != from) {
                    if m.announcers.len() < self.config.max_announcers {
                        m.announcers.push_back((from, a.hops));
                    } else {
                        self.counters.overflow += 1;
                    }
                }
                continue;
            }
            if self.missing.len() >= self.config.max_missing {
                self.counters.overflow += 1;
                continue;
            }
            let mut announcers = VecDeque::new();
            announcers.push_back((from, a.hops));
            self.missing.insert(
                a.id,
                Missing {
                    announcers,
                    grafted: false,
                },
            );
            let at = now + self.ihave_wait(&from);
            self.deadlines.set(Timer::Missing(a.id), at);
        }
    }

    /// Sends the IHAVE entries waiting, in batches of at most [`MAX_IDS`].
    pub(super) fn flush_ihave(&mut self) {
        for (peer, entries) in core::mem::take(&mut self.pending_ihave) {
            for chunk in entries.chunks(MAX_IDS) {
                if let Ok(batch) = BoundedVec::new(chunk.to_vec()) {
                    self.out.push_back(Output::Send {
                        to: peer,
                        message: Message::IHave(batch),
                    });
                }
            }
        }
    }

    /// `id` is still missing at its deadline: GRAFT the next announcer (a demoted parent
    /// last), or give up.
    pub(super) fn still_missing(&mut self, now: Timestamp, id: MessageId) {
        let Some(m) = self.missing.get_mut(&id) else {
            return;
        };
        let demoted = &self.distrusted;
        let next = m
            .announcers
            .iter()
            .position(|(p, _)| demoted.iter().all(|(d, _)| d != p))
            .unwrap_or(0);
        match m.announcers.remove(next) {
            Some((peer, _)) => {
                m.grafted = true;
                let at = now + self.graft_wait(&peer);
                self.deadlines.set(Timer::Missing(id), at);
                self.counters.grafts_sent += 1;
                if !self.is_distrusted(&peer) {
                    self.lazy_peers.remove(&peer);
                    self.eager_peers.insert(peer);
                }
                let ids = BoundedVec::new(alloc::vec![id]).unwrap_or_default();
                self.out.push_back(Output::Send {
                    to: peer,
                    message: Message::Graft(ids),
                });
            }
            None => {
                self.missing.remove(&id);
                self.counters.missing_abandoned += 1;
            }
        }
    }
}
