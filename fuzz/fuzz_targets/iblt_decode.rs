//! Set reconciliation tables (proto-core/src/iblt.rs): `Iblt::from_bytes` and
//! `StrataEstimator::from_bytes` on arbitrary bytes, subtraction from tables of known sets,
//! decoding, estimating and `cells_for` / `cells_for_estimate`.
//!
//! Checked: nothing panics; what parses re-encodes to the same bytes; a table minus itself
//! decodes to nothing and an estimator estimates 0 against itself; tables of another size or
//! seed do not subtract (`Mismatch`); whenever a table decodes, inserting the ids it reported as
//! ours and removing those reported as theirs into an empty table of the same size and seed
//! rebuilds exactly that table (the peeling invariant, true of corrupt tables too), at most one
//! id per cell is reported, and decoding `b - a` gives the swapped result of `a - b`; estimates
//! are symmetric; for tables built from two known sets, a successful decode returns exactly the
//! two differences (and a difference of 0 or 1 always decodes, and is estimated exactly);
//! `cells_for` is monotone, in range and a multiple of 4.
//!
//! Input: the whole input is first parsed as a table and as an estimator (seeds are plain
//! encodings), then read as a script of ops (op % 5):
//! 0 `[len(2), bytes]` a table parsed, decoded, and subtracted from and by the table of the
//! current set;
//! 1 `[raw, ...]` an estimator parsed and compared with the current set's: with `raw` odd,
//! `[len(2), bytes]`; else the current set's estimator with byte edits (see
//! `edited_estimator`: a whole estimator is longer than the fuzzer's inputs);
//! 2 `[cells(2), seed, salt, shape, ...]` two sets built (see `Sets::read`) and their tables
//! subtracted and decoded, the difference checked exactly; the first set becomes the current
//! set;
//! 3 `[n(8)]` `cells_for(n)`, `cells_for(n + 1)` and `cells_for_estimate(n)`;
//! 4 `[cells, seed, m, (cell(2), byte, xor) * m]` the table of the current set, corrupted by
//! `m` byte edits in its wire form, parsed and decoded.
#![no_main]

mod common;

use common::Input;
use hearsay_proto::antientropy::iblt::{
    CELL_LEN, Difference, ESTIMATOR_ENCODED_LEN, HEADER_LEN, Iblt, IbltError, MAX_CELLS, MIN_CELLS,
    StrataEstimator, cells_for, cells_for_estimate,
};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

type Id = [u8; 32];

/// The id numbered `n` under `salt`.
fn id(salt: u8, n: u16) -> Id {
    let mut input = [0u8; 3];
    input[0] = salt;
    input[1..].copy_from_slice(&n.to_be_bytes());
    *blake3::hash(&input).as_bytes()
}

fn table_of(cells: usize, seed: [u8; 32], ids: &BTreeSet<Id>) -> Iblt {
    let mut t = Iblt::new(cells, seed).expect("a size in range");
    for i in ids {
        t.insert(i);
    }
    t
}

fn estimator_of(seed: [u8; 32], ids: &BTreeSet<Id>) -> StrataEstimator {
    let mut e = StrataEstimator::new(seed);
    for i in ids {
        e.insert(i);
    }
    e
}

/// Decodes `table`; if it decodes, checks the peeling invariant and the bound on the result.
fn decode_checked(table: &Iblt) -> Result<Difference, IbltError> {
    let result = table.clone().decode();
    match &result {
        Ok(diff) => {
            assert!(
                diff.len() <= table.cells(),
                "{} ids decoded from {} cells",
                diff.len(),
                table.cells()
            );
            assert!(diff.ours.is_sorted() && diff.theirs.is_sorted());
            let mut rebuilt = Iblt::new(table.cells(), *table.seed()).expect("same size");
            for i in &diff.ours {
                rebuilt.insert(i);
            }
            for i in &diff.theirs {
                rebuilt.remove(i);
            }
            assert!(
                rebuilt == *table,
                "the decoded ids do not rebuild the table"
            );
            assert_eq!(diff.is_empty(), table.is_empty());
        }
        Err(e) => assert_eq!(*e, IbltError::DecodeFailed, "decode failed with {e:?}"),
    }
    result
}

/// `a - b` and `b - a` decode alike, with the sides swapped.
fn decode_both_ways(a: &Iblt, b: &Iblt) -> Result<Difference, IbltError> {
    let ab = decode_checked(&a.subtract(b).expect("same size and seed"));
    let ba = decode_checked(&b.subtract(a).expect("same size and seed"));
    match (&ab, &ba) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x.ours, y.theirs, "b - a is not the mirror of a - b");
            assert_eq!(x.theirs, y.ours, "b - a is not the mirror of a - b");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("a - b and b - a decode differently: {ab:?} / {ba:?}"),
    }
    ab
}

