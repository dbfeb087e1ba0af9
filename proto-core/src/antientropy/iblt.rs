//! Set reconciliation of 32-byte ids: an Invertible Bloom Lookup Table ([`Iblt`]) and a strata
//! estimator ([`StrataEstimator`]) that sizes it.
//!
//! The construction is the one of Eppstein, Goodrich, Uyeda and Varghese ("What's the
//! difference? Efficient set reconciliation without prior context", SIGCOMM 2011), on the IBLT of
//! Goodrich and Mitzenmacher. Two peers that want to learn how their sets of message ids differ
//! each summarise their set in a table of the same size and seed; one subtracts the other's table
//! from its own and [decodes](Iblt::decode) the result, which yields exactly the ids only it has
//! and the ids only the other has — whatever the size of the common part, as long as the table has
//! about 1.35–1.65 cells per differing id for differences of 100 or more, more for small ones
//! ([`cells_for`]). The estimator, a fixed 20 KB summary, tells how large the difference is before
//! a table is built ([`cells_for_estimate`]).
//!
//! Everything here is deterministic: the hash functions are BLAKE3 keyed by a 32-byte `seed` that
//! the caller supplies (both sides must use the same one), and no operation reads a clock or draws
//! randomness.
//!
//! # The table
//!
//! A table of `m` cells is split into [`HASH_COUNT`] (4) disjoint partitions of `⌊m/4⌋` or
//! `⌈m/4⌉` cells (partition `p` is cells `⌊p·m/4⌋ .. ⌊(p+1)·m/4⌋`). An id is added to one cell of
//! every partition, so its cells are always distinct. With `K = BLAKE3-derive("hearsay 2026-11
//! iblt v1", seed)` and `H = BLAKE3-keyed(K, id)` (32 bytes):
//!
//! - the id's *checksum* is `H[0..8]` as a little-endian `u64`;
//! - its cell in partition `p` is `start_p + ⌊h_p · len_p / 2³²⌋`, where `h_p` is `H[8+4p .. 12+4p]`
//!   as a little-endian `u32`.
//!
//! A cell holds `count` (ids added minus ids removed, a wrapping `i32`), `key_sum` (the XOR of
//! the ids) and `hash_sum` (the XOR of their checksums). A cell is *pure* when its count is ±1 and
//! the checksum of its `key_sum` equals its `hash_sum`: it then holds exactly one id (up to a 2⁻⁶⁴
//! false positive). Decoding repeatedly takes a pure cell's id out of the table ("peeling"); it
//! succeeds when every cell is empty, fails with [`IbltError::DecodeFailed`] when no pure cell is
//! left, and performs at most `m` peels, so it always terminates.
//!
//! Four hash functions rather than three: with three, small stuck sets (two differing ids in the
//! same three cells) are common enough that 100 differences in 170 cells decode in only 96.4% of
//! trials (measured), and 99% needs 2.5 cells per id; with four, 99.9% decode at 1.7 and 99% at
//! 1.52. The price, a peeling threshold of 1.30 cells per id instead of 1.22, does not show at
//! 1,000 or 10,000 differences, where four functions need 1.35 and 1.31 cells per id for 99%.
//!
//! ## Wire form of a table ([`Iblt::to_bytes`])
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, [`FORMAT_VERSION`] (1) |
//! | 1 | 32 | seed |
//! | 33 | 4 | `m`, the number of cells, `u32` big-endian, [`MIN_CELLS`] ≤ `m` ≤ [`MAX_CELLS`] |
//! | 37 | 44·`m` | the cells in index order |
//!
//! A cell is 44 bytes: `count` (`i32` big-endian, two's complement) ‖ `key_sum` (32 bytes) ‖
//! `hash_sum` (`u64` big-endian). The total length is exactly [`Iblt::encoded_len`]`(m)`;
//! [`Iblt::from_bytes`] refuses any other length, an unknown version or an out-of-range `m` with a
//! typed error, and never panics. Any cell contents are accepted: decoding a nonsensical table
//! fails, it does not misbehave. A 256 KiB frame (SPEC.md §6.2) holds a table of at most 5,956
//! cells, which [`cells_for`] gives for a difference of about 4,300: beyond that a table would
//! have to be split across frames, or the difference reconciled in parts.
//!
//! # The estimator
//!
//! A [`StrataEstimator`] has [`STRATA`] (16) strata of [`STRATUM_CELLS`] (80) cells. With
//! `K' = BLAKE3-derive("hearsay 2026-11 iblt strata v1", seed)` and `H = BLAKE3-keyed(K', id)`, an
//! id goes to stratum `min(trailing_zeros(H[8..16] as u64 LE), 15)` — half of the ids to stratum
//! 0, a quarter to stratum 1, and so on — where it is added as its 64-bit *fingerprint*
//! `f = H[0..8]` (LE) to a small IBLT: four partitions of 20 cells, the cell in partition `p`
//! being `20p + ⌊g_p · 20 / 2¹⁶⌋` with `g_p` the 16-bit lane `p` (least significant first) of
//! `mix(f ⊕ 0x9e3779b97f4a7c15)`, and the checksum being the low 32 bits of
//! `mix(f ⊕ 0xd1b54a32d192ed03)`, where `mix` is the SplitMix64 finaliser. Fingerprints suffice
//! because the estimator only counts.
//!
//! [`StrataEstimator::estimate`] decodes the difference stratum by stratum from the sparsest
//! (15) down; when stratum `i` fails to decode it returns the number of ids decoded so far (at
//! least 1) times 2^(i+1), or `usize::MAX` if `i` is 15; when all decode it returns the exact
//! count. Measured accuracy (tests/iblt_quality.rs,
//! 100 to 1,000 trials per difference): exact in ≥ 99.8% of trials up to a difference of 50 and in
//! 91% at 100; from 300 to 30,000 the estimate/true ratio has a median of 0.98–1.00, a 1st
//! percentile of 0.72–0.81 and a 99th of 1.19–1.37, with 95–98% of estimates within ±25%.
//! [`cells_for_estimate`] pads the estimate for that.
//!
//! ## Wire form of an estimator ([`StrataEstimator::to_bytes`])
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | format version, [`FORMAT_VERSION`] (1) |
//! | 1 | 32 | seed |
//! | 33 | 16·80·16 | the cells, stratum 0 first, each stratum in index order |
//!
//! A cell is 16 bytes: `count` (`i32` big-endian) ‖ fingerprint XOR (`u64` big-endian) ‖
//! checksum XOR (`u32` big-endian). The total is [`ESTIMATOR_ENCODED_LEN`] (20,513) bytes exactly.

