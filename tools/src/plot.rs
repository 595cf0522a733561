//! PNG plots that a reader can take in without the code: a title, axes with ticks and their
//! names, and a legend. The kind of plot follows the shape of the data ([`DataShape`]): points as
//! a scatter, a signal as traces over time, an image as an image. Samples are drawn beside
//! held-out data (same axes), denoised windows over their noisy input and, when known, the clean
//! signal.
//!
//! Text is drawn with DejaVu Sans, embedded in the binary (`tools/assets/`, Bitstream Vera
//! licence): no system fonts or fontconfig are needed, so a plot renders the same on a bare
//! machine. Plots are rendered in memory and returned as PNG bytes; the caller writes them through
//! [`crate::output`].

use std::sync::Once;

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Held-out data, and the clean signal.
const DATA_COLOR: RGBColor = RGBColor(31, 119, 180);
/// Samples, and the denoised output.
const SAMPLE_COLOR: RGBColor = RGBColor(255, 127, 14);
/// The noisy input.
const NOISY_COLOR: RGBColor = RGBColor(150, 150, 150);
/// The embedded font (DejaVu Sans 2.37).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// What one example of the data is, which decides how it is drawn.
///
/// A model file describes its data itself ([`DataShape::of_model`]); [`data_shape_for`] guesses it
/// for data without a model (a CSV file, a built-in data set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataShape {
    /// A point in R^dim (a 2-D toy set): drawn as a scatter of its first two coordinates.
    Points(usize),
    /// `channels` signals of `length` samples each (channel-major): drawn as traces.
    Signal {
        /// Channels.
        channels: usize,
        /// Samples per channel.
        length: usize,
    },
    /// An image (channel-major, then rows): drawn as an image.
    Image {
        /// Channels (1: grey, 3: RGB).
        channels: usize,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

impl DataShape {
    /// Values per example.
    pub fn dim(&self) -> usize {
        match *self {
            DataShape::Points(d) => d,
            DataShape::Signal { channels, length } => channels * length,
            DataShape::Image { channels, height, width } => channels * height * width,
        }
    }

    /// "points in 2-D", "signal, 1 channel x 64 samples", "image, 1 x 8 x 8".
    pub fn describe(&self) -> String {
        match *self {
            DataShape::Points(d) => format!("points in {d}-D"),
            DataShape::Signal { channels, length } => {
                format!("signal, {channels} channel(s) x {length} samples")
            }
            DataShape::Image { channels, height, width } => format!("image, {channels} x {height} x {width}"),
        }
    }
}

/// The shape of examples of `dim` values from the data set `data_set` (a built-in name, `ecg:N`,
/// or a file path), when it is known.
///
/// This is the one place that guesses: it is replaced by the model's own description of its data
/// (`Model::data_shape()`, in the `.tsm` v3 header) once that lands. Until then: `digits` is an
/// 8×8 grey image, `ecg` a one-channel signal, the 2-D toys points; anything else (a CSV file, or
/// a model file alone) is points up to 3 values and a one-channel signal above. Never "square,
/// so an image": a 64-value ECG window is a signal.
impl DataShape {
    /// What `model` says its data is (`.tsm` v3 header; a version-1 file: points).
    pub fn of_model(model: &tinyscore_engine::format::Model<'_>) -> Self {
        use tinyscore_engine::format::DataKind;
        let d = model.data();
        match d.kind {
            // A version-1 file does not say; beyond three dimensions, traces read best.
            DataKind::Points if d.dim() > 3 => Self::Signal { channels: 1, length: d.dim() },
            DataKind::Points => Self::Points(d.dim()),
            DataKind::Signal => Self::Signal { channels: d.channels, length: d.length },
            DataKind::Image { width } => {
                Self::Image { channels: d.channels, height: d.length / width.max(1), width }
            }
        }
    }
}

/// A guess at the shape of `dim`-long data from the data set's name, for data without a model.
pub fn data_shape_for(data_set: Option<&str>, dim: usize) -> DataShape {
    let name = data_set.map(|s| s.split(':').next().unwrap_or(s));
    match name {
        Some("digits") if dim == 64 => DataShape::Image { channels: 1, height: 8, width: 8 },
        Some("ecg") => DataShape::Signal { channels: 1, length: dim },
        _ if dim <= 3 => DataShape::Points(dim),
        _ => DataShape::Signal { channels: 1, length: dim },
    }
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid TrueType font, checked by the tests.
            let _ = plotters::style::register_font(FAMILY, style, FONT);
        }
    });
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Renders `draw` on a white `size` canvas and encodes it as PNG.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult,
) -> Result<Vec<u8>> {
    register_font();
    let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("drawing the plot: {e}"))?;
        draw(&root).map_err(|e| anyhow!("drawing the plot: {e}"))?;
        root.present().map_err(|e| anyhow!("drawing the plot: {e}"))?;
    }
    let mut png = Vec::new();
    use image::ImageEncoder as _;
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, size.0, size.1, image::ColorType::Rgb8)
        .map_err(|e| anyhow!("encoding the plot as PNG: {e}"))?;
    Ok(png)
}

