//! Bounded building blocks for the wire format.
//!
//! Every variable-length value on the wire goes through one of these types, so a length is
//! checked against its limit *before* anything is allocated, and a violation surfaces as a typed
//! [`DecodeError`] rather than a panic or an out-of-memory abort.

use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use core::ops::Deref;
use minicbor::data::Type;
use minicbor::{Decode, Decoder, Encode, Encoder};

/// Why bytes from a peer could not be decoded. Decoding never panics; it returns one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is longer than the frame limit; it was not parsed at all.
    FrameTooLarge {
        /// The frame's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame's kind tag names no protocol this version knows.
    UnknownKind(u64),
    /// A list holds more items than its limit allows.
    ListTooLong {
        /// The limit for this list.
        max: usize,
    },
    /// A byte string is longer than its limit allows.
    BytesTooLong {
        /// The limit for this byte string.
        max: usize,
    },
    /// A fixed-size value (a key, a signature, an id) has the wrong length.
    WrongLength {
        /// The length the field must have.
        expected: usize,
        /// The length that arrived.
        got: usize,
    },
    /// Bytes were left over after the value ended.
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// The bytes are not well-formed CBOR of the expected shape (truncated input, a type
    /// mismatch, a missing field, an unknown variant).
    Malformed {
        /// Byte offset where decoding stopped, when known.
        position: Option<usize>,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max}-byte limit")
            }
            DecodeError::UnknownKind(k) => write!(f, "unknown frame kind {k}"),
            DecodeError::ListTooLong { max } => write!(f, "list longer than its limit of {max}"),
            DecodeError::BytesTooLong { max } => {
                write!(f, "byte string longer than its limit of {max}")
            }
            DecodeError::WrongLength { expected, got } => {
                write!(f, "fixed-size field has {got} bytes, expected {expected}")
            }
            DecodeError::TrailingBytes { extra } => write!(f, "{extra} trailing bytes"),
            DecodeError::Malformed { position: Some(p) } => write!(f, "malformed CBOR at byte {p}"),
            DecodeError::Malformed { position: None } => write!(f, "malformed CBOR"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl From<minicbor::decode::Error> for DecodeError {
    fn from(e: minicbor::decode::Error) -> Self {
        use core::error::Error as _;
        if let Some(inner) = e.source().and_then(|s| s.downcast_ref::<DecodeError>()) {
            return inner.clone();
        }
        DecodeError::Malformed {
            position: e.position(),
        }
    }
}

/// Why a value could not be encoded for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded frame would exceed the frame limit.
    FrameTooLarge {
        /// The encoded length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A list or byte string is over its limit (it would be rejected by every receiver).
    OverLimit,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::FrameTooLarge { len, max } => {
                write!(
                    f,
                    "encoded frame of {len} bytes exceeds the {max}-byte limit"
                )
            }
            EncodeError::OverLimit => write!(f, "a field is over its wire limit"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// Where decoded byte strings come from. Decoding from a shared [`Bytes`] buffer lets keys,
/// signatures and payloads point into the received frame instead of being copied (in the
/// simulator, thousands of nodes then share one copy of each record).
pub trait DecodeSource {
    /// The buffer being decoded, if it is a shared one.
    fn source(&self) -> Option<&Bytes>;

    /// A buffer holding exactly the bytes of `slice` that the driver already keeps (see
    /// [`Interner`]), to use instead of a view or a copy; `None` (the default) if there is none.
    fn intern(&self, slice: &[u8]) -> Option<Bytes> {
        let _ = slice;
        None
    }
}

/// A driver-supplied store of immutable byte strings, shared by every node that uses it
/// ([`Config::interner`](crate::node::Config::interner)). A decoded byte string the interner
/// returns a buffer for is that buffer (exactly its bytes, holding nothing else alive), so many
/// nodes that decode the same keys, signatures and payloads keep one copy of each. Decoding
/// gives the same values with or without an interner; only memory changes.
///
/// A simulator running thousands of nodes in one process installs one; a real node has no use
/// for it (the default is none).
pub trait Interner: Send + Sync {
    /// A buffer whose bytes equal `bytes`, or `None` to let the decoder view or copy them.
    fn intern(&self, bytes: &[u8]) -> Option<Bytes>;
}

/// Decoding context over a shared buffer, with an [`Interner`].
#[derive(Clone, Copy)]
pub struct SharedInterned<'a> {
    /// The buffer being decoded.
    pub source: &'a Bytes,
    /// The interner consulted for every byte string.
    pub interner: &'a dyn Interner,
}

impl fmt::Debug for SharedInterned<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedInterned")
            .field("source_len", &self.source.len())
            .finish_non_exhaustive()
    }
}