use alloc::vec::Vec;
use core::fmt;

/// The number of hash functions: each id is added to this many cells, one per partition.
pub const HASH_COUNT: usize = 4;

/// The largest table, in cells.
pub const MAX_CELLS: usize = 65_536;

/// The smallest table, in cells: one per partition.
pub const MIN_CELLS: usize = HASH_COUNT;

/// The version byte that starts both wire forms.
pub const FORMAT_VERSION: u8 = 1;

/// Bytes of one table cell on the wire.
pub const CELL_LEN: usize = 44;

/// Bytes of a table's wire form before its cells.
pub const HEADER_LEN: usize = 37;

/// The number of strata of a [`StrataEstimator`].
pub const STRATA: usize = 16;

/// The number of cells of each stratum of a [`StrataEstimator`].
pub const STRATUM_CELLS: usize = 80;

/// Bytes of one estimator cell on the wire.
const STRATUM_CELL_LEN: usize = 16;

/// Bytes of an estimator's wire form.
pub const ESTIMATOR_ENCODED_LEN: usize = 33 + STRATA * STRATUM_CELLS * STRATUM_CELL_LEN;

/// BLAKE3 derivation contexts; part of the wire protocol.
const IBLT_CONTEXT: &str = "hearsay 2026-11 iblt v1";
const STRATA_CONTEXT: &str = "hearsay 2026-11 iblt strata v1";

/// Why a table could not be built, combined, decoded or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IbltError {
    /// A table must have between [`MIN_CELLS`] and [`MAX_CELLS`] cells.
    InvalidSize {
        /// The size asked for (or found on the wire).
        cells: usize,
    },
    /// The two tables differ in size or seed, so they cannot be subtracted.
    Mismatch,
    /// Peeling stopped with cells left non-empty: the difference is too large for the table.
    DecodeFailed,
    /// The wire form starts with a version byte other than [`FORMAT_VERSION`].
    UnknownVersion(u8),
    /// The wire form is not as long as its header says.
    WrongLength {
        /// The length the header (or the fixed layout) implies.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// The wire form is longer than the largest table's.
    TooLarge {
        /// The length received.
        len: usize,
    },
}

impl fmt::Display for IbltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IbltError::InvalidSize { cells } => write!(
                f,
                "an IBLT has {MIN_CELLS} to {MAX_CELLS} cells, not {cells}"
            ),
            IbltError::Mismatch => write!(f, "the IBLTs differ in size or seed"),
            IbltError::DecodeFailed => write!(f, "the IBLT difference could not be decoded"),
            IbltError::UnknownVersion(v) => write!(f, "unknown IBLT format version {v}"),
            IbltError::WrongLength { expected, actual } => {
                write!(f, "an encoded IBLT of {actual} bytes, expected {expected}")
            }
            IbltError::TooLarge { len } => write!(f, "an encoded IBLT of {len} bytes is too large"),
        }
    }
}

impl core::error::Error for IbltError {}

/// The outcome of decoding `a.subtract(&b)`: the ids only in `a` and the ids only in `b`, each
/// sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Difference {
    /// Ids in the subtracted-from table (`self`) but not in the other.
    pub ours: Vec<[u8; 32]>,
    /// Ids in the other table but not in `self`.
    pub theirs: Vec<[u8; 32]>,
}

impl Difference {
    /// The size of the symmetric difference.
    pub fn len(&self) -> usize {
        self.ours.len().saturating_add(self.theirs.len())
    }

    /// Whether the two sets were equal.
    pub fn is_empty(&self) -> bool {
        self.ours.is_empty() && self.theirs.is_empty()
    }
}

