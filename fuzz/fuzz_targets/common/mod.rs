//! Helpers shared by the fuzz targets (not a target itself: `cargo fuzz list` names only the
//! `[[bin]]`s of fuzz/Cargo.toml). Each target includes it with `mod common;`.
#![allow(dead_code)]

use hearsay_proto::crypto::InsecureTestProvider;
use hearsay_proto::identity::record::Addresses;
use hearsay_proto::{Identity, IdentitySeeds, PeerRecord, TimeDelta, Timestamp};

/// The instant every target starts at (an epoch boundary for 10-minute epochs).
pub const T0: Timestamp = Timestamp::from_secs(1_800_000_000);

/// Reads a fuzz input front to back; past its end every read yields zeros (or nothing), so a
/// target never has to handle a short input specially.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_be_bytes(b)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A chunk prefixed by its 16-bit big-endian length.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.bytes(n)
    }

    /// Exactly `N` bytes, zero-padded at the end of the input.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.bytes(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }
}

/// A deterministic identity under the insecure test provider.
pub fn identity(seed: u8) -> Identity {
    let mut bytes = [seed; 96];
    bytes[0] = 0x5e;
    Identity::from_seeds(&InsecureTestProvider, IdentitySeeds::from_bytes(&bytes))
}

/// A record of `identity` issued at `at`, valid for `lifetime`.
pub fn record(identity: &Identity, at: Timestamp, lifetime: TimeDelta) -> PeerRecord {
    PeerRecord::issue(identity, Addresses::empty(), at, lifetime).expect("a record signs")
}
