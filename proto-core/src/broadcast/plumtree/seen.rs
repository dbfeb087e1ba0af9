//! Admission to the seen-cache (SPEC.md §15.4): an id is never forgotten before its message
//! leaves the retention window, and one author holds at most `seen_per_author` ids.

use super::*;
use crate::broadcast::message::Admit;

impl Plumtree {
    /// Remembers `id` as seen until one tick past its window (so that no instant accepts a
    /// replay), if the seen-cache takes it; a refusal is counted.
    pub(super) fn admit_seen(
        &mut self,
        now: Timestamp,
        id: MessageId,
        author: &PeerId,
        expires: Timestamp,
    ) -> bool {
        match self
            .seen
            .admit(now, id, author, expires + TimeDelta::from_micros(1))
        {
            Admit::New => true,
            Admit::Seen => false,
            Admit::Full => {
                self.counters.seen_full += 1;
                false
            }
            Admit::AuthorFull => {
                self.counters.seen_author_full += 1;
                false
            }
        }
    }
}