/// The table size to use for a symmetric difference of exactly `difference` ids: decoding then
/// succeeds in at least 99% of cases (measured by tests/iblt_quality.rs). That is 1.64 cells per
/// id at 100, 1.41 at 1,000, 1.35 from 10,000 on, and more for small differences (4 cells for 1,
/// 16 for 2, 48 for 10, 104 for 50). Saturates at [`MAX_CELLS`] (so differences above about
/// 48,000 cannot be decoded in one table); a difference of 0 gets the size for 1.
///
/// For a difference estimated by [`StrataEstimator::estimate`], use [`cells_for_estimate`].
pub fn cells_for(difference: usize) -> usize {
    // (difference, cells) anchors: the smallest size decoding ≥ 99.5% of seeded trials
    // (10,000 trials up to d = 200, 500 at d = 10,000; tests/iblt_quality.rs `calibrate`) plus
    // a margin (3-8%, 10-20% below 100 where cells are cheap); linear in between, 1.35 cells per
    // id beyond.
    const ANCHORS: [(usize, usize); 13] = [
        (1, 4),
        (2, 16),
        (3, 24),
        (5, 32),
        (10, 48),
        (20, 68),
        (50, 104),
        (100, 164),
        (200, 308),
        (500, 728),
        (1_000, 1_408),
        (3_000, 4_120),
        (10_000, 13_500),
    ];
    let d = difference.max(1);
    let mut prev = (1usize, 4usize);
    let mut cells = None;
    for (ad, ac) in ANCHORS {
        if d <= ad {
            // prev.0 < d ≤ ad here unless d is the first anchor.
            let span = ad.saturating_sub(prev.0).max(1);
            let rise = ac.saturating_sub(prev.1);
            let step = d.saturating_sub(prev.0);
            cells = Some(
                prev.1
                    .saturating_add(rise.saturating_mul(step).div_ceil(span)),
            );
            break;
        }
        prev = (ad, ac);
    }
    let cells = cells.unwrap_or_else(|| d.saturating_mul(27).div_ceil(20));
    // A multiple of HASH_COUNT keeps the partitions equal.
    cells
        .div_ceil(HASH_COUNT)
        .saturating_mul(HASH_COUNT)
        .clamp(MIN_CELLS, MAX_CELLS)
}

/// The table size to use for a difference estimated by [`StrataEstimator::estimate`]:
/// [`cells_for`] of the estimate padded by 40%, because the estimator underestimates by up to
/// about 28% in 1% of cases. With it, estimate-then-decode succeeds in at least 99% of cases
/// (tests/iblt_quality.rs). `usize::MAX` ("too different") gives [`MAX_CELLS`].
pub fn cells_for_estimate(estimate: usize) -> usize {
    cells_for(estimate.saturating_add(estimate.saturating_mul(2) / 5))
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Cell {
    count: i32,
    key_sum: [u8; 32],
    hash_sum: u64,
}

impl Cell {
    fn is_empty(&self) -> bool {
        self.count == 0 && self.hash_sum == 0 && self.key_sum == [0; 32]
    }

    fn toggle(&mut self, id: &[u8; 32], check: u64, delta: i32) {
        self.count = self.count.wrapping_add(delta);
        for (s, b) in self.key_sum.iter_mut().zip(id) {
            *s ^= b;
        }
        self.hash_sum ^= check;
    }
}

/// The keyed hash of one id: its checksum and one 32-bit word per partition.
struct ItemHash {
    check: u64,
    words: [u32; HASH_COUNT],
}

fn le_words(bytes: &[u8; 32]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (w, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        if let &[a, b, c, d] = c {
            *w = u32::from_le_bytes([a, b, c, d]);
        }
    }
    out
}

fn hash_item(key: &[u8; 32], id: &[u8; 32]) -> ItemHash {
    let [c0, c1, w0, w1, w2, w3, _, _] = le_words(blake3::keyed_hash(key, id).as_bytes());
    ItemHash {
        check: u64::from(c0) | (u64::from(c1) << 32),
        words: [w0, w1, w2, w3],
    }
}

/// Where each partition of a table starts, and its length.
fn partitions(cells: usize) -> [(usize, u64); HASH_COUNT] {
    let mut out = [(0, 0); HASH_COUNT];
    for (p, slot) in out.iter_mut().enumerate() {
        let start = cells.saturating_mul(p) / HASH_COUNT;
        let end = cells.saturating_mul(p.saturating_add(1)) / HASH_COUNT;
        *slot = (start, end.saturating_sub(start) as u64);
    }
    out
}

/// An Invertible Bloom Lookup Table of 32-byte ids (see the [module docs](self)).
#[derive(Clone, PartialEq, Eq)]
pub struct Iblt {
    seed: [u8; 32],
    key: [u8; 32],
    parts: [(usize, u64); HASH_COUNT],
    cells: Vec<Cell>,
}

impl fmt::Debug for Iblt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nonempty = self.cells.iter().filter(|c| !c.is_empty()).count();
        f.debug_struct("Iblt")
            .field("cells", &self.cells.len())
            .field("nonempty", &nonempty)
            .finish_non_exhaustive()
    }
}

