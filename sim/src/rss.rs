//! Resident memory of this process (Linux `/proc/self/status`; `None` elsewhere).

fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size so far, KiB.
pub fn peak_rss_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

/// Current resident set size, KiB.
pub fn rss_kb() -> Option<u64> {
    status_kb("VmRSS:")
}
