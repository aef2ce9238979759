//! Charts: free functions from data to an SVG string, drawn with plotters' SVG backend
//! (`SVGBackend::with_string`), inlined into the HTML report.
//!
//! Colours: axes, text and grid use sentinel colours ([`INK`], [`GRID`], [`PAPER`]) that the
//! report's stylesheet remaps for dark mode and print; series use [`PALETTE`], chosen to read
//! on light and dark backgrounds. Backgrounds are transparent. Legends are drawn in a column
//! right of the plot so they never cover data. Every text plotters writes is XML-escaped by
//! plotters-svg; labels are additionally shortened to [`MAX_LABEL_CHARS`].

use super::ReportError;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

pub const WIDTH: u32 = 820;
pub const HEIGHT: u32 = 330;
/// Width of the legend column right of the plot.
pub const LEGEND_W: u32 = 190;
pub const MAX_LABEL_CHARS: usize = 24;
pub const FONT: &str = "sans-serif";
pub const FONT_SIZE: u32 = 14;

/// Axis, tick and legend text (`#000000`, remapped by CSS).
pub const INK: RGBColor = RGBColor(0, 0, 0);
/// Grid lines (`#D0D0D0`, remapped by CSS).
pub const GRID: RGBColor = RGBColor(0xd0, 0xd0, 0xd0);
/// Legend background (`#FEFEFE`, remapped by CSS).
pub const PAPER: RGBColor = RGBColor(0xfe, 0xfe, 0xfe);
/// Greyed (infeasible) points.
pub const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);
/// SLO and reference lines.
pub const SLO_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Okabe–Ito-based palette (colour-blind safe), readable on white and on near-black.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xd4),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0x8c, 0x6b, 0xc8),
    RGBColor(0x88, 0x88, 0x88),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Titles and axis descriptions of one chart.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChartOpts {
    pub x_label: String,
    pub y_label: String,
    /// Upper bound of the x axis (e.g. a CDF clipped at a high percentile); `None` = data max.
    pub x_max: Option<f64>,
    /// Lower bound of the y axis; defaults to 0.
    pub y_min: Option<f64>,
    pub y_max: Option<f64>,
}

/// A labelled vertical (CDF) or horizontal (time chart) reference line, e.g. an SLO target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Marker {
    pub label: String,
    pub value: f64,
}

/// One CDF line: `(value, cumulative fraction)` points, ascending.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CdfSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// One line over time, optionally with a shaded min–max band; `None` values break the line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BandSeries {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<(Vec<Option<f64>>, Vec<Option<f64>>)>,
    /// Dashed (reference) line.
    #[serde(default)]
    pub dashed: bool,
    /// Palette index; `None` = position in the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<usize>,
}

/// One series of a grouped bar chart: a value per group (`None` = no bar).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BarSeries {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// Shortens a label to [`MAX_LABEL_CHARS`] characters (with an ellipsis).
pub fn short_label(s: &str) -> String {
    if s.chars().count() <= MAX_LABEL_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX_LABEL_CHARS - 1).collect();
        t.push('…');
        t
    }
}

/// Compact tick label: at most 4 significant digits, no trailing zeros.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    let s = if a == 0.0 {
        "0".to_string()
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    };
    if s.contains('.') && !s.contains('e') && !s.ends_with(['k', 'M']) {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn text_style(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&INK)
}