impl Iblt {
    /// An empty table of `cells` cells whose hash functions are keyed by `seed`. Both sides of a
    /// reconciliation must use the same size and seed. `cells` must be between [`MIN_CELLS`] and
    /// [`MAX_CELLS`]; [`cells_for`] gives the size for an expected difference.
    pub fn new(cells: usize, seed: [u8; 32]) -> Result<Self, IbltError> {
        if !(MIN_CELLS..=MAX_CELLS).contains(&cells) {
            return Err(IbltError::InvalidSize { cells });
        }
        Ok(Self {
            seed,
            key: blake3::derive_key(IBLT_CONTEXT, &seed),
            parts: partitions(cells),
            cells: alloc::vec![Cell::default(); cells],
        })
    }

    /// The number of cells.
    pub fn cells(&self) -> usize {
        self.cells.len()
    }

    /// Whether every cell is empty: nothing was added, or exactly what was added was removed.
    pub fn is_empty(&self) -> bool {
        self.cells.iter().all(Cell::is_empty)
    }

    /// The seed the hash functions are keyed by.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    fn indices(&self, h: &ItemHash) -> impl Iterator<Item = usize> + use<> {
        let parts = self.parts;
        parts
            .into_iter()
            .zip(h.words)
            .map(|((start, len), w)| start.saturating_add(((u64::from(w) * len) >> 32) as usize))
    }

    fn apply(&mut self, id: &[u8; 32], delta: i32) {
        let h = hash_item(&self.key, id);
        for i in self.indices(&h) {
            if let Some(cell) = self.cells.get_mut(i) {
                cell.toggle(id, h.check, delta);
            }
        }
    }

    /// Adds `id`. Adding an id twice counts it twice.
    pub fn insert(&mut self, id: &[u8; 32]) {
        self.apply(id, 1);
    }

    /// Removes `id`, undoing one [`insert`](Self::insert) of it. Removing an id that was never
    /// inserted records it as a negative entry, which decoding reports in
    /// [`Difference::theirs`].
    pub fn remove(&mut self, id: &[u8; 32]) {
        self.apply(id, -1);
    }

    /// The table of `self − other`: the ids of both sets cancel and only their difference is
    /// left, ready to [`decode`](Self::decode). The tables must have the same size and seed.
    pub fn subtract(&self, other: &Iblt) -> Result<Iblt, IbltError> {
        if self.cells.len() != other.cells.len() || self.seed != other.seed {
            return Err(IbltError::Mismatch);
        }
        let cells = self
            .cells
            .iter()
            .zip(&other.cells)
            .map(|(a, b)| {
                let mut c = *a;
                c.toggle(&b.key_sum, b.hash_sum, b.count.wrapping_neg());
                c
            })
            .collect();
        Ok(Iblt {
            seed: self.seed,
            key: self.key,
            parts: self.parts,
            cells,
        })
    }

    fn pure_sign(&self, i: usize) -> Option<(i32, [u8; 32], ItemHash)> {
        let cell = self.cells.get(i)?;
        if cell.count != 1 && cell.count != -1 {
            return None;
        }
        let h = hash_item(&self.key, &cell.key_sum);
        (h.check == cell.hash_sum).then_some((cell.count, cell.key_sum, h))
    }

    /// Lists the ids of the table by peeling pure cells: on a table from
    /// [`subtract`](Self::subtract), the ids only in `self` and the ids only in the other. Fails
    /// with [`IbltError::DecodeFailed`] if cells are left that cannot be peeled — the table was
    /// too small for the difference — and never takes more than one peel per cell.
    pub fn decode(mut self) -> Result<Difference, IbltError> {
        let mut out = Difference::default();
        let mut stack: Vec<usize> = (0..self.cells.len())
            .filter(|&i| {
                self.cells
                    .get(i)
                    .is_some_and(|c| c.count.unsigned_abs() == 1)
            })
            .collect();
        let mut budget = self.cells.len();
        while let Some(i) = stack.pop() {
            let Some((sign, id, h)) = self.pure_sign(i) else {
                continue;
            };
            // Every genuine peel empties a cell for good; only checksum false positives on a
            // corrupt table could go on longer.
            budget = budget.checked_sub(1).ok_or(IbltError::DecodeFailed)?;
            for j in self.indices(&h) {
                if let Some(cell) = self.cells.get_mut(j) {
                    cell.toggle(&id, h.check, sign.wrapping_neg());
                    if cell.count.unsigned_abs() == 1 {
                        stack.push(j);
                    }
                }
            }
            if sign == 1 {
                out.ours.push(id);
            } else {
                out.theirs.push(id);
            }
        }
        if !self.is_empty() {
            return Err(IbltError::DecodeFailed);
        }
        out.ours.sort_unstable();
        out.theirs.sort_unstable();
        Ok(out)
    }

    /// The length of the wire form of a table of `cells` cells.
    pub const fn encoded_len(cells: usize) -> usize {
        HEADER_LEN + CELL_LEN * cells
    }

    /// The wire form (layout in the [module docs](self)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.cells.len()));
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.seed);
        // new() and from_bytes() bound the size by MAX_CELLS, which fits a u32.
        out.extend_from_slice(&(self.cells.len() as u32).to_be_bytes());
        for c in &self.cells {
            out.extend_from_slice(&c.count.to_be_bytes());
            out.extend_from_slice(&c.key_sum);
            out.extend_from_slice(&c.hash_sum.to_be_bytes());
        }
        out
    }

    /// Parses the wire form. Refuses, with a typed error and without panicking, an unknown
    /// version, a size outside [`MIN_CELLS`]..=[`MAX_CELLS`], or a length other than the one
    /// the header implies.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IbltError> {
        let actual = bytes.len();
        if actual > Self::encoded_len(MAX_CELLS) {
            return Err(IbltError::TooLarge { len: actual });
        }
        let short = IbltError::WrongLength {
            expected: HEADER_LEN,
            actual,
        };
        let (&version, rest) = bytes.split_first().ok_or(short)?;
        if version != FORMAT_VERSION {
            return Err(IbltError::UnknownVersion(version));
        }
        let (seed, rest) = rest.split_first_chunk::<32>().ok_or(short)?;
        let (m, body) = rest.split_first_chunk::<4>().ok_or(short)?;
        let m = usize::try_from(u32::from_be_bytes(*m)).unwrap_or(usize::MAX);
        let mut table = Self::new(m, *seed)?;
        let expected = Self::encoded_len(m);
        if actual != expected {
            return Err(IbltError::WrongLength { expected, actual });
        }
        for (cell, raw) in table.cells.iter_mut().zip(body.chunks_exact(CELL_LEN)) {
            let (count, raw) = raw.split_first_chunk::<4>().ok_or(short)?;
            let (key_sum, raw) = raw.split_first_chunk::<32>().ok_or(short)?;
            let (hash_sum, _) = raw.split_first_chunk::<8>().ok_or(short)?;
            *cell = Cell {
                count: i32::from_be_bytes(*count),
                key_sum: *key_sum,
                hash_sum: u64::from_be_bytes(*hash_sum),
            };
        }
        Ok(table)
    }
}