fn check(shape: DataShape, sets: &[&[f32]]) -> Result<usize> {
    let dim = shape.dim();
    if dim == 0 || sets.iter().any(|s| s.is_empty() || s.len() % dim != 0) {
        bail!("nothing to plot (or rows of another length than {})", shape.describe());
    }
    Ok(dim)
}

/// Robust range of the values of `sets` (taking every `stride`-th value from `offset`): the
/// 0.5% to 99.5% quantiles, padded, so a few outliers do not squash the plot.
fn bounds(sets: &[&[f32]], stride: usize, offset: usize) -> (f32, f32) {
    let mut v: Vec<f32> = sets
        .iter()
        .flat_map(|s| s.iter().skip(offset).step_by(stride.max(1)))
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return (-1.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let lo = v[v.len() / 200];
    let hi = v[v.len() - 1 - v.len() / 200];
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

/// A PNG of `samples` (row-major, n × `shape.dim()`), beside `reference` data (held-out
/// examples) if given, under `title`.
pub fn samples_png(
    shape: DataShape,
    samples: &[f32],
    reference: Option<&[f32]>,
    title: &str,
) -> Result<Vec<u8>> {
    let mut sets: Vec<(&[f32], &str, RGBColor)> = Vec::new();
    if let Some(r) = reference {
        sets.push((r, "held-out data", DATA_COLOR));
    }
    sets.push((samples, "samples", SAMPLE_COLOR));
    let only: Vec<&[f32]> = sets.iter().map(|s| s.0).collect();
    check(shape, &only)?;
    match shape {
        DataShape::Points(d) => scatter(d, &sets, title),
        DataShape::Signal { channels, length } => traces(channels, length, &sets, title),
        DataShape::Image { channels, height, width } => images(channels, height, width, &sets, title),
    }
}

fn scatter(dim: usize, sets: &[(&[f32], &str, RGBColor)], title: &str) -> Result<Vec<u8>> {
    let only: Vec<&[f32]> = sets.iter().map(|s| s.0).collect();
    // One value per point: the value against the point's index.
    let (xi, yi) = if dim == 1 { (None, 0) } else { (Some(0), 1) };
    let (x0, x1) = match xi {
        Some(i) => bounds(&only, dim, i),
        None => (0.0, only.iter().map(|s| s.len()).max().unwrap_or(1) as f32),
    };
    let (y0, y1) = bounds(&only, dim, yi);
    let (xdesc, ydesc) =
        if dim == 1 { ("index".to_string(), "x".to_string()) } else { ("x1".into(), "x2".into()) };
    let panel = 520u32;
    render((panel * sets.len() as u32, panel + 40), |root| {
        let body = root.titled(title, (FAMILY, 22))?;
        for (area, (set, label, color)) in body.split_evenly((1, sets.len())).iter().zip(sets) {
            let n = set.len() / dim;
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{label} ({n} points)"), (FAMILY, 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(x0..x1, y0..y1)?;
            chart
                .configure_mesh()
                .x_desc(xdesc.as_str())
                .y_desc(ydesc.as_str())
                .label_style((FAMILY, 12))
                .light_line_style(RGBColor(238, 238, 238))
                .draw()?;
            let color = *color;
            chart
                .draw_series(set.chunks_exact(dim).enumerate().map(|(k, p)| {
                    let x = match xi {
                        Some(i) => p[i],
                        None => k as f32,
                    };
                    Circle::new((x, p[yi]), 2, color.mix(0.5).filled())
                }))?
                .label(*label)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 13))
                .draw()?;
        }
        Ok(())
    })
}

