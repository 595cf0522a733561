//! PNG plots of samples: a scatter for 2-D data, an image grid for square dimensions (digits),
//! stacked traces otherwise (signals). With reference data, data is drawn on the left and samples
//! on the right on the same axes, so the two can be compared at a glance. No text is drawn (the
//! bitmap backend is built without fonts); the command prints what each panel is.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use plotters::prelude::*;

const DATA_COLOR: RGBColor = RGBColor(31, 119, 180);
const SAMPLE_COLOR: RGBColor = RGBColor(255, 127, 14);

/// Draws `samples` (row-major, n × `dim`) to `path`, beside `reference` data if given.
pub fn plot_samples(path: &Path, dim: usize, samples: &[f32], reference: Option<&[f32]>) -> Result<()> {
    super::cmd::check_parent(path)?;
    if dim == 0 || samples.is_empty() {
        bail!("nothing to plot");
    }
    let err = |e: String| anyhow!("cannot draw {}: {e}", path.display());
    let side = (dim as f64).sqrt() as usize;
    if dim == 2 {
        scatter(path, samples, reference).map_err(|e| err(e.to_string()))
    } else if side * side == dim {
        images(path, side, samples, reference).map_err(|e| err(e.to_string()))
    } else {
        traces(path, dim, samples, reference).map_err(|e| err(e.to_string()))
    }
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn bounds(sets: &[&[f32]], dim: usize, axis: usize) -> (f32, f32) {
    let mut v: Vec<f32> = sets
        .iter()
        .flat_map(|s| s.chunks_exact(dim).map(move |r| r[axis]))
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return (-1.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    // Robust range: 0.5% to 99.5% quantiles, padded, so a few outliers do not squash the plot.
    let lo = v[v.len() / 200];
    let hi = v[v.len() - 1 - v.len() / 200];
    let pad = ((hi - lo) * 0.08).max(1e-3);
    (lo - pad, hi + pad)
}

fn scatter(path: &Path, samples: &[f32], reference: Option<&[f32]>) -> DrawResult {
    let panels: Vec<(&[f32], RGBColor)> = match reference {
        Some(r) => vec![(r, DATA_COLOR), (samples, SAMPLE_COLOR)],
        None => vec![(samples, SAMPLE_COLOR)],
    };
    let sets: Vec<&[f32]> = panels.iter().map(|p| p.0).collect();
    let (x0, x1) = bounds(&sets, 2, 0);
    let (y0, y1) = bounds(&sets, 2, 1);
    let root = BitMapBackend::new(path, (520 * panels.len() as u32, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (set, color)) in root.split_evenly((1, panels.len())).iter().zip(&panels) {
        let mut chart = ChartBuilder::on(area).margin(12).build_cartesian_2d(x0..x1, y0..y1)?;
        chart.plotting_area().fill(&RGBColor(248, 248, 248))?;
        chart.draw_series(
            set.chunks_exact(2).map(|p| Circle::new((p[0], p[1]), 2, color.mix(0.5).filled())),
        )?;
        area.draw(&Rectangle::new([(11, 11), (509, 509)], BLACK.stroke_width(1)))?;
    }
    root.present()?;
    Ok(())
}

fn images(path: &Path, side: usize, samples: &[f32], reference: Option<&[f32]>) -> DrawResult {
    let dim = side * side;
    let cols = 8usize;
    let rows = 8usize;
    let cell = 6 * side as u32 / 2 + 4;
    let panels: Vec<&[f32]> = match reference {
        Some(r) => vec![r, samples],
        None => vec![samples],
    };
    let (lo, hi) = bounds(&panels, 1, 0);
    let width = panels.len() as u32 * (cols as u32 * cell + 16);
    let root = BitMapBackend::new(path, (width, rows as u32 * cell + 16)).into_drawing_area();
    root.fill(&WHITE)?;
    for (p, set) in panels.iter().enumerate() {
        let x_off = p as u32 * (cols as u32 * cell + 16) + 8;
        for (k, img) in set.chunks_exact(dim).take(cols * rows).enumerate() {
            let (cx, cy) = (x_off + (k % cols) as u32 * cell, 8 + (k / cols) as u32 * cell);
            let px = (cell - 4) / side as u32;
            for (j, &v) in img.iter().enumerate() {
                let g = (255.0 * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0))) as u8;
                let (x, y) = (cx + (j % side) as u32 * px, cy + (j / side) as u32 * px);
                root.draw(&Rectangle::new(
                    [(x as i32, y as i32), ((x + px) as i32, (y + px) as i32)],
                    RGBColor(g, g, g).filled(),
                ))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

fn traces(path: &Path, dim: usize, samples: &[f32], reference: Option<&[f32]>) -> DrawResult {
    let panels: Vec<(&[f32], RGBColor)> = match reference {
        Some(r) => vec![(r, DATA_COLOR), (samples, SAMPLE_COLOR)],
        None => vec![(samples, SAMPLE_COLOR)],
    };
    let shown = 6usize;
    let sets: Vec<&[f32]> = panels.iter().map(|p| &p.0[..p.0.len().min(shown * dim)]).collect();
    let (y0, y1) = bounds(&sets, 1, 0);
    let root = BitMapBackend::new(path, (640 * panels.len() as u32, 120 * shown as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (area, (set, color)) in root.split_evenly((1, panels.len())).iter().zip(&panels) {
        let n = (set.len() / dim).min(shown);
        for (row, strip) in area.split_evenly((n.max(1), 1)).iter().enumerate().take(n) {
            let mut chart = ChartBuilder::on(strip).margin(6).build_cartesian_2d(0..dim, y0..y1)?;
            let trace = &set[row * dim..(row + 1) * dim];
            chart.draw_series(LineSeries::new(
                trace.iter().enumerate().map(|(i, v)| (i, *v)),
                color.stroke_width(2),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// Denoising traces: for the first windows, one strip each with the noisy input (grey), the clean
/// signal if known (blue) and the output (orange).
pub fn plot_denoise(
    path: &Path,
    dim: usize,
    noisy: &[f32],
    denoised: &[f32],
    clean: Option<&[f32]>,
) -> Result<()> {
    super::cmd::check_parent(path)?;
    if dim == 0 || noisy.is_empty() {
        bail!("nothing to plot");
    }
    draw_denoise(path, dim, noisy, denoised, clean)
        .map_err(|e| anyhow!("cannot draw {}: {e}", path.display()))
}

fn draw_denoise(
    path: &Path,
    dim: usize,
    noisy: &[f32],
    denoised: &[f32],
    clean: Option<&[f32]>,
) -> DrawResult {
    let shown = (noisy.len() / dim).clamp(1, 6);
    let mut sets: Vec<&[f32]> = vec![&noisy[..shown * dim], &denoised[..shown * dim]];
    if let Some(c) = clean {
        sets.push(&c[..shown * dim]);
    }
    let (y0, y1) = bounds(&sets, 1, 0);
    let root = BitMapBackend::new(path, (900, 150 * shown as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    for (row, strip) in root.split_evenly((shown, 1)).iter().enumerate() {
        let mut chart = ChartBuilder::on(strip).margin(6).build_cartesian_2d(0..dim, y0..y1)?;
        let trace = |v: &[f32]| v[row * dim..(row + 1) * dim].iter().copied().enumerate().collect::<Vec<_>>();
        chart.draw_series(LineSeries::new(trace(noisy), RGBColor(170, 170, 170).stroke_width(1)))?;
        if let Some(c) = clean {
            chart.draw_series(LineSeries::new(trace(c), DATA_COLOR.stroke_width(2)))?;
        }
        chart.draw_series(LineSeries::new(trace(denoised), SAMPLE_COLOR.stroke_width(2)))?;
    }
    root.present()?;
    Ok(())
}
