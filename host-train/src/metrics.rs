//! Sample-quality metrics (DESIGN §8).
//!
//! The sliced Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015) compares two point
//! clouds through their 1-D projections, where optimal transport is a sort:
//!
//! ```text
//! SW₂(a, b) = √( mean_{θ} W₂²(θ·a, θ·b) ),   W₂²(u, v) = mean_k (u_(k) − v_(k))²
//! ```
//!
//! over fixed random unit directions θ drawn from the seed, so a figure is reproducible. Report
//! it beside the same distance between two held-out halves, the floor set by finite samples.

use rayon::prelude::*;
use tinyscore_engine::rng::fill_normal;

use crate::data::Dataset;

/// Sliced Wasserstein-2 distance between the examples of `a` and `b` (same `dim`), over
/// `projections` directions drawn from `seed`: direction p is `fill_normal(seed, p, 0,
/// stream::PROJECTIONS)` normalised to unit length. Per direction, the 1-D W₂² between the sorted
/// projections; when the sizes differ, the quantiles at matching ranks are compared
/// (k = 0..max(n_a, n_b), quantile (k + ½)/max of each). Returns √(mean over directions), in
/// the data's units. In one dimension it is the plain W₂ (the direction is ±1).
///
/// # Panics
/// If the dimensions differ or either set is empty (callers validate their inputs).
pub fn sliced_wasserstein(a: &Dataset, b: &Dataset, projections: usize, seed: u64) -> f64 {
    assert_eq!(a.dim, b.dim, "sliced_wasserstein: dimensions differ");
    assert!(!a.is_empty() && !b.is_empty(), "sliced_wasserstein: empty set");
    let dim = a.dim;
    let per: Vec<f64> = (0..projections.max(1) as u32)
        .into_par_iter()
        .map(|p| {
            let mut dir = vec![0.0f32; dim];
            fill_normal(seed, p, 0, tinyscore_engine::rng::stream::PROJECTIONS, &mut dir);
            let norm = dir.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
            let dir: Vec<f64> =
                if norm > 0.0 { dir.iter().map(|&v| v as f64 / norm).collect() } else { vec![1.0; dim] };
            let project = |d: &Dataset| {
                let mut v: Vec<f64> = (0..d.len())
                    .map(|i| d.row(i).iter().zip(&dir).map(|(&x, w)| x as f64 * w).sum())
                    .collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let (pa, pb) = (project(a), project(b));
            let m = pa.len().max(pb.len());
            let quantile = |v: &[f64], k: usize| v[((2 * k + 1) * v.len()) / (2 * m)];
            (0..m).map(|k| (quantile(&pa, k) - quantile(&pb, k)).powi(2)).sum::<f64>() / m as f64
        })
        .collect();
    (per.iter().sum::<f64>() / per.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyscore_engine::rng::fill_normal;

    fn gaussian(n: usize, dim: usize, shift: &[f32], seed: u64) -> Dataset {
        let mut v = vec![0.0f32; n * dim];
        for (i, row) in v.chunks_exact_mut(dim).enumerate() {
            fill_normal(seed, i as u32, 0, 0, row);
            for (x, s) in row.iter_mut().zip(shift) {
                *x += s;
            }
        }
        Dataset::from_rows(dim, v, "gaussian")
    }

    #[test]
    fn distance_to_itself_is_zero() {
        let a = crate::data::load("moons", 1000, 1).unwrap();
        assert_eq!(sliced_wasserstein(&a, &a, 50, 0), 0.0);
    }

    #[test]
    fn shifted_gaussians_are_their_shift_apart() {
        // 1-D: W₂ between N(0,1) and N(δ,1) is δ.
        let (a, b) = (gaussian(4000, 1, &[0.0], 1), gaussian(4000, 1, &[2.0], 2));
        let d = sliced_wasserstein(&a, &b, 10, 0);
        assert!((d - 2.0).abs() < 0.1, "{d}");
        // D-D: a shift s projects to θ·s, and E[(θ·s)²] = |s|²/D over unit directions, so
        // SW₂ ≈ |s|/√D.
        let (a, b) = (gaussian(4000, 2, &[0.0, 0.0], 3), gaussian(4000, 2, &[3.0, 0.0], 4));
        let d = sliced_wasserstein(&a, &b, 500, 0);
        let want = 3.0 / 2f64.sqrt();
        assert!((d - want).abs() < 0.1 * want, "{d} vs {want}");
        // Different sizes compare quantiles.
        let c = gaussian(1500, 2, &[3.0, 0.0], 5);
        let d2 = sliced_wasserstein(&a, &c, 500, 0);
        assert!((d2 - want).abs() < 0.1 * want, "{d2} vs {want}");
    }

    #[test]
    fn moons_are_closer_to_moons_than_to_a_gaussian() {
        let m1 = crate::data::load("moons", 2000, 1).unwrap();
        let m2 = crate::data::load("moons", 2000, 2).unwrap();
        // A Gaussian with the moons' mean and per-dimension std.
        let norm = crate::data::Normalization::fit(&m1);
        let mut g = gaussian(2000, 2, &[0.0, 0.0], 9);
        norm.invert(&mut g.values);
        let same = sliced_wasserstein(&m1, &m2, 100, 0);
        let other = sliced_wasserstein(&m1, &g, 100, 0);
        assert!(other > 3.0 * same, "moons/moons {same}, moons/gaussian {other}");
    }
}
