//! Human-readable reports of a [`RunResult`]: a plain-text terminal summary and a
//! self-contained HTML page with inline SVG plots (drawn with plotters' SVG backend; no fonts,
//! no scripts, no external assets).
//!
//! Metrics are listed in [`METRIC_KEYS`] order, which is the order of the fields of
//! [`Metrics`](crate::metrics::Metrics). A metric without samples is shown as `null`, never
//! filled in.

use std::error::Error;
use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use crate::metrics::{ExpectOutcome, RunResult};
use crate::scenario::METRIC_KEYS;

/// Widest line the terminal summary aims for (the replay command is never wrapped).
const MAX_COLS: usize = 100;
/// Most points a line plot gets; longer series are thinned (keeping each bucket's extremes).
const MAX_POINTS: usize = 1000;
/// Plot size in SVG pixels.
const PLOT_W: u32 = 640;
const PLOT_H: u32 = 360;

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
        "delivery_ratio" | "rmr" | "foaf_success_ratio" => Kind::Ratio,
        "bytes_sent" | "bytes_per_node_per_s" => Kind::Bytes,
        "events_per_s" => Kind::Rate,
        "wall_s" => Kind::Seconds,
        "peak_rss_mb" | "memory_per_node_kb" => Kind::OneDecimal,
        "foaf_forwards_per_query" => Kind::TwoDecimals,
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
fn thousands_f(v: f64) -> String {
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

// ---------------------------------------------------------------------------------------------
// Terminal summary.
// ---------------------------------------------------------------------------------------------

/// Control characters (ANSI escapes, newlines in a scenario name, ...) made visible and harmless.
fn clean(s: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// HTML report.
// ---------------------------------------------------------------------------------------------

/// `s` escaped for HTML text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;\
max-width:1340px;padding:0 1em;color:#1a1a1a;background:#fff}\
h1{font-size:1.5em;margin-bottom:.3em;word-break:break-word}\
h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}\
h3{font-size:1em;margin:.2em 0}\
table{border-collapse:collapse;margin:.5em 0}\
th,td{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}\
th{background:#f4f4f4}\
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,monospace}\
td.key,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\
table.header td:first-child{color:#555;padding-left:0}\
.null{color:#999}.pass{color:#17752b;font-weight:bold}.fail{color:#b3261e;font-weight:bold}\
.banner{padding:.6em 1em;border-radius:4px;margin:1em 0}\
.banner.fail{background:#fdecea;border:1px solid #f5c2c0}\
.banner.pass{background:#e9f6ec;border:1px solid #b9e0c2}\
ul.warnings li{color:#7a4b00}\
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1.2em}\
figure{margin:0;border:1px solid #eee;padding:.5em;border-radius:4px}\
svg{max-width:100%;height:auto;display:block}\
.nodata{color:#999;font-style:italic;padding:2em 0;text-align:center}\
";

/// One self-contained HTML page for `r`: header, metrics, expectations, warnings and plots
/// (inline SVG). Every piece of text from the run is escaped.
pub fn html_report(r: &RunResult) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let name = esc(&r.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n\
         <title>hearsay-sim: {name}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <h1>hearsay-sim: {name}</h1>\n"
    );

    // Verdict banner.
    if r.expectations.is_empty() {
        h.push_str("<p>No expectations.</p>\n");
    } else {
        let passed = r.expectations.iter().filter(|e| e.passed).count();
        let total = r.expectations.len();
        if r.passed() {
            let _ = writeln!(
                h,
                "<div class=\"banner pass\">PASS: {passed}/{total} expectations held.</div>"
            );
        } else {
            let _ = writeln!(
                h,
                "<div class=\"banner fail\"><strong>FAILED</strong>: {passed}/{total} expectations held. \
                 Replay with: <code>{}</code></div>",
                esc(&r.replay_command)
            );
        }
    }

    // Header.
    h.push_str("<table class=\"header\">\n");
    let mut header: Vec<(&str, String)> = Vec::new();
    if let Some(file) = &r.file {
        header.push(("file", format!("<code>{}</code>", esc(file))));
    }
    header.extend([
        ("nodes", r.nodes.to_string()),
        ("seed", r.seed.to_string()),
        ("duration", format!("{:.1} s (virtual)", r.duration_s)),
        ("crypto", esc(&r.crypto)),
        ("trace hash", format!("<code>{}</code>", esc(&r.trace_hash))),
        ("replay", format!("<code>{}</code>", esc(&r.replay_command))),
    ]);
    for (k, v) in &header {
        let _ = writeln!(h, "<tr><td>{k}</td><td>{v}</td></tr>");
    }
    h.push_str("</table>\n");

    // Expectations.
    h.push_str("<h2>Expectations</h2>\n");
    if r.expectations.is_empty() {
        h.push_str("<p class=\"null\">none</p>\n");
    } else {
        h.push_str(
            "<table>\n<tr><th>metric</th><th>bound</th><th>value</th><th>result</th></tr>\n",
        );
        for e in &r.expectations {
            let (class, word) = if e.passed {
                ("pass", "PASS")
            } else {
                ("fail", "FAIL")
            };
            let vclass = if e.value.is_none() { "num null" } else { "num" };
            let _ = writeln!(
                h,
                "<tr><td class=\"key\">{}</td><td>{}</td><td class=\"{vclass}\">{}</td>\
                 <td class=\"{class}\">{word}</td></tr>",
                esc(&e.metric),
                esc(&fmt_bound(e)),
                esc(&fmt_value(&e.metric, e.value))
            );
        }
        h.push_str("</table>\n");
    }

    // Warnings.
    if !r.warnings.is_empty() {
        h.push_str("<h2>Warnings</h2>\n<ul class=\"warnings\">\n");
        for w in &r.warnings {
            let _ = writeln!(h, "<li>{}</li>", esc(w));
        }
        h.push_str("</ul>\n");
    }

    // Plots.
    h.push_str("<h2>Plots</h2>\n<div class=\"plots\">\n");
    let s = &r.series;
    figure(&mut h, "Delivery latency (CDF)", latency_cdf(&s.latency_ms));
    figure(
        &mut h,
        "Deliveries over time",
        deliveries_over_time(&s.deliveries_over_time),
    );
    figure(
        &mut h,
        "Active-view degree at the end",
        degree_histogram(&s.active_view_degree),
    );
    figure(
        &mut h,
        "Frames sent per node",
        frames_per_node(&s.frames_per_node),
    );
    if !s.components_over_time.is_empty() {
        figure(
            &mut h,
            "Connected components over time",
            components_over_time(&s.components_over_time),
        );
    }
    h.push_str("</div>\n");

    // Metrics.
    h.push_str("<h2>Metrics</h2>\n<table>\n<tr><th>metric</th><th>value</th></tr>\n");
    for (key, v) in metric_rows(r) {
        let class = if v.is_none() { "num null" } else { "num" };
        let _ = writeln!(
            h,
            "<tr><td class=\"key\">{key}</td><td class=\"{class}\">{}</td></tr>",
            esc(&fmt_value(key, v))
        );
    }
    h.push_str("</table>\n</body>\n</html>\n");
    h
}

/// A plot's outcome: an SVG document, no data, or a drawing error.
#[derive(Debug)]
enum Plot {
    Svg(String),
    NoData,
    Failed(String),
}

fn figure(h: &mut String, title: &str, plot: Plot) {
    let _ = writeln!(h, "<figure>\n<h3>{}</h3>", esc(title));
    match plot {
        Plot::Svg(svg) => h.push_str(&svg),
        Plot::NoData => h.push_str("<p class=\"nodata\">no data</p>\n"),
        Plot::Failed(e) => {
            let _ = writeln!(h, "<p class=\"nodata\">plot failed: {}</p>", esc(&e));
        }
    }
    h.push_str("</figure>\n");
}

type DrawResult = Result<(), Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Runs `draw` on a fresh white SVG canvas and returns the finished document.
fn svg(draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Plot {
    let mut buf = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut buf, (PLOT_W, PLOT_H)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into))
    };
    match result {
        Ok(()) => Plot::Svg(buf),
        Err(e) => Plot::Failed(e.to_string()),
    }
}

const LINE: RGBColor = RGBColor(31, 119, 180);
const BAR: RGBColor = RGBColor(31, 119, 180);

fn label_style() -> TextStyle<'static> {
    ("sans-serif", 15).into_font().color(&BLACK)
}

/// An axis label for `v` on an axis spanning `span`: compact (`12k`, `3.2M`) for large values,
/// with as many decimals as the span needs otherwise (`decimals` forces a number of decimals).
fn axis_label(v: f64, span: f64, decimals: Option<usize>) -> String {
    let a = v.abs().max(span.abs());
    let compact = |v: f64, unit: f64, suffix: &str| {
        let s = format!("{:.1}", v / unit);
        format!("{}{suffix}", s.strip_suffix(".0").unwrap_or(&s))
    };
    if a >= 1e9 {
        compact(v, 1e9, "G")
    } else if a >= 1e6 {
        compact(v, 1e6, "M")
    } else if a >= 1e4 {
        compact(v, 1e3, "k")
    } else {
        let d = decimals.unwrap_or(if span >= 10.0 {
            0
        } else if span >= 1.5 {
            1
        } else {
            2
        });
        format!("{v:.d$}")
    }
}

/// A non-degenerate axis range covering `lo..hi` (starting at 0 when everything is positive).
fn span(lo: f64, hi: f64, from_zero: bool) -> std::ops::Range<f64> {
    let lo = if from_zero { lo.min(0.0) } else { lo };
    if hi - lo > f64::EPSILON * hi.abs().max(1.0) {
        lo..hi + (hi - lo) * 0.02
    } else {
        lo - 1.0..hi + 1.0
    }
}

/// At most about [`MAX_POINTS`] points of `pts` (in x order): each bucket keeps its lowest and
/// highest point, so spikes survive.
fn thin(pts: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if pts.len() <= MAX_POINTS {
        return pts;
    }
    let per = pts.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for chunk in pts.chunks(per) {
        let lo = chunk
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map_or(0, |(i, _)| i);
        let hi = chunk
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map_or(0, |(i, _)| i);
        let (a, b) = (lo.min(hi), lo.max(hi));
        out.push(chunk[a]);
        if b != a {
            out.push(chunk[b]);
        }
    }
    if let (Some(last), Some(end)) = (out.last().copied(), pts.last().copied())
        && last != end
    {
        out.push(end);
    }
    out
}

/// What a line chart's y axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum YAxis {
    /// A fraction: `0..1`.
    Fraction,
    /// Counts: from 0, integer labels only.
    Count,
}

/// A line chart of `pts` (finite points only).
fn line_chart(pts: Vec<(f64, f64)>, x_desc: &str, y_desc: &str, y_axis: YAxis) -> Plot {
    let pts: Vec<(f64, f64)> = pts
        .into_iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pts.is_empty() {
        return Plot::NoData;
    }
    let pts = thin(pts);
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in &pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    let xr = span(x0, x1, x0 >= 0.0);
    let yr = match y_axis {
        YAxis::Fraction => y0.min(0.0)..y1.max(1.0),
        YAxis::Count => span(y0, y1, true),
    };
    let (x_span, y_span) = (xr.end - xr.start, yr.end - yr.start);
    let (y_decimals, y_labels) = match y_axis {
        YAxis::Fraction => (Some(2), 11),
        // At most one label per integer, so none falls between two.
        YAxis::Count => (Some(0), (y_span.floor() as usize + 1).clamp(2, 10)),
    };
    let single = pts.len() == 1;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(xr, yr)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .axis_desc_style(label_style())
            .label_style(label_style())
            .y_labels(y_labels)
            .x_label_formatter(&|v| axis_label(*v, x_span, None))
            .y_label_formatter(&|v| axis_label(*v, y_span, y_decimals))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        if single {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, LINE.filled())))?;
        } else {
            chart.draw_series(LineSeries::new(pts.iter().copied(), LINE.stroke_width(2)))?;
        }
        Ok(())
    })
}