/// One trace per example (channel c dashed lighter for c > 0), `shown` examples stacked in
/// strips, each set in its own column.
fn traces(channels: usize, length: usize, sets: &[(&[f32], &str, RGBColor)], title: &str) -> Result<Vec<u8>> {
    let dim = channels * length;
    let shown = sets.iter().map(|s| s.0.len() / dim).min().unwrap_or(1).clamp(1, 4);
    let heads: Vec<&[f32]> = sets.iter().map(|s| &s.0[..shown * dim]).collect();
    let (y0, y1) = bounds(&heads, 1, 0);
    let (w, h) = (620u32, 150 * shown as u32 + 90);
    render((w * sets.len() as u32, h), |root| {
        let body = root.titled(title, (FAMILY, 22))?;
        for (area, (set, label, color)) in body.split_evenly((1, sets.len())).iter().zip(sets) {
            let strips = area.split_evenly((shown, 1));
            for (row, strip) in strips.iter().enumerate() {
                let last = row + 1 == shown;
                let mut b = ChartBuilder::on(strip);
                b.margin(8).x_label_area_size(if last { 34 } else { 16 }).y_label_area_size(52);
                if row == 0 {
                    b.caption(format!("{label} (first {shown})"), (FAMILY, 16));
                }
                let mut chart = b.build_cartesian_2d(0..length, y0..y1)?;
                let mut mesh = chart.configure_mesh();
                mesh.y_desc("value (data units)")
                    .label_style((FAMILY, 11))
                    .light_line_style(RGBColor(238, 238, 238))
                    .y_labels(4)
                    .x_labels(8);
                if last {
                    mesh.x_desc("sample index");
                }
                mesh.draw()?;
                let ex = &set[row * dim..(row + 1) * dim];
                for c in 0..channels {
                    let trace = &ex[c * length..(c + 1) * length];
                    let style = color.mix(if c == 0 { 1.0 } else { 0.5 }).stroke_width(2);
                    let s = chart.draw_series(LineSeries::new(trace.iter().copied().enumerate(), style))?;
                    if row == 0 && c == 0 {
                        let color = *color;
                        s.label(*label).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                        });
                    }
                }
                if row == 0 {
                    chart
                        .configure_series_labels()
                        .position(SeriesLabelPosition::UpperRight)
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .label_font((FAMILY, 12))
                        .draw()?;
                }
            }
        }
        Ok(())
    })
}

/// A grid of up to 8×8 images per set, grey (or RGB for 3 channels) on one shared scale.
fn images(
    channels: usize,
    height: usize,
    width: usize,
    sets: &[(&[f32], &str, RGBColor)],
    title: &str,
) -> Result<Vec<u8>> {
    let dim = channels * height * width;
    let (cols, rows) = (8usize, 8usize);
    let px = (48 / height.max(width)).max(1) as i32;
    let cell_w = width as i32 * px + 6;
    let cell_h = height as i32 * px + 6;
    let only: Vec<&[f32]> = sets.iter().map(|s| s.0).collect();
    let (lo, hi) = bounds(&only, 1, 0);
    let panel_w = cols as i32 * cell_w + 24;
    let size = ((panel_w * sets.len() as i32) as u32, (rows as i32 * cell_h + 110) as u32);
    render(size, |root| {
        let body = root.titled(title, (FAMILY, 22))?;
        for (p, (set, label, color)) in sets.iter().enumerate() {
            let x_off = p as i32 * panel_w + 12;
            let n = set.len() / dim;
            body.draw(&Text::new(
                format!("{label} (first {} of {n})", n.min(cols * rows)),
                (x_off, 4),
                (FAMILY, 16).into_font().color(color),
            ))?;
            for (k, img) in set.chunks_exact(dim).take(cols * rows).enumerate() {
                let (cx, cy) = (x_off + (k % cols) as i32 * cell_w, 30 + (k / cols) as i32 * cell_h);
                for y in 0..height {
                    for x in 0..width {
                        let level = |c: usize| {
                            let v = img[c * height * width + y * width + x];
                            (255.0 * ((v - lo) / (hi - lo)).clamp(0.0, 1.0)) as u8
                        };
                        // Grey: dark is high (ink on paper, as digits are drawn).
                        let fill = if channels == 3 {
                            RGBColor(level(0), level(1), level(2))
                        } else {
                            let g = 255 - level(0);
                            RGBColor(g, g, g)
                        };
                        let (x, y) = (cx + x as i32 * px, cy + y as i32 * px);
                        body.draw(&Rectangle::new([(x, y), (x + px, y + px)], fill.filled()))?;
                    }
                }
            }
        }
        let note = format!("grey scale: white = {lo:.2}, black = {hi:.2} (data units)");
        body.draw(&Text::new(note, (12, rows as i32 * cell_h + 40), (FAMILY, 13)))?;
        Ok(())
    })
}

