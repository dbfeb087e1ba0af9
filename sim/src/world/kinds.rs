//! Traffic by message kind (`hearsay-sim run --traffic`): which messages honest nodes sent
//! during the idle window (or the whole run when a scenario has none), by frames and bytes.
//!
//! A frame is labelled by the first few variant names of its decoded debug form (for example
//! `Topic.Membership.Shuffle`): a diagnostic that never changes what a node does.

use std::collections::BTreeMap;

/// Names in a frame's debug form that are types, not message variants.
const NOT_VARIANTS: &[&str] = &[
    "TopicId",
    "PeerId",
    "Some",
    "None",
    "Timestamp",
    "Bytes",
    "MessageId",
    "Address",
    "Arc",
    "PeerRecord",
    "Ok",
    "Vec",
    "BoundedVec",
    "BoundedBytes",
    "PeerInfo",
    "Gossip",
];

/// Frames and bytes per label.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    rows: BTreeMap<String, (u64, u64)>,
}

impl Traffic {
    /// Counts one frame.
    pub(crate) fn count(&mut self, frame: &[u8]) {
        let label = match hearsay_proto::frame::Frame::decode(frame) {
            Ok(f) => label(&format!("{f:?}")),
            Err(_) => "(undecodable)".to_string(),
        };
        let e = self.rows.entry(label).or_default();
        e.0 += 1;
        e.1 += frame.len() as u64;
    }

    /// (label, frames, bytes), most bytes first.
    pub(crate) fn rows(&self) -> Vec<crate::metrics::TrafficRow> {
        let mut v: Vec<_> = self
            .rows
            .iter()
            .map(|(l, &(frames, bytes))| crate::metrics::TrafficRow {
                message: l.clone(),
                frames,
                bytes,
            })
            .collect();
        v.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.message.cmp(&b.message))
        });
        v
    }
}

/// The first three variant names of a debug form, joined with dots.
fn label(debug: &str) -> String {
    let b = debug.as_bytes();
    let mut words: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < b.len() && words.len() < 3 {
        let starts = b[i].is_ascii_uppercase() && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let st = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let w = &debug[st..i];
        if !NOT_VARIANTS.contains(&w) && !words.contains(&w) {
            words.push(w);
        }
    }
    words.join(".")
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_name_the_variants_not_the_types() {
        let l = super::label(
            "Topic(Membership { topic: TopicId(ab), message: Shuffle { origin: PeerInfo { peer: PeerId(1) } } })",
        );
        assert_eq!(l, "Topic.Membership.Shuffle");
        assert_eq!(
            super::label("FailureDetection(Ping { seq: 1 })"),
            "FailureDetection.Ping"
        );
    }
}