/// Bars of `counts[i]` at `i` (integers on both axes).
fn bar_chart(counts: &[(u64, u64)], x_desc: &str, y_desc: &str) -> Plot {
    if counts.is_empty() {
        return Plot::NoData;
    }
    let x_max = counts.iter().map(|c| c.0).max().unwrap_or(0);
    let x_min = counts.iter().map(|c| c.0).min().unwrap_or(0);
    let y_max = counts.iter().map(|c| c.1).max().unwrap_or(0);
    let y_top = y_max.saturating_add((y_max / 20).max(1));
    // plotters' integer ranges include their end; a single value gets a neighbour for scale.
    let (x_lo, x_hi) = if x_min == x_max {
        (x_min.saturating_sub(1), x_max.saturating_add(1))
    } else {
        (x_min, x_max)
    };
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d((x_lo..x_hi).into_segmented(), 0u64..y_top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .axis_desc_style(label_style())
            .label_style(label_style())
            .y_label_formatter(&|v| axis_label(*v as f64, y_top as f64, Some(0)))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(BAR.mix(0.85).filled())
                .margin(1)
                .data(counts.iter().copied()),
        )?;
        Ok(())
    })
}

/// Cumulative fraction of deliveries at or below each latency.
fn latency_cdf(samples: &[f64]) -> Plot {
    let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    if s.is_empty() {
        return Plot::NoData;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let mut pts = vec![(s[0], 0.0)];
    if n <= MAX_POINTS {
        pts.extend(
            s.iter()
                .enumerate()
                .map(|(i, &x)| (x, (i + 1) as f64 / n as f64)),
        );
    } else {
        pts.extend((1..=MAX_POINTS).map(|k| {
            let i = (k * n).div_ceil(MAX_POINTS).clamp(1, n) - 1;
            (s[i], (i + 1) as f64 / n as f64)
        }));
    }
    line_chart(
        pts,
        "latency (ms)",
        "fraction of deliveries",
        YAxis::Fraction,
    )
}

fn deliveries_over_time(d: &[(f64, u64)]) -> Plot {
    let pts = d.iter().map(|&(t, n)| (t, n as f64)).collect();
    line_chart(
        pts,
        "virtual time (s)",
        "cumulative deliveries",
        YAxis::Count,
    )
}

fn components_over_time(d: &[(f64, u64)]) -> Plot {
    // Drawn as steps: the count holds until the next sample.
    let mut pts: Vec<(f64, f64)> = Vec::with_capacity(d.len() * 2);
    for (i, &(t, c)) in d.iter().enumerate() {
        if i > 0 {
            pts.push((t, d[i - 1].1 as f64));
        }
        pts.push((t, c as f64));
    }
    line_chart(pts, "virtual time (s)", "components", YAxis::Count)
}

fn degree_histogram(degrees: &[u64]) -> Plot {
    let mut counts = std::collections::BTreeMap::<u64, u64>::new();
    for &d in degrees {
        *counts.entry(d).or_default() += 1;
    }
    let counts: Vec<(u64, u64)> = counts.into_iter().collect();
    bar_chart(&counts, "active-view degree", "nodes")
}

fn frames_per_node(frames: &[u64]) -> Plot {
    if frames.len() <= 200 {
        let bars: Vec<(u64, u64)> = frames
            .iter()
            .enumerate()
            .map(|(i, &f)| (i as u64, f))
            .collect();
        bar_chart(&bars, "node", "frames sent")
    } else {
        let pts = frames
            .iter()
            .enumerate()
            .map(|(i, &f)| (i as f64, f as f64))
            .collect();
        line_chart(pts, "node", "frames sent", YAxis::Count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{MeanMax, Metrics, Percentiles, Series};

    fn sample() -> RunResult {
        let metrics = Metrics {
            delivery_ratio: Some(0.987_654_321),
            latency_ms: Percentiles::of(&[12.0, 40.5, 80.25, 300.0]),
            rmr: Some(2.5),
            ldh_max: Some(6),
            components: Some(1),
            frames_sent: Some(1_234_567),
            bytes_sent: Some(9_876_543_210),
            bytes_per_node_per_s: Some(1234.56),
            events: Some(42_000),
            wall_s: Some(1.234_567),
            foaf_forwards_per_query: Some(MeanMax {
                mean: 3.333,
                max: 9.0,
            }),
            ..Metrics::default()
        };
        let expectations = vec![
            ExpectOutcome {
                metric: "delivery_ratio".into(),
                min: Some(0.99),
                max: None,
                value: Some(0.987_654_321),
                passed: false,
            },
            ExpectOutcome {
                metric: "latency_ms.p95".into(),
                min: None,
                max: Some(500.0),
                value: Some(300.0),
                passed: true,
            },
            ExpectOutcome {
                metric: "components".into(),
                min: Some(1.0),
                max: Some(1.0),
                value: Some(1.0),
                passed: true,
            },
            ExpectOutcome {
                metric: "detection_ms.p99".into(),
                min: None,
                max: Some(3000.0),
                value: None,
                passed: false,
            },
        ];
        let series = Series {
            latency_ms: (0..5000).map(|i| f64::from(i % 300) + 0.5).collect(),
            deliveries_over_time: (0..100)
                .map(|i| (f64::from(i) * 0.6, (i * i) as u64))
                .collect(),
            active_view_degree: vec![3, 4, 4, 5, 5, 5, 5, 6, 6, 7],
            frames_per_node: (0..50).map(|i| 100 + (i * 37) % 90).collect(),
            components_over_time: Vec::new(),
        };
        RunResult {
            name: "churn <b>&\"".into(),
            file: Some("scenarios/churn.toml".into()),
            seed: 42,
            nodes: 50,
            duration_s: 60.0,
            crypto: "sim-fast".into(),
            metrics,
            expectations,
            warnings: vec!["action `hang` is not supported by this build; it was skipped".into()],
            trace_hash: "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0".into(),
            replay_command: "hearsay-sim run scenarios/churn.toml --seed 42 --crypto sim-fast"
                .into(),
            series,
        }
    }

    fn empty() -> RunResult {
        RunResult {
            name: String::new(),
            file: None,
            seed: 0,
            nodes: 0,
            duration_s: 0.0,
            crypto: String::new(),
            metrics: Metrics::default(),
            expectations: Vec::new(),
            warnings: Vec::new(),
            trace_hash: String::new(),
            replay_command: String::new(),
            series: Series::default(),
        }
    }

    #[test]
    fn terminal_lists_every_metric_with_nulls_and_failure() {
        let r = sample();
        let t = terminal_summary(&r);
        for key in METRIC_KEYS {
            assert!(
                t.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{key} "))),
                "metric {key} missing:\n{t}"
            );
        }
        let line = |key: &str| {
            t.lines()
                .find(|l| l.trim_start().starts_with(&format!("{key} ")))
                .unwrap()
                .to_owned()
        };
        assert!(line("detection_ms.p50").ends_with("null"));
        assert!(line("presence_gone_ms.max").ends_with("null"));
        assert!(line("delivery_ratio").ends_with("0.9877"));
        assert!(line("latency_ms.p95").ends_with("300.0"));
        assert!(line("ldh_max").ends_with(" 6"));
        assert!(line("bytes_sent").ends_with("9,876,543,210"));
        assert!(line("bytes_per_node_per_s").ends_with("1,235"));
        assert!(line("wall_s").ends_with("1.235"));
        assert!(t.contains("FAIL"));
        assert!(t.contains("≥ 0.99") && t.contains("≤ 500") && t.contains("1..1"));
        assert!(t.contains("churn <b>&\"") && t.contains(&r.trace_hash) && t.contains("sim-fast"));
        assert!(t.contains("not supported by this build"));
        let last = t.lines().last().unwrap();
        assert_eq!(last, format!("FAILED: replay with: {}", r.replay_command));
        for l in t.lines() {
            assert!(l.chars().count() <= MAX_COLS, "line too long: {l}");
        }
        // Metric order is the struct's.
        let pos = |k: &str| t.find(&format!("\n  {k} ")).unwrap();
        assert!(
            pos("delivery_ratio") < pos("latency_ms.p50") && pos("latency_ms.p99") < pos("rmr")
        );
        assert!(pos("foaf_success_ratio") < pos("events_per_s"));
    }

    #[test]
    fn terminal_passing_run_has_no_failed_line() {
        let mut r = sample();
        r.expectations.retain(|e| e.passed);
        let t = terminal_summary(&r);
        assert!(!t.contains("FAILED") && !t.contains("FAIL ") && t.contains("PASS"));
    }

    #[test]
    fn html_escapes_and_plots() {
        let r = sample();
        let h = html_report(&r);
        assert!(h.contains("churn &lt;b&gt;&amp;&quot;"), "name not escaped");
        assert!(!h.contains("<b>&\""), "raw name leaked");
        assert!(h.contains(&r.trace_hash));
        // Four non-empty series, one empty (components_over_time, which is then left out).
        assert_eq!(h.matches("<svg").count(), 4);
        assert_eq!(h.matches("</svg>").count(), 4);
        assert!(!h.contains("no data"));
        for key in METRIC_KEYS {
            assert!(h.contains(&format!(">{key}<")), "metric {key} missing");
        }
        assert!(h.contains(">null<") && h.contains(">FAIL<") && h.contains(">PASS<"));
        assert!(h.contains("&lt;b&gt;") && !h.contains("<script"));
        assert!(
            !h.contains(" src=") && !h.contains("<link") && !h.contains("url("),
            "external assets"
        );
        assert!(h.contains(&esc(&r.replay_command)));
        assert!(
            h.contains("latency (ms)") && h.contains("fraction of deliveries"),
            "axis labels missing"
        );

        let mut r = r;
        r.series.frames_per_node.clear();
        r.series.components_over_time = vec![(0.0, 3), (10.0, 2), (20.0, 1)];
        let h = html_report(&r);
        assert_eq!(h.matches("<svg").count(), 4);
        assert_eq!(h.matches("no data").count(), 1);
        assert!(h.contains("components over time"));
    }

    #[test]
    fn all_empty_renders() {
        let r = empty();
        let t = terminal_summary(&r);
        assert!(!t.contains("FAILED") && t.contains("(none)"));
        assert_eq!(t.matches("null").count(), METRIC_KEYS.len());
        let h = html_report(&r);
        assert_eq!(h.matches("<svg").count(), 0);
        assert_eq!(h.matches("no data").count(), 4);
        assert!(h.ends_with("</html>\n"));
    }

    #[test]
    fn awkward_series_do_not_panic() {
        let mut r = empty();
        let cases: Vec<Series> = vec![
            Series {
                latency_ms: vec![5.0],
                deliveries_over_time: vec![(0.0, 0)],
                active_view_degree: vec![0],
                frames_per_node: vec![0],
                components_over_time: vec![(1.0, 1)],
            },
            Series {
                latency_ms: vec![f64::NAN, f64::INFINITY, 7.0, 7.0],
                deliveries_over_time: vec![(1.0, 5), (1.0, 5)],
                active_view_degree: vec![u64::from(u32::MAX); 3],
                frames_per_node: vec![u64::MAX / 2; 1000],
                components_over_time: vec![(0.0, 0), (0.0, 0)],
            },
            Series {
                latency_ms: vec![f64::NAN],
                deliveries_over_time: (0..100_000)
                    .map(|i| (f64::from(i) * 1e-3, i as u64))
                    .collect(),
                active_view_degree: (0..300).collect(),
                frames_per_node: (0..20_000).map(|i| i % 977).collect(),
                components_over_time: vec![(-5.0, 2), (1e12, 1)],
            },
        ];
        for s in cases {
            r.series = s;
            let h = html_report(&r);
            assert!(!h.contains("plot failed"), "{h}");
            // Thinning keeps even huge series small.
            assert!(h.len() < 1_000_000, "report is {} bytes", h.len());
        }
    }

    #[test]
    fn every_metric_field_is_listed() {
        // A fully populated Metrics: every JSON leaf must be one of METRIC_KEYS, and vice versa.
        let p = Percentiles::of(&[1.0]);
        let m = Metrics {
            delivery_ratio: Some(1.0),
            latency_ms: p,
            rmr: Some(1.0),
            ldh_max: Some(1),
            payload_frames_to_nonsubscribers: Some(1),
            detection_ms: p,
            detection_missed: Some(1),
            false_positives: Some(1),
            components: Some(1),
            isolated_nodes: Some(1),
            components_at_heal: Some(1),
            remerge_ms: Some(1.0),
            forged_delivered: Some(1),
            duplicate_deliveries: Some(1),
            frames_sent: Some(1),
            bytes_sent: Some(1),
            bytes_per_node_per_s: Some(1.0),
            events: Some(1),
            wall_s: Some(1.0),
            peak_rss_mb: Some(1.0),
            presence_seen_ms: Some(crate::metrics::P50P95Max {
                p50: 1.0,
                p95: 1.0,
                max: 1.0,
            }),
            presence_gone_ms: Some(crate::metrics::MedianMax { p50: 1.0, max: 1.0 }),
            foaf_success_ratio: Some(1.0),
            foaf_forwards_per_query: Some(MeanMax {
                mean: 1.0,
                max: 1.0,
            }),
            rejected_frames: Some(1),
            memory_per_node_kb: Some(1.0),
            events_per_s: Some(1.0),
            presence_gone_left_ms: Some(crate::metrics::MedianMax { p50: 1.0, max: 1.0 }),
            presence_gone_crashed_ms: Some(crate::metrics::MedianMax { p50: 1.0, max: 1.0 }),
        };
        fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, v) in map {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        leaves(&key, v, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let mut found = Vec::new();
        leaves("", &serde_json::to_value(&m).unwrap(), &mut found);
        let mut listed: Vec<String> = METRIC_KEYS.iter().map(|k| (*k).to_owned()).collect();
        found.sort();
        listed.sort();
        assert_eq!(found, listed);
        let r = RunResult {
            metrics: m,
            ..empty()
        };
        assert!(metric_rows(&r).iter().all(|(_, v)| v.is_some()));
    }

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands_f(-1234.4), "-1,234");
        assert_eq!(fmt_value("rmr", None), "null");
        assert_eq!(fmt_value("components", Some(3.0)), "3");
        assert_eq!(fmt_value("detection_ms.p99", Some(1500.04)), "1500.0");
        assert_eq!(fmt_value("remerge_ms", Some(2.26)), "2.3");
        assert_eq!(axis_label(12_000.0, 50_000.0, None), "12k");
        assert_eq!(axis_label(3_200_000.0, 5e6, None), "3.2M");
        assert_eq!(axis_label(0.25, 1.0, None), "0.25");
        assert_eq!(axis_label(1.000_000_1, 2.0, Some(0)), "1");
        assert_eq!(axis_label(250.0, 600.0, None), "250");
        assert_eq!(clean("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
        let e = ExpectOutcome {
            metric: "x".into(),
            min: None,
            max: None,
            value: None,
            passed: false,
        };
        assert_eq!(fmt_bound(&e), "any");
    }
}