impl DecodeSource for SharedInterned<'_> {
    fn source(&self) -> Option<&Bytes> {
        Some(self.source)
    }

    fn intern(&self, slice: &[u8]) -> Option<Bytes> {
        self.interner.intern(slice).filter(|b| b.as_ref() == slice)
    }
}

impl DecodeSource for () {
    fn source(&self) -> Option<&Bytes> {
        None
    }
}

/// Decoding context over a shared buffer.
#[derive(Debug, Clone)]
pub struct Shared(pub Bytes);

impl DecodeSource for Shared {
    fn source(&self) -> Option<&Bytes> {
        Some(&self.0)
    }
}

/// `slice` as a [`Bytes`]: the interner's buffer if the context has one for it; else a view
/// into the shared source when it lies inside it and is at least half of it; else a copy. A
/// view keeps the whole source alive, so a small value kept from a large frame (a 1-byte
/// payload in a frame padded to 256 KiB with an unknown trailing field) would pin the frame:
/// with this rule a retained value never pins more than twice its own length, and large
/// payloads still travel without a copy (SPEC.md §6.3). An interned buffer holds exactly the
/// value's bytes, so it pins no frame at all.
pub(crate) fn share<C: DecodeSource>(ctx: &C, slice: &[u8]) -> Bytes {
    if let Some(interned) = ctx.intern(slice) {
        return interned;
    }
    if let Some(src) = ctx.source() {
        let (base, start) = (src.as_ptr() as usize, slice.as_ptr() as usize);
        if start >= base
            && start + slice.len() <= base + src.len()
            && slice.len().saturating_mul(2) >= src.len()
        {
            return src.slice(start - base..start - base + slice.len());
        }
    }
    Bytes::copy_from_slice(slice)
}

/// Wraps one of our typed errors so it survives minicbor's error type.
pub(crate) fn limit(e: DecodeError) -> minicbor::decode::Error {
    minicbor::decode::Error::custom(e)
}

/// Counts the bytes an encoding writes, without storing them.
struct Counter(usize);

impl minicbor::encode::Write for Counter {
    type Error = core::convert::Infallible;

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(())
    }
}

/// Encodes `value` as CBOR into a fresh vector of exactly its length (measured by a first
/// pass, so that no growth reallocates, and a frame kept alive holds no spare capacity).
pub(crate) fn to_vec<T: Encode<()>>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut counter = Counter(0);
    minicbor::encode(value, &mut counter).map_err(|_| EncodeError::OverLimit)?;
    let mut out = Vec::with_capacity(counter.0);
    minicbor::encode(value, &mut out).map_err(|_| EncodeError::OverLimit)?;
    Ok(out)
}

/// Decodes exactly one `T` from `bytes`, rejecting trailing bytes.
pub(crate) fn from_slice<'b, T: Decode<'b, ()>>(bytes: &'b [u8]) -> Result<T, DecodeError> {
    from_slice_with(bytes, &mut ())
}

/// Decodes exactly one `T` from `bytes` with a context, rejecting trailing bytes.
pub(crate) fn from_slice_with<'b, C, T: Decode<'b, C>>(
    bytes: &'b [u8],
    ctx: &mut C,
) -> Result<T, DecodeError> {
    let mut d = Decoder::new(bytes);
    let value = T::decode(&mut d, ctx)?;
    let extra = bytes.len().saturating_sub(d.position());
    if extra != 0 {
        return Err(DecodeError::TrailingBytes { extra });
    }
    Ok(value)
}