/// Rewrites plotters' fixed-size `<svg>` header into a responsive one.
fn finish(svg: String, title: &str) -> String {
    let head = format!(r#"<svg width="{WIDTH}" height="{HEIGHT}" "#);
    let title = html_escape(title);
    let svg = svg.replacen(&head, r#"<svg class="chart" role="img" preserveAspectRatio="xMidYMid meet" "#, 1);
    match svg.find('>') {
        Some(i) => format!("{}><title>{}</title>{}", &svg[..i], title, &svg[i + 1..]),
        None => svg,
    }
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The legend column: a swatch and a label per entry, in pixel coordinates.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(String, RGBColor, bool)],
    note: Option<&str>,
) -> Result<(), ReportError> {
    let (w, _) = area.dim_in_pixel();
    let x0 = (w - LEGEND_W) as i32 + 12;
    if let Some(note) = note {
        let y = 24 + entries.len() as i32 * 20;
        let style = text_style(FONT_SIZE - 2).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(note, (x0, y), style)).map_err(err)?;
    }
    for (i, (label, c, dashed)) in entries.iter().enumerate() {
        let y = 24 + i as i32 * 20;
        if *dashed {
            for k in 0..3 {
                let xs = x0 + k * 7;
                area.draw(&PathElement::new(vec![(xs, y), (xs + 4, y)], c.stroke_width(2))).map_err(err)?;
            }
        } else {
            area.draw(&Rectangle::new([(x0, y - 5), (x0 + 18, y + 5)], c.filled())).map_err(err)?;
        }
        let style = text_style(FONT_SIZE - 1).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(short_label(label), (x0 + 24, y), style)).map_err(err)?;
    }
    Ok(())
}

fn split_runs(x: &[f64], y: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = Vec::new();
    let mut cur = Vec::new();
    for (x, y) in x.iter().zip(y) {
        match y {
            Some(v) if v.is_finite() => cur.push((*x, *v)),
            _ => {
                if !cur.is_empty() {
                    runs.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

/// The cartesian chart every figure draws on (f64 axes, SVG string backend).
type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Tick label formatter.
type Fmt<'f> = &'f dyn Fn(&f64) -> String;

/// The image split into the plot area and the legend column, and the chart on the plot area.
fn plot_on<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    margin_top: u32,
) -> Result<Plot<'a, 'b>, ReportError> {
    let (plot, _) = root.split_horizontally(WIDTH - LEGEND_W);
    ChartBuilder::on(&plot)
        .margin(10)
        .margin_top(margin_top)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x, y)
        .map_err(err)
}

/// Axes, grid and axis descriptions in the report's style. `x_fmt: None` draws no x tick
/// labels and no vertical grid (bar charts label their groups themselves).
fn draw_axes(
    chart: &mut Plot<'_, '_>,
    x_desc: &str,
    y_desc: &str,
    x_fmt: Option<Fmt<'_>>,
    y_fmt: Fmt<'_>,
) -> Result<(), ReportError> {
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(GRID.mix(0.0))
        .bold_line_style(GRID)
        .axis_style(INK)
        .label_style(text_style(FONT_SIZE - 1))
        .axis_desc_style(text_style(FONT_SIZE))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .y_label_formatter(y_fmt);
    match x_fmt {
        Some(f) => mesh.x_label_formatter(f),
        None => mesh.disable_x_mesh().x_labels(0),
    };
    mesh.draw().map_err(err)
}

pub fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let v = v * 1.08;
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Cumulative distribution lines (one per series, on the same axes) with vertical markers
/// (SLO targets).
pub fn cdf_chart(series: &[CdfSeries], markers: &[Marker], opts: &ChartOpts) -> Result<String, ReportError> {
    let data_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.0f64, f64::max);
    let data_max = opts.x_max.unwrap_or(data_max);
    let (shown, off) = split_markers(markers, data_max);
    let mark_max = shown.iter().map(|m| m.value).fold(0.0f64, f64::max);
    let x_max = nice_max(data_max.max(mark_max));
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = plot_on(&root, 0f64..x_max, 0f64..1f64, 10)?;
        draw_axes(&mut chart, &opts.x_label, &opts.y_label, Some(&|v| tick(*v)), &|v| format!("{:.0}%", v * 100.0))?;
        let mut legend = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let c = color(i);
            let pts: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x.min(x_max), y)).collect();
            chart.draw_series(LineSeries::new(pts, c.stroke_width(2))).map_err(err)?;
            legend.push((s.label.clone(), c, false));
        }
        for m in &shown {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(m.value, 0.0), (m.value, 1.0)],
                    6,
                    4,
                    SLO_COLOR.stroke_width(2),
                ))
                .map_err(err)?;
            legend.push((m.label.clone(), SLO_COLOR, true));
        }
        legend.extend(off.iter().map(|m| (format!("{} →", m.label), SLO_COLOR, true)));
        draw_legend(&root, &legend, (!off.is_empty()).then_some(OFF_SCALE_RIGHT))?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf, &opts.y_label))
}