/// The SplitMix64 finaliser: a fast bijective mixer.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct MiniCell {
    count: i32,
    key_sum: u64,
    hash_sum: u32,
}

impl MiniCell {
    fn is_empty(&self) -> bool {
        self.count == 0 && self.key_sum == 0 && self.hash_sum == 0
    }

    fn toggle(&mut self, key: u64, check: u32, delta: i32) {
        self.count = self.count.wrapping_add(delta);
        self.key_sum ^= key;
        self.hash_sum ^= check;
    }
}

const MINI_PART: usize = STRATUM_CELLS / HASH_COUNT;

fn mini_check(f: u64) -> u32 {
    mix64(f ^ 0xd1b5_4a32_d192_ed03) as u32
}

fn mini_indices(f: u64) -> impl Iterator<Item = usize> {
    let lanes = mix64(f ^ 0x9e37_79b9_7f4a_7c15);
    (0..HASH_COUNT).map(move |p| {
        let lane = (lanes >> (16 * p)) & 0xffff;
        MINI_PART * p + ((lane as usize * MINI_PART) >> 16)
    })
}

/// Peels one stratum's difference; the number of fingerprints it held, or `None` if stuck.
fn mini_decode(cells: &mut [MiniCell]) -> Option<usize> {
    let is_pure = |c: &MiniCell| c.count.unsigned_abs() == 1 && mini_check(c.key_sum) == c.hash_sum;
    let mut stack: Vec<usize> = (0..cells.len())
        .filter(|&i| cells.get(i).is_some_and(is_pure))
        .collect();
    let mut peeled = 0usize;
    while let Some(i) = stack.pop() {
        let Some(&cell) = cells.get(i).filter(|c| is_pure(c)) else {
            continue;
        };
        if peeled >= cells.len() {
            return None;
        }
        peeled = peeled.saturating_add(1);
        let check = mini_check(cell.key_sum);
        for j in mini_indices(cell.key_sum) {
            if let Some(c) = cells.get_mut(j) {
                c.toggle(cell.key_sum, check, cell.count.wrapping_neg());
                if is_pure(c) {
                    stack.push(j);
                }
            }
        }
    }
    cells.iter().all(MiniCell::is_empty).then_some(peeled)
}

/// A strata estimator of the size of a symmetric difference (see the [module docs](self)): each
/// side summarises its whole set in [`ESTIMATOR_ENCODED_LEN`] bytes, whatever its size.
#[derive(Clone, PartialEq, Eq)]
pub struct StrataEstimator {
    seed: [u8; 32],
    key: [u8; 32],
    /// `STRATA * STRATUM_CELLS` cells, stratum 0 first.
    cells: Vec<MiniCell>,
}

impl fmt::Debug for StrataEstimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nonempty = self.cells.iter().filter(|c| !c.is_empty()).count();
        f.debug_struct("StrataEstimator")
            .field("nonempty", &nonempty)
            .finish_non_exhaustive()
    }
}