/// Reads a definite-length byte string of at most `max` bytes without allocating first.
pub(crate) fn bounded_bytes<'b>(
    d: &mut Decoder<'b>,
    max: usize,
) -> Result<&'b [u8], minicbor::decode::Error> {
    // Indefinite-length byte strings are not part of our encoding: reject them outright.
    if d.datatype()? == Type::BytesIndef {
        return Err(limit(DecodeError::Malformed {
            position: Some(d.position()),
        }));
    }
    let b = d.bytes()?; // borrows from the input: no allocation
    if b.len() > max {
        return Err(limit(DecodeError::BytesTooLong { max }));
    }
    Ok(b)
}

/// Reads the header of a definite-length array of at most `max` items.
pub(crate) fn bounded_array(
    d: &mut Decoder<'_>,
    max: usize,
) -> Result<usize, minicbor::decode::Error> {
    match d.array()? {
        Some(n) if n <= max as u64 => Ok(n as usize),
        Some(_) => Err(limit(DecodeError::ListTooLong { max })),
        None => Err(limit(DecodeError::Malformed {
            position: Some(d.position()),
        })),
    }
}

/// Exactly `N` bytes: keys, signatures, ciphertexts. Cheap to clone (shared [`Bytes`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FixedBytes<const N: usize>(Bytes);