/// Markers far beyond the data (more than [`OFF_SCALE`] × its maximum) are listed in the
/// legend as "off scale" instead of stretching the axis until the data is a sliver.
pub const OFF_SCALE: f64 = 2.5;
/// Legend notes for reference lines listed but not drawn (too far beyond the data).
const OFF_SCALE_RIGHT: &str = "→ = beyond the right edge";
const OFF_SCALE_TOP: &str = "↑ = above the top edge";

fn split_markers(markers: &[Marker], data_max: f64) -> (Vec<Marker>, Vec<Marker>) {
    markers.iter().cloned().partition(|m| data_max <= 0.0 || m.value <= data_max * OFF_SCALE)
}

/// Time-axis unit for a span in seconds: h, min or s.
fn time_unit(span_s: f64) -> (f64, &'static str) {
    if span_s >= 3.0 * 3600.0 {
        (3600.0, "h")
    } else if span_s >= 180.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    }
}

/// Lines over time, each with an optional min–max band, plus horizontal reference lines.
/// `x` values are seconds; the axis shows s, min or h depending on the span.
pub fn time_chart(series: &[BandSeries], hlines: &[Marker], opts: &ChartOpts) -> Result<String, ReportError> {
    let span = series.iter().flat_map(|s| s.x.iter().copied()).fold(0.0f64, f64::max).max(1e-9);
    let (unit, unit_name) = time_unit(span);
    let vals = series.iter().flat_map(|s| {
        s.y.iter().chain(s.band.iter().flat_map(|(lo, hi)| lo.iter().chain(hi.iter()))).filter_map(|v| *v)
    });
    let data_max = vals.fold(0.0f64, f64::max);
    let (shown, off) = split_markers(hlines, data_max);
    let data_max = data_max.max(shown.iter().map(|m| m.value).fold(0.0, f64::max));
    let y_max = opts.y_max.unwrap_or_else(|| nice_max(data_max));
    let y_min = opts.y_min.unwrap_or(0.0);
    let x_max = span / unit;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = plot_on(&root, 0f64..x_max, y_min..y_max, 10)?;
        let x_desc = format!("{} ({unit_name})", opts.x_label);
        draw_axes(&mut chart, &x_desc, &opts.y_label, Some(&|v| tick(*v)), &|v| tick(*v))?;
        let mut legend = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let c = color(s.color.unwrap_or(i));
            let xs: Vec<f64> = s.x.iter().map(|x| x / unit).collect();
            if let Some((lo, hi)) = &s.band {
                // One polygon per contiguous run where both bounds exist.
                let both: Vec<Option<(f64, f64)>> = lo.iter().zip(hi).map(|(l, h)| Some(((*l)?, (*h)?))).collect();
                let mut start = 0;
                while start < both.len() {
                    if both[start].is_none() {
                        start += 1;
                        continue;
                    }
                    let mut end = start;
                    while end < both.len() && both[end].is_some() {
                        end += 1;
                    }
                    let mut poly: Vec<(f64, f64)> =
                        (start..end).map(|k| (xs[k], both[k].expect("run").1.min(y_max))).collect();
                    poly.extend((start..end).rev().map(|k| (xs[k], both[k].expect("run").0.max(y_min))));
                    if end - start == 1 {
                        let (x, (l, h)) = (xs[start], both[start].expect("run"));
                        poly = vec![(x, h.min(y_max)), (x, l.max(y_min))];
                        chart.draw_series(LineSeries::new(poly, c.mix(0.35).stroke_width(3))).map_err(err)?;
                    } else {
                        chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled()))).map_err(err)?;
                    }
                    start = end;
                }
            }
            for run in split_runs(&xs, &s.y) {
                let run: Vec<(f64, f64)> = run.into_iter().map(|(x, y)| (x, y.clamp(y_min, y_max))).collect();
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(run, 6, 4, c.stroke_width(2))).map_err(err)?;
                } else {
                    chart.draw_series(LineSeries::new(run, c.stroke_width(2))).map_err(err)?;
                }
            }
            legend.push((s.label.clone(), c, s.dashed));
        }
        for m in &shown {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, m.value), (x_max, m.value)],
                    6,
                    4,
                    SLO_COLOR.stroke_width(2),
                ))
                .map_err(err)?;
            legend.push((m.label.clone(), SLO_COLOR, true));
        }
        legend.extend(off.iter().map(|m| (format!("{} ↑", m.label), SLO_COLOR, true)));
        draw_legend(&root, &legend, (!off.is_empty()).then_some(OFF_SCALE_TOP))?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf, &opts.y_label))
}

