//! Inline SVG charts drawn on the server: horizontal bars (labels stay
//! readable at phone width), with a text alternative for screen readers.

use std::fmt::Write as _;

use super::layout::escape;

/// A row of a bar chart: a group heading or a bar.
pub enum Row {
    Heading(String),
    Bar {
        label: String,
        value: f64,
        /// Shown at the bar's end.
        shown: String,
        /// `data-key` of the bar, for tests and styling.
        key: String,
    },
}

const WIDTH: f64 = 360.0;
const LABEL: f64 = 140.0;
const BARS: f64 = 170.0;
const ROW: f64 = 18.0;

/// Bars scaled to `max` (the largest value when None).
pub fn bars(title: &str, rows: &[Row], max: Option<f64>, attrs: &str) -> String {
    let largest = rows
        .iter()
        .filter_map(|r| match r {
            Row::Bar { value, .. } => Some(*value),
            Row::Heading(_) => None,
        })
        .fold(0.0_f64, f64::max);
    let scale = max.unwrap_or(largest).max(f64::EPSILON);
    let height = ROW * rows.len() as f64 + 4.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{t}" {attrs}><title>{t}</title>"#,
        t = escape(title)
    );
    for (i, row) in rows.iter().enumerate() {
        let y = ROW * i as f64 + 2.0;
        match row {
            Row::Heading(text) => {
                let _ = write!(
                    svg,
                    r#"<text x="0" y="{}" font-weight="700">{}</text>"#,
                    y + 13.0,
                    escape(text)
                );
            }
            Row::Bar {
                label,
                value,
                shown,
                key,
            } => {
                let w = (value.max(0.0) / scale * BARS).min(BARS);
                let _ = write!(
                    svg,
                    r#"<text x="{lx}" y="{ty}" text-anchor="end">{l}</text><rect class="bar" data-key="{k}" x="{LABEL}" y="{by}" width="{w:.1}" height="{bh}"><title>{l}: {s}</title></rect><text x="{vx:.1}" y="{ty}">{s}</text>"#,
                    lx = LABEL - 4.0,
                    ty = y + 12.0,
                    by = y + 2.0,
                    bh = ROW - 5.0,
                    vx = LABEL + w + 4.0,
                    l = escape(label),
                    k = escape(key),
                    s = escape(shown),
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A number as a chart shows it: integers plainly, others to 2 decimals.
pub fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rect_per_bar_scaled_to_the_largest() {
        let rows = [
            Row::Heading("Group".into()),
            Row::Bar {
                label: "a".into(),
                value: 2.0,
                shown: "2".into(),
                key: "g.a".into(),
            },
            Row::Bar {
                label: "b<".into(),
                value: 4.0,
                shown: "4".into(),
                key: "g.b".into(),
            },
        ];
        let svg = bars("T", &rows, None, "");
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(
            svg.contains(r#"data-key="g.b" x="140" y="40" width="170.0""#),
            "{svg}"
        );
        assert!(svg.contains("b&lt;"), "labels are escaped: {svg}");
    }
}
