//! Human-readable reports of a [`RunResult`]: a plain-text terminal summary and a
//! self-contained HTML page with inline SVG plots (drawn with plotters' SVG backend; no fonts,
//! no scripts, no external assets).
//!
//! Metrics are listed in [`METRIC_KEYS`] order, which is the order of the fields of
//! [`Metrics`](crate::metrics::Metrics). A metric without samples is shown as `null`, never
//! filled in.
//!
//! - this file: metric values and their formatting, shared by both reports;
//! - `terminal`: the plain-text summary;
//! - `html`: the HTML page;
//! - `plots`: the SVG plots on that page.

mod html;
mod plots;
mod terminal;
#[cfg(test)]
mod tests;

pub use html::html_report;
pub use terminal::terminal_summary;

use serde_json::Value;

use crate::metrics::{ExpectOutcome, RunResult};
use crate::scenario::METRIC_KEYS;

// ---------------------------------------------------------------------------------------------
// Metric values and their formatting.
// ---------------------------------------------------------------------------------------------

/// How a metric's value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A ratio: 4 decimals.
    Ratio,
    /// Milliseconds: 1 decimal.
    Ms,
    /// An integer count.
    Count,
    /// Bytes (or bytes per second): integer with thousands separators.
    Bytes,
    /// A rate per second: integer with thousands separators.
    Rate,
    /// Wall-clock seconds: 3 decimals.
    Seconds,
    /// Memory sizes: 1 decimal.
    OneDecimal,
    /// Small averages: 2 decimals.
    TwoDecimals,
}

/// The display kind of a dotted metric key.
fn kind_of(key: &str) -> Kind {
    let top = key.split('.').next().unwrap_or(key);
    match top {
        "delivery_ratio" | "rmr" | "foaf_success_ratio" | "honest_view_fraction" => Kind::Ratio,
        "bytes_sent" | "bytes_per_node_per_s" | "idle_bytes_per_node_per_s" => Kind::Bytes,
        "events_per_s" => Kind::Rate,
        "wall_s" => Kind::Seconds,
        "peak_rss_mb" | "memory_per_node_kb" | "idle_frames_per_node_per_s" => Kind::OneDecimal,
        "foaf_forwards_per_query" => Kind::TwoDecimals,
        "signatures_per_node_per_s" => Kind::TwoDecimals,
        t if t.ends_with("_ms") => Kind::Ms,
        t if t.ends_with("_ratio") => Kind::Ratio,
        _ => Kind::Count,
    }
}

/// `1234567` → `"1,234,567"`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A float rounded to an integer, with thousands separators.
pub(super) fn thousands_f(v: f64) -> String {
    if !v.is_finite() || v.abs() >= 1e18 {
        return format!("{v}");
    }
    let r = v.round();
    let s = thousands(r.abs() as u64);
    if r < 0.0 { format!("-{s}") } else { s }
}

/// A metric value as text (`null` for `None`).
fn fmt_value(key: &str, v: Option<f64>) -> String {
    let Some(v) = v else { return "null".to_owned() };
    if !v.is_finite() {
        return format!("{v}");
    }
    match kind_of(key) {
        Kind::Ratio => format!("{v:.4}"),
        Kind::Ms | Kind::OneDecimal => format!("{v:.1}"),
        Kind::Seconds => format!("{v:.3}"),
        Kind::TwoDecimals => format!("{v:.2}"),
        Kind::Bytes | Kind::Rate => thousands_f(v),
        Kind::Count if v.fract() == 0.0 => format!("{v:.0}"),
        Kind::Count => format!("{v:.4}"),
    }
}

/// An expectation's bound: `≥ x`, `≤ y`, `x..y` (or `any` if it has none).
fn fmt_bound(e: &ExpectOutcome) -> String {
    match (e.min, e.max) {
        (Some(lo), Some(hi)) => format!("{lo}..{hi}"),
        (Some(lo), None) => format!("≥ {lo}"),
        (None, Some(hi)) => format!("≤ {hi}"),
        (None, None) => "any".to_owned(),
    }
}

/// Every metric as `(dotted key, value)`, in struct order.
fn metric_rows(r: &RunResult) -> Vec<(&'static str, Option<f64>)> {
    let json = serde_json::to_value(&r.metrics).unwrap_or(Value::Null);
    METRIC_KEYS
        .iter()
        .map(|&key| (key, lookup(&json, key)))
        .collect()
}

/// The number at a dotted path of `json`.
fn lookup(json: &Value, key: &str) -> Option<f64> {
    key.split('.')
        .try_fold(json, |v, part| v.get(part))
        .and_then(Value::as_f64)
}