/// Grouped bars: one group per entry of `groups`, one bar per series inside each group.
pub fn bar_chart(groups: &[String], series: &[BarSeries], opts: &ChartOpts) -> Result<String, ReportError> {
    let data_max = series.iter().flat_map(|s| s.values.iter().filter_map(|v| *v)).fold(0.0f64, f64::max);
    let y_max = opts.y_max.unwrap_or_else(|| nice_max(data_max));
    let n = groups.len().max(1) as f64;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = plot_on(&root, 0f64..n, 0f64..y_max, 10)?;
        draw_axes(&mut chart, &opts.x_label, &opts.y_label, None, &|v| tick(*v))?;
        let k = series.len().max(1) as f64;
        let bar_w = 0.8 / k;
        let mut legend = Vec::new();
        for (si, s) in series.iter().enumerate() {
            let c = color(si);
            let rects = s.values.iter().enumerate().filter_map(|(gi, v)| {
                let v = (*v)?.min(y_max);
                let x0 = gi as f64 + 0.1 + si as f64 * bar_w;
                Some(Rectangle::new([(x0, 0.0), (x0 + bar_w * 0.92, v)], c.filled()))
            });
            chart.draw_series(rects).map_err(err)?;
            legend.push((s.label.clone(), c, false));
        }
        // Group labels under the axis, in pixel coordinates of the whole image.
        let (ox, oy) = root.get_base_pixel();
        for (gi, g) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, 0.0));
            let style = text_style(FONT_SIZE - 1).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(short_label(g), (px + ox, py + oy + 6), style)).map_err(err)?;
        }
        draw_legend(&root, &legend, None)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf, &opts.y_label))
}

/// One group of scatter points (a GPU SKU, or the greyed infeasible points).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScatterSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn in grey, small and translucent (infeasible / not eligible).
    #[serde(default)]
    pub grey: bool,
    /// Drawn as hollow ink rings around the points (marks points of another series).
    #[serde(default)]
    pub outline: bool,
    /// Palette index; `None` = position in the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<usize>,
}

/// A polyline on an x–y chart (a Pareto front, a cost line).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct XyLine {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    #[serde(default)]
    pub dashed: bool,
    /// Palette index; `None` = ink colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<usize>,
}

/// One point ringed and named in the legend (the recommendation).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Highlight {
    pub label: String,
    pub x: f64,
    pub y: f64,
}

