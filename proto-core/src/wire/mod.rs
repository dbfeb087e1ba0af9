//! The codec every protocol message is written with, and the limits it enforces.
//!
//! Messages are CBOR (minicbor) whose fields carry explicit indices (`#[n(i)]`) so they can
//! grow new trailing fields. Every list and byte string has its own limit, checked before
//! allocation; decoding returns a typed [`DecodeError`] and never panics. This module sits below
//! every protocol; [`crate::frame`] gathers the protocols' messages into one [`Frame`](crate::frame::Frame).

pub mod codec;

pub use codec::{BoundedBytes, BoundedVec, DecodeError, EncodeError, FixedBytes, Interner};

/// The largest frame, in bytes, a node sends or accepts (256 KiB, the blob limit).
pub const MAX_FRAME_LEN: usize = 256 * 1024;