/// A PNG of denoising: for the first windows, one strip each with the noisy input (grey), the
/// clean signal if known (blue) and the output (orange), with a legend. Images are drawn as rows
/// of images (noisy, denoised, clean); points as a scatter of noisy and denoised.
pub fn denoise_png(
    shape: DataShape,
    noisy: &[f32],
    denoised: &[f32],
    clean: Option<&[f32]>,
    title: &str,
) -> Result<Vec<u8>> {
    let mut sets: Vec<(&[f32], &str, RGBColor)> = vec![(noisy, "noisy input", NOISY_COLOR)];
    if let Some(c) = clean {
        sets.push((c, "clean", DATA_COLOR));
    }
    sets.push((denoised, "denoised", SAMPLE_COLOR));
    let only: Vec<&[f32]> = sets.iter().map(|s| s.0).collect();
    check(shape, &only)?;
    match shape {
        DataShape::Signal { channels, length } => overlaid_traces(channels, length, &sets, title),
        DataShape::Points(d) => scatter(d, &sets, title),
        DataShape::Image { channels, height, width } => images(channels, height, width, &sets, title),
    }
}

/// Strips of the first windows, every set overlaid in each strip.
fn overlaid_traces(
    channels: usize,
    length: usize,
    sets: &[(&[f32], &str, RGBColor)],
    title: &str,
) -> Result<Vec<u8>> {
    let dim = channels * length;
    let shown = (sets[0].0.len() / dim).clamp(1, 4);
    let heads: Vec<&[f32]> = sets.iter().map(|s| &s.0[..shown * dim]).collect();
    let (y0, y1) = bounds(&heads, 1, 0);
    render((960, 170 * shown as u32 + 80), |root| {
        let body = root.titled(title, (FAMILY, 22))?;
        for (row, strip) in body.split_evenly((shown, 1)).iter().enumerate() {
            let last = row + 1 == shown;
            let mut chart = ChartBuilder::on(strip)
                .caption(format!("window {}", row + 1), (FAMILY, 14))
                .margin(8)
                .x_label_area_size(if last { 34 } else { 18 })
                .y_label_area_size(52)
                .build_cartesian_2d(0..length, y0..y1)?;
            let mut mesh = chart.configure_mesh();
            mesh.y_desc("value (data units)")
                .label_style((FAMILY, 11))
                .light_line_style(RGBColor(238, 238, 238))
                .y_labels(4)
                .x_labels(10);
            if last {
                mesh.x_desc("sample index");
            }
            mesh.draw()?;
            for (set, label, color) in sets {
                let width = if *label == "noisy input" { 1 } else { 2 };
                for c in 0..channels {
                    let ex = &set[row * dim + c * length..row * dim + (c + 1) * length];
                    let s = chart.draw_series(LineSeries::new(
                        ex.iter().copied().enumerate(),
                        color.stroke_width(width),
                    ))?;
                    if c == 0 {
                        let color = *color;
                        s.label(*label).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                        });
                    }
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FAMILY, 12))
                .draw()?;
        }
        Ok(())
    })
}

