//! SWIM's running totals.

/// Running totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Probes sent (direct pings that started a probe).
    pub probes: u64,
    /// Probe rounds of slow members skipped because the member's own PING arrived within
    /// the round: it is alive, and one prober per pair is enough (SPEC.md §14.1).
    pub probes_skipped: u64,
    /// Probes that needed helpers.
    pub indirect: u64,
    /// Suspicions started.
    pub suspicions: u64,
    /// Suspicions cleared by an ack or a refutation.
    pub cleared: u64,
    /// Dead verdicts.
    pub verdicts: u64,
    /// Times this node refuted a suspicion about itself.
    pub refutations: u64,
    /// Claims about this node with an incarnation it never had: lies, ignored (no
    /// refutation, no signature).
    pub future_incarnations: u64,
    /// Claims about this node at its incarnation that came within a probe period of its last
    /// refutation: not refuted again yet (at most one signature per period).
    pub refutations_deferred: u64,
    /// SUSPECT/DEAD claims about another peer above the latest incarnation this node knows it
    /// signed: neither acted on nor passed on.
    pub unverifiable_claims: u64,
    /// Acks and replies that matched no probe of ours from that sender.
    pub unexpected: u64,
    /// PING_REQs answered with a nack because the relay table was full.
    pub relays_refused: u64,
}