impl<const N: usize> FixedBytes<N> {
    /// Wraps `bytes` if it has exactly `N` bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, DecodeError> {
        let bytes = bytes.into();
        if bytes.len() != N {
            return Err(DecodeError::WrongLength {
                expected: N,
                got: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// Wraps an array: infallible, the length is right by construction.
    pub fn from_array(array: [u8; N]) -> Self {
        Self(Bytes::from(alloc::vec::Vec::from(array)))
    }

    /// Copies `slice` if it has exactly `N` bytes.
    pub fn copy_from_slice(slice: &[u8]) -> Result<Self, DecodeError> {
        Self::new(Bytes::copy_from_slice(slice))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared buffer.
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

impl<const N: usize> Deref for FixedBytes<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> fmt::Debug for FixedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedBytes<{N}>(")?;
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl<C, const N: usize> Encode<C> for FixedBytes<N> {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C: DecodeSource, const N: usize> Decode<'b, C> for FixedBytes<N> {
    fn decode(d: &mut Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        let b = bounded_bytes(d, N)?;
        if b.len() != N {
            return Err(limit(DecodeError::WrongLength {
                expected: N,
                got: b.len(),
            }));
        }
        Ok(Self(share(ctx, b)))
    }
}

/// At most `MAX` bytes (opaque addresses, payloads).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BoundedBytes<const MAX: usize>(Bytes);

impl<const MAX: usize> BoundedBytes<MAX> {
    /// Wraps `bytes` if it has at most `MAX` bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Self, DecodeError> {
        let bytes = bytes.into();
        if bytes.len() > MAX {
            return Err(DecodeError::BytesTooLong { max: MAX });
        }
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The shared buffer.
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

impl<const MAX: usize> Deref for BoundedBytes<MAX> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BoundedBytes<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(&self.0) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => write!(f, "{s:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

impl<C, const MAX: usize> Encode<C> for BoundedBytes<MAX> {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.bytes(&self.0)?;
        Ok(())
    }
}

impl<'b, C: DecodeSource, const MAX: usize> Decode<'b, C> for BoundedBytes<MAX> {
    fn decode(d: &mut Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        let b = bounded_bytes(d, MAX)?;
        Ok(Self(share(ctx, b)))
    }
}

/// A list of at most `MAX` items; the limit is checked before the list is allocated.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wraps `items` if there are at most `MAX` of them.
    pub fn new(items: Vec<T>) -> Result<Self, DecodeError> {
        if items.len() > MAX {
            return Err(DecodeError::ListTooLong { max: MAX });
        }
        Ok(Self(items))
    }

    /// An empty list.
    pub const fn empty() -> Self {
        Self(Vec::new())
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// Gives the items back.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T, const MAX: usize> Deref for BoundedVec<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl<C, T: Encode<C>, const MAX: usize> Encode<C> for BoundedVec<T, MAX> {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut Encoder<W>,
        ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.array(self.0.len() as u64)?;
        for item in &self.0 {
            item.encode(e, ctx)?;
        }
        Ok(())
    }
}

impl<'b, C, T: Decode<'b, C>, const MAX: usize> Decode<'b, C> for BoundedVec<T, MAX> {
    fn decode(d: &mut Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        let n = bounded_array(d, MAX)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(T::decode(d, ctx)?);
        }
        Ok(Self(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Holds one buffer and hands it out for equal bytes (or, `lying`, for any bytes).
    struct OneBuffer {
        held: Bytes,
        lying: bool,
    }

    impl Interner for OneBuffer {
        fn intern(&self, bytes: &[u8]) -> Option<Bytes> {
            (self.lying || bytes == self.held.as_ref()).then(|| self.held.clone())
        }
    }

    #[test]
    fn interned_byte_strings_are_the_interners_buffer() {
        let value = [9u8; 40];
        let frame =
            Bytes::from(to_vec(&FixedBytes::<40>::copy_from_slice(&value).unwrap()).unwrap());
        let interner = OneBuffer {
            held: Bytes::copy_from_slice(&value),
            lying: false,
        };
        let mut ctx = SharedInterned {
            source: &frame,
            interner: &interner,
        };
        let decoded: FixedBytes<40> = from_slice_with(&frame, &mut ctx).unwrap();
        assert_eq!(decoded.as_bytes(), &value);
        assert_eq!(decoded.as_bytes().as_ptr(), interner.held.as_ptr());
        // Without it, the same value is a view into the frame (it is most of the frame).
        let shared: FixedBytes<40> = from_slice_with(&frame, &mut Shared(frame.clone())).unwrap();
        assert_eq!(shared, decoded);
        assert!(frame.as_ptr_range().contains(&shared.as_bytes().as_ptr()));
    }

    #[test]
    fn an_interner_cannot_change_a_decoded_value() {
        let frame =
            Bytes::from(to_vec(&FixedBytes::<40>::copy_from_slice(&[9; 40]).unwrap()).unwrap());
        let interner = OneBuffer {
            held: Bytes::copy_from_slice(&[1; 40]),
            lying: true,
        };
        let mut ctx = SharedInterned {
            source: &frame,
            interner: &interner,
        };
        let decoded: FixedBytes<40> = from_slice_with(&frame, &mut ctx).unwrap();
        assert_eq!(decoded.as_bytes(), &[9; 40]);
    }

    #[test]
    fn encodings_are_allocated_at_their_exact_length() {
        for len in [0usize, 1, 23, 24, 255, 256, 4000, 5000] {
            let out = to_vec(&BoundedBytes::<8192>::new(vec![7u8; len]).unwrap()).unwrap();
            assert_eq!(out.capacity(), out.len(), "{len}-byte string");
        }
    }

    #[test]
    fn fixed_bytes_reject_wrong_lengths_with_a_typed_error() {
        let enc = to_vec(&FixedBytes::<3>::copy_from_slice(&[1, 2, 3]).unwrap()).unwrap();
        assert_eq!(
            from_slice::<FixedBytes<4>>(&enc),
            Err(DecodeError::WrongLength {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(
            from_slice::<FixedBytes<2>>(&enc),
            Err(DecodeError::BytesTooLong { max: 2 })
        );
        assert!(FixedBytes::<2>::copy_from_slice(&[1]).is_err());
    }

    #[test]
    fn huge_declared_list_is_rejected_before_allocation() {
        // An array header claiming 2^63 items, followed by nothing.
        let mut bogus = vec![0x9b];
        bogus.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(
            from_slice::<BoundedVec<u8, 16>>(&bogus),
            Err(DecodeError::ListTooLong { max: 16 })
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut enc = to_vec(&BoundedBytes::<8>::new(&b"abc"[..]).unwrap()).unwrap();
        enc.push(0);
        assert_eq!(
            from_slice::<BoundedBytes<8>>(&enc),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn indefinite_encodings_are_rejected() {
        // An indefinite byte string and an indefinite array.
        assert!(matches!(
            from_slice::<BoundedBytes<8>>(&[0x5f, 0x41, 0x00, 0xff]),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            from_slice::<BoundedVec<u8, 8>>(&[0x9f, 0x01, 0xff]),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
