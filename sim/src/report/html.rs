//! The self-contained HTML page: header, metrics, expectations, warnings and inline SVG plots.

use std::fmt::Write as _;

use super::plots::{
    Plot, components_over_time, degree_histogram, deliveries_over_time, frames_per_node,
    latency_cdf,
};
use super::{fmt_bound, fmt_value, metric_rows};
use crate::metrics::RunResult;

/// `s` escaped for HTML text and attribute values.
pub(super) fn esc(s: &str) -> String {
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