/// Scatter points, lines, reference lines and one ringed point on numeric axes from 0.
/// Points above `opts.y_max` (or above the automatic bound) are drawn as hollow triangles on
/// the top edge, so a few far-off points neither vanish nor squash the rest.
pub fn xy_chart(
    points: &[ScatterSeries],
    lines: &[XyLine],
    hlines: &[Marker],
    vlines: &[Marker],
    highlight: Option<&Highlight>,
    opts: &ChartOpts,
) -> Result<String, ReportError> {
    let xs = points
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)))
        .chain(vlines.iter().map(|m| m.value));
    let x_max = opts.x_max.unwrap_or_else(|| nice_max(xs.fold(0.0f64, f64::max)));
    let ys = points
        .iter()
        .filter(|s| !s.grey)
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)))
        .chain(hlines.iter().map(|m| m.value))
        .filter(|v| v.is_finite());
    let y_max = opts.y_max.unwrap_or_else(|| nice_max(ys.fold(0.0f64, f64::max)));
    let y_min = opts.y_min.unwrap_or(0.0);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = plot_on(&root, 0f64..x_max, y_min..y_max, 14)?;
        draw_axes(&mut chart, &opts.x_label, &opts.y_label, Some(&|v| tick(*v)), &|v| tick(*v))?;
        let mut legend = Vec::new();
        let mut clipped = false;
        for (i, s) in points.iter().enumerate() {
            if s.outline {
                let pts = s.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite() && p.1 <= y_max);
                chart.draw_series(pts.map(|&p| Circle::new(p, 6, INK.stroke_width(2)))).map_err(err)?;
                legend.push((s.label.clone(), INK, false));
                continue;
            }
            let c = if s.grey { GREY } else { color(s.color.unwrap_or(i)) };
            let (inside, above): (Vec<(f64, f64)>, Vec<(f64, f64)>) =
                s.points.iter().copied().filter(|p| p.0.is_finite()).partition(|p| p.1.is_finite() && p.1 <= y_max);
            let style = if s.grey { c.mix(0.55).filled() } else { c.filled() };
            let r = if s.grey { 3 } else { 4 };
            chart.draw_series(inside.iter().map(|&p| Circle::new(p, r, style))).map_err(err)?;
            clipped |= !above.is_empty();
            chart
                .draw_series(
                    above.iter().map(|&(x, _)| TriangleMarker::new((x.min(x_max), y_max), 5, c.stroke_width(1))),
                )
                .map_err(err)?;
            legend.push((s.label.clone(), c, false));
        }
        for l in lines {
            let c = l.color.map_or(INK, color);
            let pts: Vec<(f64, f64)> = l.points.iter().map(|&(x, y)| (x.min(x_max), y.clamp(y_min, y_max))).collect();
            if l.dashed {
                chart.draw_series(DashedLineSeries::new(pts, 6, 4, c.stroke_width(2))).map_err(err)?;
            } else {
                chart.draw_series(LineSeries::new(pts, c.stroke_width(2))).map_err(err)?;
            }
            if !l.label.is_empty() {
                legend.push((l.label.clone(), c, l.dashed));
            }
        }
        for m in hlines.iter().filter(|m| m.value <= y_max) {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, m.value), (x_max, m.value)],
                    6,
                    4,
                    SLO_COLOR.stroke_width(2),
                ))
                .map_err(err)?;
            legend.push((m.label.clone(), SLO_COLOR, true));
        }
        for (i, m) in vlines.iter().filter(|m| m.value <= x_max).enumerate() {
            let c = color(6 + i);
            chart
                .draw_series(DashedLineSeries::new(vec![(m.value, y_min), (m.value, y_max)], 3, 3, c.stroke_width(2)))
                .map_err(err)?;
            legend.push((m.label.clone(), c, true));
        }
        if let Some(h) = highlight {
            let p = (h.x.min(x_max), h.y.min(y_max));
            chart.draw_series(std::iter::once(Circle::new(p, 9, SLO_COLOR.stroke_width(3)))).map_err(err)?;
            legend.push((h.label.clone(), SLO_COLOR, false));
        }
        draw_legend(&root, &legend, clipped.then_some("△ = above the top edge"))?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf, &opts.y_label))
}

/// A scale event on a fleet chart: at `t_s`, the replica count went to `to`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventMark {
    pub t_s: f64,
    pub to: u32,
    /// Scale-up (▲) or scale-down (▼); events that keep the count (a rolling update) are up.
    pub up: bool,
}

/// Marker slots across the time axis: events closer than `span / MARK_SLOTS` share one marker
/// per direction (at the highest count set for scale-ups, the lowest for scale-downs), so a
/// busy day stays readable; the data table lists every event.
pub const MARK_SLOTS: f64 = 120.0;

