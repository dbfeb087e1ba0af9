//! hearsay
