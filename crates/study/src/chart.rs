//! What the studies' SVG charts share, so they look alike: the canvas, the caption and
//! label areas, a curve of means with error bars, the legend box, and drawing errors that
//! name the chart's file.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Error, Result};

/// The SVG canvas of a chart.
pub(crate) type Canvas<'p> = DrawingArea<SVGBackend<'p>, Shift>;

/// A drawing error as this crate's, naming the chart's file.
pub(crate) fn failed(path: &Path) -> impl Fn(DrawingAreaErrorKind<std::io::Error>) -> Error + '_ {
    move |e| Error::Chart {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A 720 × 480 SVG canvas at `path`, filled white.
pub(crate) fn canvas(path: &Path) -> Result<Canvas<'_>> {
    let root = SVGBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(failed(path))?;
    Ok(root)
}

/// A chart builder on `root` with `caption` and the studies' margin and label areas.
pub(crate) fn builder<'a, 'p>(
    root: &'a Canvas<'p>,
    caption: &str,
) -> ChartBuilder<'a, 'p, SVGBackend<'p>> {
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50);
    builder
}

/// Draws curve number `k`, labelled `label` in the legend: a line through the means of
/// `points` (`(x, low, mean, high)`) with vertical bars from low to high. Returns its colour.
pub(crate) fn curve<'a, 'p: 'a, CT>(
    chart: &mut ChartContext<'a, SVGBackend<'p>, CT>,
    k: usize,
    label: &str,
    points: &[(f64, f64, f64, f64)],
    path: &Path,
) -> Result<RGBAColor>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    let color = Palette99::pick(k).to_rgba();
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|&(x, _, mean, _)| (x, mean)),
            color.stroke_width(2),
        ))
        .map_err(failed(path))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    chart
        .draw_series(points.iter().map(|&(x, low, mean, high)| {
            ErrorBar::new_vertical(x, low, mean, high, color.filled(), 6)
        }))
        .map_err(failed(path))?;
    Ok(color)
}

/// Draws the legend box at `position` and writes the chart to its file.
pub(crate) fn finish<'a, 'p: 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'p>, CT>,
    root: &Canvas<'p>,
    position: SeriesLabelPosition,
    path: &Path,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(failed(path))?;
    root.present().map_err(failed(path))?;
    Ok(())
}