/// The markers of one direction, merged per slot of `slot_s` seconds, in time order.
pub fn merge_marks(events: &[EventMark], up: bool, slot_s: f64) -> Vec<EventMark> {
    let mut out: Vec<(u64, EventMark)> = Vec::new();
    for e in events.iter().filter(|e| e.up == up) {
        let k = (e.t_s / slot_s.max(1e-9)).floor().max(0.0) as u64;
        match out.last_mut() {
            Some((last, m)) if *last == k => {
                m.to = if up { m.to.max(e.to) } else { m.to.min(e.to) };
            }
            _ => out.push((k, e.clone())),
        }
    }
    out.into_iter().map(|(_, m)| m).collect()
}

/// Replicas by phase: `areas` stacked bottom-up (bucket means), `desired` as an ink step line
/// (value at each bucket's end) with its min–max band, `lines` on top (e.g. the bucket's most
/// replicas), and ▲/▼ markers at scale events.
pub fn fleet_chart(
    areas: &[BandSeries],
    desired: Option<&BandSeries>,
    lines: &[BandSeries],
    events: &[EventMark],
    opts: &ChartOpts,
) -> Result<String, ReportError> {
    let all = areas.iter().chain(desired).chain(lines);
    let span = all.clone().flat_map(|s| s.x.iter().copied()).fold(0.0f64, f64::max).max(1e-9);
    let (unit, unit_name) = time_unit(span);
    let n = areas.iter().map(|a| a.y.len()).max().unwrap_or(0);
    let mut tops = vec![0.0f64; n];
    for a in areas {
        for (t, v) in tops.iter_mut().zip(&a.y) {
            *t += v.unwrap_or(0.0);
        }
    }
    let vals = all
        .flat_map(|s| {
            s.y.iter().chain(s.band.iter().flat_map(|(lo, hi)| lo.iter().chain(hi.iter()))).filter_map(|v| *v)
        })
        .chain(tops.iter().copied())
        .chain(events.iter().map(|e| e.to as f64));
    let y_max = opts.y_max.unwrap_or_else(|| nice_max(vals.fold(1.0f64, f64::max)).max(2.0));
    let x_max = span / unit;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        let mut chart = plot_on(&root, 0f64..x_max, 0f64..y_max, 10)?;
        let x_desc = format!("{} ({unit_name})", opts.x_label);
        // Replica counts are whole numbers: no fractional tick labels.
        let y_fmt = |v: &f64| if v.fract().abs() < 1e-9 { tick(*v) } else { String::new() };
        draw_axes(&mut chart, &x_desc, &opts.y_label, Some(&|v| tick(*v)), &y_fmt)?;
        let mut legend = Vec::new();
        // Stacked areas: each band runs from the running total below it to the total with it.
        let mut base = vec![0.0f64; n];
        for (i, a) in areas.iter().enumerate() {
            let c = color(a.color.unwrap_or(i));
            let xs: Vec<f64> = a.x.iter().map(|x| x / unit).collect();
            let top: Vec<f64> = base.iter().zip(&a.y).map(|(b, v)| b + v.unwrap_or(0.0)).collect();
            if top.iter().zip(&base).any(|(t, b)| t > b) {
                let mut poly: Vec<(f64, f64)> = xs.iter().zip(&top).map(|(x, y)| (*x, y.min(y_max))).collect();
                poly.extend(xs.iter().zip(&base).rev().map(|(x, y)| (*x, y.min(y_max))));
                if let Some(&(x0, _)) = poly.first() {
                    // Start the area at time zero with the first bucket's height.
                    let y0 = top[0].min(y_max);
                    poly.insert(0, (0.0_f64.min(x0), y0));
                    poly.push((0.0, base[0].min(y_max)));
                }
                chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.55).filled()))).map_err(err)?;
            }
            legend.push((a.label.clone(), c, false));
            base = top;
        }
        for (i, l) in lines.iter().enumerate() {
            let c = color(l.color.unwrap_or(areas.len() + i));
            let xs: Vec<f64> = l.x.iter().map(|x| x / unit).collect();
            for run in split_runs(&xs, &l.y) {
                let run: Vec<(f64, f64)> = run.into_iter().map(|(x, y)| (x, y.min(y_max))).collect();
                if l.dashed {
                    chart.draw_series(DashedLineSeries::new(run, 5, 4, c.stroke_width(2))).map_err(err)?;
                } else {
                    chart.draw_series(LineSeries::new(run, c.stroke_width(2))).map_err(err)?;
                }
            }
            legend.push((l.label.clone(), c, l.dashed));
        }
        if let Some(d) = desired {
            let xs: Vec<f64> = d.x.iter().map(|x| x / unit).collect();
            if let Some((lo, hi)) = &d.band {
                // Buckets where the desired count moved: a light bar from its lowest to highest.
                let bars = xs.iter().zip(lo.iter().zip(hi)).enumerate().filter_map(|(k, (x, (l, h)))| {
                    let (l, h) = ((*l)?, (*h)?);
                    (h > l).then(|| {
                        let x0 = if k == 0 { 0.0 } else { xs[k - 1] };
                        Rectangle::new([(x0, l.min(y_max)), (*x, h.min(y_max))], INK.mix(0.12).filled())
                    })
                });
                chart.draw_series(bars).map_err(err)?;
            }
            // Step line: each bucket holds the value at its end.
            let mut prev_x = 0.0;
            let mut step: Vec<(f64, f64)> = Vec::new();
            for (x, y) in xs.iter().zip(&d.y) {
                match y {
                    Some(v) => {
                        step.push((prev_x, v.min(y_max)));
                        step.push((*x, v.min(y_max)));
                    }
                    None if !step.is_empty() => {
                        chart
                            .draw_series(LineSeries::new(std::mem::take(&mut step), INK.stroke_width(2)))
                            .map_err(err)?;
                    }
                    None => {}
                }
                prev_x = *x;
            }
            if !step.is_empty() {
                chart.draw_series(LineSeries::new(step, INK.stroke_width(2))).map_err(err)?;
            }
            legend.push((d.label.clone(), INK, false));
        }
        let (up_c, down_c) = (color(2), color(5));
        for (up, c, label) in [(true, up_c, "▲ scale up"), (false, down_c, "▼ scale down")] {
            let marks = merge_marks(events, up, span / MARK_SLOTS);
            if marks.is_empty() {
                continue;
            }
            let tri = if up { [(-4, 4), (4, 4), (0, -4)] } else { [(-4, -4), (4, -4), (0, 4)] };
            chart
                .draw_series(marks.iter().map(|e| {
                    EmptyElement::at((e.t_s / unit, (e.to as f64).min(y_max))) + Polygon::new(tri.to_vec(), c.filled())
                }))
                .map_err(err)?;
            legend.push((label.to_string(), c, false));
        }
        draw_legend(&root, &legend, None)?;
        root.present().map_err(err)?;
    }
    Ok(finish(buf, &opts.y_label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_compact() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(1.5), "1.5");
        assert_eq!(tick(250.0), "250");
        assert_eq!(tick(25_000.0), "25k");
        assert_eq!(tick(0.0005), "5.0e-4");
    }

    #[test]
    fn long_labels_are_shortened() {
        let l = short_label(&"x".repeat(100));
        assert_eq!(l.chars().count(), MAX_LABEL_CHARS);
        assert!(l.ends_with('…'));
    }

    #[test]
    fn cdf_svg_has_lines_legend_and_is_responsive() {
        let s = CdfSeries { label: "TTFT <b>".into(), points: vec![(0.1, 0.0), (0.2, 0.5), (0.4, 1.0)] };
        let m = Marker { label: "SLO p90".into(), value: 0.3 };
        let svg = cdf_chart(
            &[s],
            &[m],
            &ChartOpts { x_label: "TTFT (s)".into(), y_label: "fraction".into(), ..Default::default() },
        )
        .unwrap();
        assert!(svg.starts_with("<svg class=\"chart\""), "{}", &svg[..80]);
        assert!(svg.contains("viewBox"));
        assert!(svg.contains("TTFT &lt;b&gt;"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("SLO p90"));
        assert!(svg.contains("<polyline"));
    }
}
