//! hearsay-sim
