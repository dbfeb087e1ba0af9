//! The HTML report's plots, drawn with plotters' SVG backend (no fonts, no scripts).

use std::error::Error;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Most points a line plot gets; longer series are thinned (keeping each bucket's extremes).
const MAX_POINTS: usize = 1000;
/// Plot size in SVG pixels.
const PLOT_W: u32 = 640;
const PLOT_H: u32 = 360;

/// A plot's outcome: an SVG document, no data, or a drawing error.
#[derive(Debug)]
pub(super) enum Plot {
    Svg(String),
    NoData,
    Failed(String),
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
pub(super) fn axis_label(v: f64, span: f64, decimals: Option<usize>) -> String {
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
pub(super) fn latency_cdf(samples: &[f64]) -> Plot {
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

pub(super) fn deliveries_over_time(d: &[(f64, u64)]) -> Plot {
    let pts = d.iter().map(|&(t, n)| (t, n as f64)).collect();
    line_chart(
        pts,
        "virtual time (s)",
        "cumulative deliveries",
        YAxis::Count,
    )
}

pub(super) fn components_over_time(d: &[(f64, u64)]) -> Plot {
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

pub(super) fn degree_histogram(degrees: &[u64]) -> Plot {
    let mut counts = std::collections::BTreeMap::<u64, u64>::new();
    for &d in degrees {
        *counts.entry(d).or_default() += 1;
    }
    let counts: Vec<(u64, u64)> = counts.into_iter().collect();
    bar_chart(&counts, "active-view degree", "nodes")
}

pub(super) fn frames_per_node(frames: &[u64]) -> Plot {
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