fn check_table(t: &Iblt, bytes: &[u8], current: &BTreeSet<Id>) {
    assert!((MIN_CELLS..=MAX_CELLS).contains(&t.cells()));
    assert_eq!(bytes.len(), Iblt::encoded_len(t.cells()));
    assert_eq!(t.to_bytes(), bytes, "a parsed table re-encodes differently");
    let _ = decode_checked(t);
    let zero = t.subtract(t).expect("a table subtracts from itself");
    assert!(zero.is_empty());
    assert_eq!(zero.decode(), Ok(Difference::default()));
    let mine = table_of(t.cells(), *t.seed(), current);
    let _ = decode_both_ways(t, &mine);
    // Another seed, or another size, cannot be subtracted.
    let mut other_seed = *t.seed();
    other_seed[0] ^= 1;
    let other = Iblt::new(t.cells(), other_seed).expect("same size");
    assert_eq!(t.subtract(&other).err(), Some(IbltError::Mismatch));
    let other_size = if t.cells() == MAX_CELLS {
        MIN_CELLS
    } else {
        t.cells() + 1
    };
    let other = Iblt::new(other_size, *t.seed()).expect("in range");
    assert_eq!(other.subtract(t).err(), Some(IbltError::Mismatch));
}

fn check_estimate(a: &StrataEstimator, b: &StrataEstimator) -> usize {
    let e = a.estimate(b);
    assert_eq!(e, b.estimate(a), "estimates are not symmetric");
    let cells = cells_for_estimate(e);
    assert!((MIN_CELLS..=MAX_CELLS).contains(&cells));
    assert!(cells >= cells_for(e));
    e
}

fn check_estimator(e: &StrataEstimator, bytes: &[u8], current: &BTreeSet<Id>) {
    assert_eq!(bytes.len(), ESTIMATOR_ENCODED_LEN);
    assert_eq!(
        e.to_bytes(),
        bytes,
        "a parsed estimator re-encodes differently"
    );
    assert_eq!(e.estimate(e), 0, "an estimator differs from itself");
    let _ = check_estimate(e, &StrataEstimator::new(*e.seed()));
    let _ = check_estimate(e, &estimator_of(*e.seed(), current));
    let mut other_seed = *e.seed();
    other_seed[31] ^= 0x80;
    assert_eq!(e.estimate(&StrataEstimator::new(other_seed)), usize::MAX);
}

fn check_cells_for(n: usize) {
    let c = cells_for(n);
    assert!((MIN_CELLS..=MAX_CELLS).contains(&c));
    assert_eq!(c % 4, 0);
    assert!(
        cells_for(n.saturating_add(1)) >= c,
        "cells_for is not monotone at {n}"
    );
    assert!(cells_for_estimate(n) >= c);
}

/// Two sets of ids, read as `[shape, ...]`: shape bit 0 clear, ranges `[na, nb, overlap]`:
/// `a` = ids 0..na, `b` = ids (na - overlap)..(na - overlap + nb); set, explicit lists
/// `[na, a-ids..., nb, b-ids...]` of one-byte id numbers. Bit 1 adds `a`'s ids to `b` a second
/// time through removal-then-insertion (no change to the set).
struct Sets {
    a: BTreeSet<Id>,
    b: BTreeSet<Id>,
}

impl Sets {
    fn read(input: &mut Input<'_>, salt: u8) -> Self {
        let shape = input.u8();
        let (a, b): (Vec<u16>, Vec<u16>) = if shape & 1 == 0 {
            let na = u16::from(input.u8());
            let nb = u16::from(input.u8());
            let overlap = u16::from(input.u8()).min(na);
            let start = na - overlap;
            ((0..na).collect(), (start..start + nb).collect())
        } else {
            let na = usize::from(input.u8() % 64);
            let a = input.bytes(na).iter().map(|&x| u16::from(x)).collect();
            let nb = usize::from(input.u8() % 64);
            let b = input.bytes(nb).iter().map(|&x| u16::from(x)).collect();
            (a, b)
        };
        Sets {
            a: a.into_iter().map(|n| id(salt, n)).collect(),
            b: b.into_iter().map(|n| id(salt, n)).collect(),
        }
    }
}

