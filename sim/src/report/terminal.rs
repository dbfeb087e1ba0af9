//! The plain-text terminal summary.

use std::fmt::Write as _;

use super::{fmt_bound, fmt_value, metric_rows, thousands_f};
use crate::metrics::RunResult;

/// Widest line the terminal summary aims for (the replay command is never wrapped).
pub(super) const MAX_COLS: usize = 100;

/// Control characters (ANSI escapes, newlines in a scenario name, ...) made visible and harmless.
pub(super) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Greedy word wrap of `text` to `width` columns, continuation lines indented by `indent`.
fn wrap(text: &str, first_prefix: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = first_prefix.to_owned();
    let mut line_len = first_prefix.chars().count();
    let mut at_start = true;
    for word in text.split_whitespace() {
        let wlen = word.chars().count();
        if !at_start && line_len + 1 + wlen > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            line_len = indent;
            at_start = true;
        }
        if !at_start {
            line.push(' ');
            line_len += 1;
        }
        line.push_str(word);
        line_len += wlen;
        at_start = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// A readable plain-text report of `r`: header, every metric, the expectations, warnings and,
/// if an expectation failed, a last line `FAILED: replay with: <command>`.
///
/// Lines stay within 100 columns, except that the replay command is never broken.
pub fn terminal_summary(r: &RunResult) -> String {
    let mut out = String::new();
    let rule = "─".repeat(MAX_COLS.min(72));

    // Header.
    let _ = writeln!(out, "hearsay-sim: {}", clean(&r.name));
    out.push_str(&rule);
    out.push('\n');
    let verdict = if r.expectations.is_empty() {
        "no expectations".to_owned()
    } else {
        let passed = r.expectations.iter().filter(|e| e.passed).count();
        let word = if r.passed() { "PASS" } else { "FAIL" };
        format!(
            "{word} ({passed}/{} expectations held)",
            r.expectations.len()
        )
    };
    let mut header: Vec<(&str, String)> = Vec::new();
    if let Some(file) = &r.file {
        header.push(("file", clean(file)));
    }
    header.extend([
        ("nodes", r.nodes.to_string()),
        ("seed", r.seed.to_string()),
        ("duration", format!("{:.1} s (virtual)", r.duration_s)),
        ("crypto", clean(&r.crypto)),
        ("trace hash", clean(&r.trace_hash)),
        ("result", verdict),
    ]);
    for (k, v) in &header {
        let _ = writeln!(out, "  {k:<12}{v}");
    }

    // Metrics.
    let rows = metric_rows(r);
    let key_w = rows
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0)
        .max("metric".len());
    let vals: Vec<String> = rows.iter().map(|&(k, v)| fmt_value(k, v)).collect();
    let val_w = vals
        .iter()
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0)
        .max("value".len());
    let _ = writeln!(out, "\nMetrics");
    let _ = writeln!(out, "  {:<key_w$}  {:>val_w$}", "metric", "value");
    let _ = writeln!(out, "  {}  {}", "-".repeat(key_w), "-".repeat(val_w));
    for ((key, _), val) in rows.iter().zip(&vals) {
        let _ = writeln!(out, "  {key:<key_w$}  {val:>val_w$}");
    }

    // Traffic by message kind (--traffic).
    if !r.traffic.is_empty() {
        let secs_nodes = r.metrics.idle_bytes_per_node_per_s.and_then(|b| {
            let total: u64 = r.traffic.iter().map(|t| t.bytes).sum();
            (b > 0.0).then(|| total as f64 / b)
        });
        let _ = writeln!(
            out,
            "\nTraffic by message (honest nodes, idle window or whole run)"
        );
        let _ = writeln!(
            out,
            "  {:<40}  {:>12}  {:>14}  {:>9}",
            "message", "frames", "bytes", "B/node/s"
        );
        for t in r.traffic.iter().take(30) {
            let per = secs_nodes.map_or("".to_string(), |d| format!("{:.1}", t.bytes as f64 / d));
            let _ = writeln!(
                out,
                "  {:<40}  {:>12}  {:>14}  {:>9}",
                clean(&t.message),
                t.frames,
                thousands_f(t.bytes as f64),
                per
            );
        }
    }

    // Expectations.
    let _ = writeln!(out, "\nExpectations");
    if r.expectations.is_empty() {
        let _ = writeln!(out, "  (none)");
    } else {
        let cells: Vec<[String; 4]> = r
            .expectations
            .iter()
            .map(|e| {
                let result = if e.passed { "PASS" } else { "FAIL" };
                [
                    clean(&e.metric),
                    fmt_bound(e),
                    fmt_value(&e.metric, e.value),
                    result.to_owned(),
                ]
            })
            .collect();
        let heads = ["metric", "bound", "value", "result"];
        let mut w = heads.map(str::len);
        for row in &cells {
            for (wi, cell) in w.iter_mut().zip(row) {
                *wi = (*wi).max(cell.chars().count());
            }
        }
        // Keep the table inside the page: the metric column gives way first.
        let fixed = 2 + w[1] + 2 + w[2] + 2 + w[3] + 2;
        w[0] = w[0].min(MAX_COLS.saturating_sub(fixed).max(12));
        let [w0, w1, w2, w3] = w;
        let _ = writeln!(
            out,
            "  {:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}",
            heads[0], heads[1], heads[2], heads[3]
        );
        let _ = writeln!(
            out,
            "  {}  {}  {}  {}",
            "-".repeat(w0),
            "-".repeat(w1),
            "-".repeat(w2),
            "-".repeat(w3)
        );
        for [m, b, v, res] in &cells {
            let m = if m.chars().count() > w0 {
                let mut t: String = m.chars().take(w0.saturating_sub(1)).collect();
                t.push('…');
                t
            } else {
                m.clone()
            };
            let _ = writeln!(out, "  {m:<w0$}  {b:<w1$}  {v:>w2$}  {res:<w3$}");
        }
    }

    // Warnings.
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings");
        for w in &r.warnings {
            out.push_str(&wrap(&clean(w), "  - ", 4, MAX_COLS));
        }
    }

    if !r.passed() {
        let _ = writeln!(out, "\nFAILED: replay with: {}", clean(&r.replay_command));
    }
    // Trailing spaces from padding are noise in a terminal.
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
