//! hearsay-benches
