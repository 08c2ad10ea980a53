//! `--plot FILE.svg`: latency percentiles and throughput per second, as a standalone SVG.
//!
//! Written by hand: two line charts need a few dozen SVG elements, and the plotting crates
//! either pull in font rendering (system libraries) or need a font file at run time to lay out
//! their labels. An SVG viewer lays out text itself.

use std::fmt::Write as _;

use super::report::Report;

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const GAP: f64 = 70.0;

struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
}

/// The SVG document for `report`.
pub fn render(report: &Report) -> String {
    let seconds: Vec<f64> = report.timeline.iter().map(|s| s.second as f64).collect();
    let latency = [
        Series {
            name: "p50",
            color: "#1f77b4",
            values: report.timeline.iter().map(|s| s.latency_ms.p50).collect(),
        },
        Series {
            name: "p99",
            color: "#ff7f0e",
            values: report.timeline.iter().map(|s| s.latency_ms.p99).collect(),
        },
        Series {
            name: "max",
            color: "#d62728",
            values: report.timeline.iter().map(|s| s.latency_ms.max).collect(),
        },
    ];
    let throughput = [
        Series {
            name: "answers/s",
            color: "#2ca02c",
            values: report.timeline.iter().map(|s| s.responses as f64).collect(),
        },
        Series {
            name: "goodput/s",
            color: "#17becf",
            values: report.timeline.iter().map(|s| s.goodput as f64).collect(),
        },
        Series {
            name: "rejected/s",
            color: "#9467bd",
            values: report
                .timeline
                .iter()
                .map(|s| s.rejections as f64)
                .collect(),
        },
        Series {
            name: "errors/s",
            color: "#d62728",
            values: report.timeline.iter().map(|s| s.errors as f64).collect(),
        },
    ];
    let height = TOP + 2.0 * PANEL_HEIGHT + GAP + 40.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "{} — {} ({})",
        escape(&report.target),
        escape(&report.scenario),
        escape(&report.mode)
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="20" font-size="14">{title}</text>"#
    );
    panel(&mut svg, TOP, "latency per second (ms)", &seconds, &latency);
    panel(
        &mut svg,
        TOP + PANEL_HEIGHT + GAP,
        "throughput per second",
        &seconds,
        &throughput,
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since warm-up ended</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn panel(svg: &mut String, top: f64, title: &str, xs: &[f64], series: &[Series<'_>]) {
    let plot_width = WIDTH - LEFT - RIGHT;
    let x_max = xs.last().copied().unwrap_or(0.0).max(1.0);
    let y_max = nice_ceiling(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max),
    );
    let x_at = |x: f64| LEFT + x / x_max * plot_width;
    let y_at = |y: f64| top + PANEL_HEIGHT - y / y_max * PANEL_HEIGHT;
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{title}</text>"#,
        top - 8.0
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" fill="none" stroke="#888"/>"##
    );
    for tick in 0..=4 {
        let value = y_max * f64::from(tick) / 4.0;
        let y = y_at(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##,
            LEFT + plot_width
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            label(value)
        );
        let x_value = x_max * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x_at(x_value),
            top + PANEL_HEIGHT + 16.0,
            label(x_value)
        );
    }
    for (index, line) in series.iter().enumerate() {
        let points: Vec<String> = xs
            .iter()
            .zip(&line.values)
            .map(|(&x, &y)| format!("{:.1},{:.1}", x_at(x), y_at(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            line.color,
            points.join(" ")
        );
        let legend_y = top + 16.0 + index as f64 * 18.0;
        let legend_x = LEFT + plot_width + 14.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" y1="{legend_y}" x2="{}" y2="{legend_y}" stroke="{}" stroke-width="3"/>"#,
            legend_x + 20.0,
            line.color
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}">{}</text>"#,
            legend_x + 26.0,
            legend_y + 4.0,
            line.name
        );
    }
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `value`, for round axis ticks.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn label(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.3), 2.0);
        assert_eq!(nice_ceiling(4.1), 5.0);
        assert_eq!(nice_ceiling(113_000.0), 200_000.0);
    }
}
