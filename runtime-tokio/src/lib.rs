//! hearsay-tokio