impl StrataEstimator {
    /// An empty estimator keyed by `seed` (both sides must use the same one).
    pub fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            key: blake3::derive_key(STRATA_CONTEXT, &seed),
            cells: alloc::vec![MiniCell::default(); STRATA * STRATUM_CELLS],
        }
    }

    /// The seed the hash functions are keyed by.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    fn apply(&mut self, id: &[u8; 32], delta: i32) {
        let [f0, f1, s0, s1, _, _, _, _] = le_words(blake3::keyed_hash(&self.key, id).as_bytes());
        let f = u64::from(f0) | (u64::from(f1) << 32);
        let selector = u64::from(s0) | (u64::from(s1) << 32);
        let stratum = (selector.trailing_zeros() as usize).min(STRATA - 1);
        let base = stratum * STRATUM_CELLS;
        let check = mini_check(f);
        for i in mini_indices(f) {
            if let Some(c) = self.cells.get_mut(base.saturating_add(i)) {
                c.toggle(f, check, delta);
            }
        }
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: &[u8; 32]) {
        self.apply(id, 1);
    }

    /// Removes `id`, undoing one [`insert`](Self::insert) of it.
    pub fn remove(&mut self, id: &[u8; 32]) {
        self.apply(id, -1);
    }

    /// The estimated size of the symmetric difference between the two summarised sets: almost
    /// always exact up to 50, otherwise within ±25% in 95% of cases (module docs). Returns
    /// `usize::MAX` — "too different to reconcile" — if the seeds differ or even the sparsest
    /// stratum cannot be decoded.
    pub fn estimate(&self, other: &StrataEstimator) -> usize {
        if self.seed != other.seed {
            return usize::MAX;
        }
        let mut count = 0usize;
        let strata = self
            .cells
            .chunks_exact(STRATUM_CELLS)
            .zip(other.cells.chunks_exact(STRATUM_CELLS))
            .enumerate()
            .rev();
        let mut diff = [MiniCell::default(); STRATUM_CELLS];
        for (i, (ours, theirs)) in strata {
            for ((d, a), b) in diff.iter_mut().zip(ours).zip(theirs) {
                *d = *a;
                d.toggle(b.key_sum, b.hash_sum, b.count.wrapping_neg());
            }
            match mini_decode(&mut diff) {
                Some(n) => count = count.saturating_add(n),
                None if i + 1 == STRATA => return usize::MAX,
                // Stratum i and those below hold about 2^(i+1) - 1 times what the decoded ones
                // above it hold; at least one id is above (the stratum that failed is not empty).
                None => return count.max(1).saturating_mul(1usize << (i + 1)),
            }
        }
        count
    }

    /// The wire form (layout in the [module docs](self)), [`ESTIMATOR_ENCODED_LEN`] bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ESTIMATOR_ENCODED_LEN);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.seed);
        for c in &self.cells {
            out.extend_from_slice(&c.count.to_be_bytes());
            out.extend_from_slice(&c.key_sum.to_be_bytes());
            out.extend_from_slice(&c.hash_sum.to_be_bytes());
        }
        out
    }

    /// Parses the wire form. Refuses, with a typed error and without panicking, an unknown
    /// version or a length other than [`ESTIMATOR_ENCODED_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IbltError> {
        let actual = bytes.len();
        if actual > ESTIMATOR_ENCODED_LEN {
            return Err(IbltError::TooLarge { len: actual });
        }
        let wrong = IbltError::WrongLength {
            expected: ESTIMATOR_ENCODED_LEN,
            actual,
        };
        let (&version, rest) = bytes.split_first().ok_or(wrong)?;
        if version != FORMAT_VERSION {
            return Err(IbltError::UnknownVersion(version));
        }
        if actual != ESTIMATOR_ENCODED_LEN {
            return Err(wrong);
        }
        let (seed, body) = rest.split_first_chunk::<32>().ok_or(wrong)?;
        let mut est = Self::new(*seed);
        for (cell, raw) in est
            .cells
            .iter_mut()
            .zip(body.chunks_exact(STRATUM_CELL_LEN))
        {
            let (count, raw) = raw.split_first_chunk::<4>().ok_or(wrong)?;
            let (key_sum, raw) = raw.split_first_chunk::<8>().ok_or(wrong)?;
            let (hash_sum, _) = raw.split_first_chunk::<4>().ok_or(wrong)?;
            *cell = MiniCell {
                count: i32::from_be_bytes(*count),
                key_sum: u64::from_be_bytes(*key_sum),
                hash_sum: u32::from_be_bytes(*hash_sum),
            };
        }
        Ok(est)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn id(n: u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&mix64(n.wrapping_mul(4).wrapping_add(i as u64)).to_le_bytes());
        }
        out
    }

    const SEED: [u8; 32] = [7; 32];

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(
            Iblt::new(0, SEED).unwrap_err(),
            IbltError::InvalidSize { cells: 0 }
        );
        assert!(Iblt::new(MIN_CELLS - 1, SEED).is_err());
        assert!(Iblt::new(MIN_CELLS, SEED).is_ok());
        assert!(Iblt::new(MAX_CELLS, SEED).is_ok());
        assert!(Iblt::new(MAX_CELLS + 1, SEED).is_err());
        assert_eq!(
            Iblt::new(10, SEED)
                .unwrap()
                .subtract(&Iblt::new(11, SEED).unwrap()),
            Err(IbltError::Mismatch)
        );
        assert_eq!(
            Iblt::new(10, SEED)
                .unwrap()
                .subtract(&Iblt::new(10, [8; 32]).unwrap()),
            Err(IbltError::Mismatch)
        );
    }

    #[test]
    fn partitions_cover_the_table_disjointly() {
        for m in [4, 5, 6, 7, 80, 101, MAX_CELLS] {
            let parts = partitions(m);
            let mut next = 0;
            for (start, len) in parts {
                assert_eq!(start, next);
                assert!(len >= 1);
                next = start + len as usize;
            }
            assert_eq!(next, m);
            // An item's cells are distinct, and in range, even at the extremes of the hash.
            let t = Iblt::new(m, SEED).unwrap();
            for w in [0, 1, u32::MAX / 2, u32::MAX] {
                let idx: Vec<usize> = t
                    .indices(&ItemHash {
                        check: 0,
                        words: [w; HASH_COUNT],
                    })
                    .collect();
                for (p, &i) in idx.iter().enumerate() {
                    assert!(i >= parts[p].0 && i < parts[p].0 + parts[p].1 as usize);
                }
            }
        }
    }

    #[test]
    fn insert_and_remove_are_symmetric() {
        let mut t = Iblt::new(64, SEED).unwrap();
        let empty = t.clone();
        for n in 0..500 {
            t.insert(&id(n));
        }
        assert!(!t.is_empty());
        // Removal in another order restores the empty table exactly.
        for n in (0..500).rev() {
            t.remove(&id(n));
        }
        assert_eq!(t, empty);
        assert!(t.is_empty());
        // Remove-then-insert too.
        t.remove(&id(1));
        assert_eq!(t.clone().decode().unwrap().theirs, vec![id(1)]);
        t.insert(&id(1));
        assert_eq!(t, empty);
    }

    #[test]
    fn subtracting_equal_sets_decodes_empty() {
        let mut a = Iblt::new(40, SEED).unwrap();
        let mut b = Iblt::new(40, SEED).unwrap();
        for n in 0..1000 {
            a.insert(&id(n));
        }
        for n in (0..1000).rev() {
            b.insert(&id(n));
        }
        let diff = a.subtract(&b).unwrap();
        assert!(diff.is_empty());
        assert_eq!(diff.decode().unwrap(), Difference::default());
        assert!(Iblt::new(4, SEED).unwrap().decode().unwrap().is_empty());
    }

    #[test]
    fn decodes_both_sides_of_a_small_difference() {
        let mut a = Iblt::new(cells_for(30), SEED).unwrap();
        let mut b = a.clone();
        for n in 0..2000 {
            a.insert(&id(n));
            b.insert(&id(n));
        }
        let mut ours: Vec<_> = (5000..5010).map(id).collect();
        let mut theirs: Vec<_> = (6000..6020).map(id).collect();
        ours.iter().for_each(|x| a.insert(x));
        theirs.iter().for_each(|x| b.insert(x));
        ours.sort();
        theirs.sort();
        let d = a.subtract(&b).unwrap().decode().unwrap();
        assert_eq!(d.ours, ours);
        assert_eq!(d.theirs, theirs);
        assert_eq!(d.len(), 30);
        let back = b.subtract(&a).unwrap().decode().unwrap();
        assert_eq!((back.ours, back.theirs), (theirs, ours));
    }

    #[test]
    fn an_overfull_table_fails_to_decode() {
        let mut t = Iblt::new(20, SEED).unwrap();
        for n in 0..200 {
            t.insert(&id(n));
        }
        assert_eq!(t.decode(), Err(IbltError::DecodeFailed));
    }

    #[test]
    fn wire_form_round_trips() {
        let mut t = Iblt::new(37, [3; 32]).unwrap();
        for n in 0..30 {
            t.insert(&id(n));
        }
        t.remove(&id(99));
        let bytes = t.to_bytes();
        assert_eq!(bytes.len(), Iblt::encoded_len(37));
        assert_eq!(Iblt::from_bytes(&bytes).unwrap(), t);

        let mut e = StrataEstimator::new([4; 32]);
        for n in 0..300 {
            e.insert(&id(n));
        }
        let bytes = e.to_bytes();
        assert_eq!(bytes.len(), ESTIMATOR_ENCODED_LEN);
        assert_eq!(ESTIMATOR_ENCODED_LEN, 20_513);
        assert_eq!(StrataEstimator::from_bytes(&bytes).unwrap(), e);
    }

    #[test]
    fn from_bytes_rejects_bad_input() {
        let bytes = Iblt::new(8, SEED).unwrap().to_bytes();
        for cut in 0..bytes.len() {
            assert!(Iblt::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Iblt::from_bytes(&long),
            Err(IbltError::WrongLength {
                expected: Iblt::encoded_len(8),
                actual: Iblt::encoded_len(8) + 1
            })
        );
        let huge = vec![FORMAT_VERSION; Iblt::encoded_len(MAX_CELLS) + 1];
        assert_eq!(
            Iblt::from_bytes(&huge),
            Err(IbltError::TooLarge { len: huge.len() })
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(Iblt::from_bytes(&v2), Err(IbltError::UnknownVersion(2)));
        // Sizes out of range in the header.
        for m in [0u32, 3, MAX_CELLS as u32 + 1, u32::MAX] {
            let mut b = bytes.clone();
            b[33..37].copy_from_slice(&m.to_be_bytes());
            assert!(matches!(
                Iblt::from_bytes(&b),
                Err(IbltError::InvalidSize { .. })
            ));
        }

        let est = StrataEstimator::new(SEED).to_bytes();
        for cut in 0..est.len() {
            assert!(StrataEstimator::from_bytes(&est[..cut]).is_err());
        }
        let mut long = est.clone();
        long.push(0);
        assert!(matches!(
            StrataEstimator::from_bytes(&long),
            Err(IbltError::TooLarge { .. })
        ));
    }

    #[test]
    fn estimator_is_exact_for_small_differences_and_refuses_other_seeds() {
        let mut a = StrataEstimator::new(SEED);
        let mut b = StrataEstimator::new(SEED);
        for n in 0..5000 {
            a.insert(&id(n));
            b.insert(&id(n));
        }
        assert_eq!(a.estimate(&b), 0);
        for n in 10_000..10_007 {
            a.insert(&id(n));
        }
        b.insert(&id(20_000));
        assert_eq!(a.estimate(&b), 8);
        assert_eq!(b.estimate(&a), 8);
        b.remove(&id(20_000));
        a.remove(&id(10_000));
        assert_eq!(a.estimate(&b), 6);
        assert_eq!(a.estimate(&StrataEstimator::new([0; 32])), usize::MAX);
    }

    #[test]
    fn cells_for_is_monotone_and_bounded() {
        assert_eq!(cells_for(0), cells_for(1));
        let mut last = 0;
        for d in 0..70_000 {
            let c = cells_for(d);
            assert!(c >= last, "cells_for({d}) = {c} < {last}");
            assert!((MIN_CELLS..=MAX_CELLS).contains(&c));
            assert_eq!(c % HASH_COUNT, 0);
            last = c;
        }
        assert_eq!(cells_for(usize::MAX), MAX_CELLS);
        assert!(cells_for(100) <= 170);
        assert!(cells_for(1_000) <= 1_500);
        assert!(cells_for(10_000) <= 15_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes never panic the parsers; a parsed table decodes or fails, in bounded
        /// time.
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = StrataEstimator::from_bytes(&bytes);
            if let Ok(t) = Iblt::from_bytes(&bytes) {
                let _ = t.decode();
            }
        }

        /// A well-formed header over arbitrary cell contents parses, and decoding it terminates
        /// without panicking; so does estimating against arbitrary strata.
        #[test]
        fn arbitrary_cells_decode_safely(
            m in MIN_CELLS..40usize,
            fill in prop::collection::vec(any::<u8>(), 0..(40 * CELL_LEN)),
            small in any::<bool>(),
        ) {
            let mut bytes = Iblt::new(m, SEED).unwrap().to_bytes();
            for (b, f) in bytes[HEADER_LEN..].iter_mut().zip(&fill) {
                // Small counts make pure-looking cells likelier.
                *b = if small { f & 0x81 } else { *f };
            }
            let t = Iblt::from_bytes(&bytes).unwrap();
            let _ = t.clone().subtract(&t).unwrap().decode().unwrap();
            let _ = t.decode();

            let mut est = StrataEstimator::new(SEED).to_bytes();
            for (b, f) in est[33..].iter_mut().zip(fill.iter().cycle()) {
                *b = if small { f & 0x81 } else { *f };
            }
            let est = StrataEstimator::from_bytes(&est).unwrap();
            let _ = est.estimate(&StrataEstimator::new(SEED));
        }

        /// Whatever two small sets are, a big enough table returns exactly their difference.
        #[test]
        fn decodes_exact_difference(
            a in prop::collection::btree_set(0u64..400, 0..200),
            b in prop::collection::btree_set(0u64..400, 0..200),
            seed in any::<[u8; 32]>(),
        ) {
            let d = a.symmetric_difference(&b).count();
            let mut ta = Iblt::new(cells_for(d * 3).max(256), seed).unwrap();
            let mut tb = ta.clone();
            a.iter().for_each(|&n| ta.insert(&id(n)));
            b.iter().for_each(|&n| tb.insert(&id(n)));
            let mut ours: Vec<_> = a.difference(&b).map(|&n| id(n)).collect();
            let mut theirs: Vec<_> = b.difference(&a).map(|&n| id(n)).collect();
            ours.sort();
            theirs.sort();
            let got = ta.subtract(&tb).unwrap().decode().unwrap();
            prop_assert_eq!(got.ours, ours);
            prop_assert_eq!(got.theirs, theirs);
        }
    }
}