fn structured(input: &mut Input<'_>) -> BTreeSet<Id> {
    let cells = usize::from(input.u16() % 4100);
    let seed = [input.u8(); 32];
    let salt = input.u8();
    let sets = Sets::read(input, salt);
    let Ok(mut ta) = Iblt::new(cells, seed) else {
        assert!(cells < MIN_CELLS, "Iblt::new refused {cells} cells");
        return sets.a;
    };
    let mut tb = ta.clone();
    for i in &sets.a {
        ta.insert(i);
    }
    for i in &sets.b {
        tb.insert(i);
    }
    // Insert-and-remove leaves a table unchanged; subtraction is removal of the other's ids.
    let mut churned = ta.clone();
    for i in &sets.b {
        churned.insert(i);
        churned.remove(i);
    }
    assert!(churned == ta, "insert then remove changed the table");
    let mut by_removal = ta.clone();
    for i in &sets.b {
        by_removal.remove(i);
    }
    assert!(
        by_removal == ta.subtract(&tb).expect("same size and seed"),
        "subtracting a table differs from removing its ids"
    );
    let bytes = ta.to_bytes();
    assert!(Iblt::from_bytes(&bytes).expect("a table re-parses") == ta);

    let ours: Vec<Id> = sets.a.difference(&sets.b).copied().collect();
    let theirs: Vec<Id> = sets.b.difference(&sets.a).copied().collect();
    let d = ours.len() + theirs.len();
    match decode_both_ways(&ta, &tb) {
        Ok(diff) => {
            assert_eq!(diff.ours, ours, "decoded ours differ from a \\ b");
            assert_eq!(diff.theirs, theirs, "decoded theirs differ from b \\ a");
        }
        Err(_) => assert!(d > 1, "a difference of {d} did not decode in {cells} cells"),
    }

    let ea = estimator_of(seed, &sets.a);
    let eb = estimator_of(seed, &sets.b);
    let estimate = check_estimate(&ea, &eb);
    if d <= 1 {
        assert_eq!(estimate, d, "a difference of {d} estimated as {estimate}");
    }
    assert!(StrataEstimator::from_bytes(&ea.to_bytes()).expect("re-parses") == ea);
    sets.a
}

/// `[seed, m, (off(2), xor) * m]`: the wire form of the current set's estimator with `m` byte
/// edits in its cells (an estimator is 20,513 bytes, more than the fuzzer's inputs).
fn edited_estimator(input: &mut Input<'_>, current: &BTreeSet<Id>) -> Vec<u8> {
    let seed = [input.u8(); 32];
    let mut bytes = estimator_of(seed, current).to_bytes();
    let cells = ESTIMATOR_ENCODED_LEN - 33;
    for _ in 0..input.u8() % 32 {
        let at = 33 + usize::from(input.u16()) % cells;
        let xor = input.u8();
        if let Some(b) = bytes.get_mut(at) {
            *b ^= xor;
        }
    }
    bytes
}

fn corrupted(input: &mut Input<'_>, current: &BTreeSet<Id>) {
    let cells = MIN_CELLS + usize::from(input.u8());
    let seed = [input.u8(); 32];
    let table = table_of(cells, seed, current);
    let mut bytes = table.to_bytes();
    let edits = usize::from(input.u8() % 16);
    let mut changed = false;
    for _ in 0..edits {
        let cell = usize::from(input.u16()) % cells;
        let at = HEADER_LEN + cell * CELL_LEN + usize::from(input.u8()) % CELL_LEN;
        let xor = input.u8();
        if let Some(b) = bytes.get_mut(at) {
            *b ^= xor;
            changed |= xor != 0;
        }
    }
    let parsed = Iblt::from_bytes(&bytes).expect("cell contents never fail to parse");
    let result = decode_checked(&parsed);
    if !changed {
        assert!(parsed == table);
        // A table of a set decodes to that set (as ours) or not at all.
        if let Ok(diff) = result {
            assert!(diff.theirs.is_empty());
            assert!(diff.ours.iter().eq(current.iter()));
        }
    }
    let _ = decode_both_ways(&parsed, &table);
}

fuzz_target!(|data: &[u8]| {
    let mut current: BTreeSet<Id> = BTreeSet::new();
    if let Ok(t) = Iblt::from_bytes(data) {
        check_table(&t, data, &current);
    }
    if let Ok(e) = StrataEstimator::from_bytes(data) {
        check_estimator(&e, data, &current);
    }

    let mut input = Input::new(data);
    let mut steps = 0;
    while !input.is_empty() && steps < 16 {
        steps += 1;
        match input.u8() % 5 {
            0 => {
                let bytes = input.chunk();
                if let Ok(t) = Iblt::from_bytes(bytes) {
                    check_table(&t, bytes, &current);
                }
            }
            1 => {
                if input.bool() {
                    let bytes = input.chunk();
                    if let Ok(e) = StrataEstimator::from_bytes(bytes) {
                        check_estimator(&e, bytes, &current);
                    }
                } else {
                    let bytes = edited_estimator(&mut input, &current);
                    let e = StrataEstimator::from_bytes(&bytes).expect("any cells parse");
                    check_estimator(&e, &bytes, &current);
                }
            }
            2 => current = structured(&mut input),
            3 => check_cells_for(input.u64() as usize),
            _ => corrupted(&mut input, &current),
        }
    }
});
