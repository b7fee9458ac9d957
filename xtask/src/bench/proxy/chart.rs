//! The chart of requests per second by body size, one bar per subject,
//! drawn as SVG (text stays text: no font is needed to draw it).

use std::path::Path;

use plotters::prelude::*;

use super::report::Throughput;
use super::servers::{SIZES, Subject};

/// One colour per subject, in [`Subject::ALL`]'s order: grey for the
/// origin, the peers in cool colours, ours in warm ones.
const COLOURS: [RGBColor; 5] = [
    RGBColor(150, 150, 150),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
];

/// Draws `throughput` into the SVG file `path`: body sizes along the x
/// axis, requests per second up a logarithmic y axis (1 MiB hits are ten
/// times fewer than 1 KiB ones).
pub fn draw(path: &Path, throughput: &[Throughput]) -> Result<(), String> {
    draw_svg(path, throughput).map_err(|e| format!("drawing {}: {e}", path.display()))
}

fn draw_svg(path: &Path, throughput: &[Throughput]) -> Result<(), Box<dyn std::error::Error>> {
    let subjects: Vec<Subject> = Subject::ALL
        .into_iter()
        .filter(|s| throughput.iter().any(|t| t.subject == *s))
        .collect();
    let rates = throughput.iter().map(|t| t.load.requests_per_sec.max(1.0));
    let highest = rates.clone().fold(1.0, f64::max);
    let lowest = rates.fold(highest, f64::min);
    let bottom = 10f64.powf((lowest / 2.0).log10().floor());
    let top = 10f64.powf((highest * 1.5).log10().ceil());

    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cached hits: requests per second by body size (log scale)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..SIZES.len() as f64, (bottom..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(SIZES.len() * 2 + 1)
        .x_label_formatter(&|x| {
            // Labels at the middle of each group only.
            let slot = x - x.floor();
            if (slot - 0.5).abs() < 1e-6 {
                SIZES
                    .get(x.floor() as usize)
                    .map_or(String::new(), |(size, _)| size.to_string())
            } else {
                String::new()
            }
        })
        .y_desc("requests per second")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;

    // Each group is 1 wide: bars fill its middle 80%.
    let width = 0.8 / subjects.len().max(1) as f64;
    for (index, subject) in subjects.iter().enumerate() {
        let colour = COLOURS[Subject::ALL
            .iter()
            .position(|s| s == subject)
            .unwrap_or_default()];
        let bars: Vec<(f64, f64)> = SIZES
            .iter()
            .enumerate()
            .filter_map(|(group, (size, _))| {
                throughput
                    .iter()
                    .find(|t| t.subject == *subject && t.size == *size)
                    .map(|t| {
                        let left = group as f64 + 0.1 + index as f64 * width;
                        (left, t.load.requests_per_sec.max(bottom))
                    })
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(left, rate)| {
                Rectangle::new(
                    [(left, bottom), (left + width * 0.9, rate)],
                    colour.filled(),
                )
            }))?
            .label(subject.name())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], colour.filled()));
        chart.draw_series(bars.iter().map(|&(left, rate)| {
            Text::new(
                short(rate),
                (left, rate * 1.12),
                ("sans-serif", 11).into_font().color(&BLACK),
            )
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// `42.9k`, `1.72k`, `780`.
fn short(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.1}k", rate / 1000.0)
    } else if rate >= 1000.0 {
        format!("{:.2}k", rate / 1000.0)
    } else {
        format!("{rate:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::proxy::wrk::Load;

    #[test]
    fn draws_an_svg_with_every_subject_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.svg");
        let mut throughput = Vec::new();
        for (i, subject) in [Subject::Nginx, Subject::Fs].into_iter().enumerate() {
            for (j, (size, _)) in SIZES.iter().enumerate() {
                throughput.push(Throughput {
                    subject,
                    size,
                    load: Load {
                        requests_per_sec: 40_000.0 / (1 + i + 10 * j) as f64,
                        p50_ms: 1.0,
                        p99_ms: 2.0,
                        requests: 1,
                        errors: 0,
                    },
                    peak_rss: 0,
                    origin_requests: 0,
                });
            }
        }
        draw(&path, &throughput).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
        for text in ["nginx", "respcache fs", "1KiB", "64KiB", "1MiB", "40.0k"] {
            assert!(svg.contains(text), "no {text:?} in the chart");
        }
        assert!(!svg.contains("respcache cacache"), "a subject not measured");
    }
}