/// A PNG of the first `shown` samples of a streamed signal: the noisy input, the clean signal
/// if known, the denoised output, and the stream's window borders (a window starts at every
/// multiple of `hop`) as vertical lines.
pub fn stream_png(
    noisy: &[f32],
    denoised: &[f32],
    clean: Option<&[f32]>,
    hop: usize,
    shown: usize,
    title: &str,
) -> Result<Vec<u8>> {
    let n = shown.min(noisy.len()).min(denoised.len());
    if n < 2 || hop == 0 || clean.is_some_and(|c| c.len() < n) {
        bail!("nothing to plot (fewer than 2 samples)");
    }
    let mut sets: Vec<(&[f32], &str, RGBColor, u32)> = vec![(&noisy[..n], "noisy input", NOISY_COLOR, 1)];
    if let Some(c) = clean {
        sets.push((&c[..n], "clean", DATA_COLOR, 2));
    }
    sets.push((&denoised[..n], "denoised (stream)", SAMPLE_COLOR, 2));
    let only: Vec<&[f32]> = sets.iter().map(|s| s.0).collect();
    let (y0, y1) = bounds(&only, 1, 0);
    render((1200, 420), |root| {
        let body = root.titled(title, (FAMILY, 20))?;
        let mut chart = ChartBuilder::on(&body)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0..n, y0..y1)?;
        chart
            .configure_mesh()
            .y_desc("value (data units)")
            .x_desc("sample index")
            .label_style((FAMILY, 12))
            .disable_x_mesh()
            .light_line_style(WHITE)
            .draw()?;
        let border = RGBColor(200, 60, 60);
        let lines = chart.draw_series(
            (0..n)
                .step_by(hop)
                .map(|x| PathElement::new(vec![(x, y0), (x, y1)], border.mix(0.35).stroke_width(1))),
        )?;
        lines.label(format!("window borders (every {hop} samples)")).legend(move |(x, y)| {
            PathElement::new(vec![(x + 8, y - 6), (x + 8, y + 6)], border.stroke_width(1))
        });
        for (set, label, color, width) in &sets {
            let color = *color;
            chart
                .draw_series(LineSeries::new(set.iter().copied().enumerate(), color.stroke_width(*width)))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 12))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_come_from_the_data_set_not_from_squareness() {
        assert_eq!(data_shape_for(Some("ecg"), 64), DataShape::Signal { channels: 1, length: 64 });
        assert_eq!(data_shape_for(Some("ecg:100"), 100), DataShape::Signal { channels: 1, length: 100 });
        assert_eq!(data_shape_for(Some("digits"), 64), DataShape::Image { channels: 1, height: 8, width: 8 });
        assert_eq!(data_shape_for(Some("moons"), 2), DataShape::Points(2));
        assert_eq!(data_shape_for(Some("x.csv"), 3), DataShape::Points(3));
        assert_eq!(data_shape_for(None, 64), DataShape::Signal { channels: 1, length: 64 });
    }

    #[test]
    fn every_kind_of_plot_renders_a_png_with_the_embedded_font() {
        let pts: Vec<f32> = (0..200).map(|i| (i as f32 * 0.37).sin()).collect();
        let sig: Vec<f32> = (0..3 * 64).map(|i| (i as f32 * 0.2).cos()).collect();
        let img: Vec<f32> = (0..5 * 64).map(|i| (i % 17) as f32).collect();
        let pngs = [
            samples_png(DataShape::Points(2), &pts, Some(&pts), "t").unwrap(),
            samples_png(DataShape::Signal { channels: 1, length: 64 }, &sig, Some(&sig), "t").unwrap(),
            samples_png(DataShape::Image { channels: 1, height: 8, width: 8 }, &img, None, "t").unwrap(),
            denoise_png(DataShape::Signal { channels: 1, length: 64 }, &sig, &sig, Some(&sig), "t").unwrap(),
            stream_png(&sig, &sig, Some(&sig), 32, 100, "t").unwrap(),
        ];
        for png in pngs {
            assert_eq!(&png[1..4], b"PNG");
        }
        assert!(samples_png(DataShape::Points(2), &pts[..3], None, "t").is_err());
        assert!(stream_png(&sig[..1], &sig[..1], None, 32, 100, "t").is_err());
    }
}
