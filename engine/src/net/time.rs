//! The sinusoidal time features φ(t) of ScoreNet (`docs/scorenet.md`):
//!
//! ```text
//! φ(t) = [sin(ω_k·s(t)), cos(ω_k·s(t))],  ω_k = exp(−ln(10000)·k/(F/2)),  s(t) = 1000·t,  k < F/2
//! ```
//!
//! The engine, the CPU trainer and the CUDA kernels all take φ(t) from here.
/// Time scale s(t) = 1000·t applied before the sinusoidal features.
pub const TIME_SCALE: f32 = 1000.0;
/// ln(10000), the base of the feature frequencies.
pub const LN_10000: f32 = 9.210_340_4;

/// The frequency ω_k = exp(−ln(10000)·k/(F/2)) of time feature pair k.
#[inline]
pub fn frequency(k: usize, half: usize) -> f32 {
    libm::expf(-LN_10000 * k as f32 / half as f32)
}

/// φ(t): `out[k] = sin(ω_k·1000t)`, `out[F/2 + k] = cos(ω_k·1000t)` for k < F/2 (F = `out.len()`).
pub fn time_features(t: f32, out: &mut [f32]) {
    let half = out.len() / 2;
    features_with(t, out, |k| frequency(k, half));
}

/// The frequencies ω_k = [`frequency`]`(k, F/2)` of F time features, k < F/2, into
/// `out[..F/2]` (as many as `out` holds): what [`time_features_from`] takes, computed once per
/// network.
pub fn frequencies(freqs: usize, out: &mut [f32]) {
    let half = freqs / 2;
    for (k, w) in out.iter_mut().take(half).enumerate() {
        *w = frequency(k, half);
    }
}

/// [`time_features`] with the frequencies given (`freqs[k]` = ω_k, k < F/2, from
/// [`frequencies`]): the same bits, without the `expf` per frequency.
///
/// # Panics
/// If `freqs` is shorter than F/2 = `out.len() / 2` (a caller bug).
pub fn time_features_from(freqs: &[f32], t: f32, out: &mut [f32]) {
    let half = out.len() / 2;
    let freqs = &freqs[..half];
    features_with(t, out, |k| freqs[k]);
}

/// φ(t) with ω_k = `omega(k)`: the one definition behind [`time_features`] and
/// [`time_features_from`].
#[inline(always)]
fn features_with(t: f32, out: &mut [f32], omega: impl Fn(usize) -> f32) {
    let half = out.len() / 2;
    let s = TIME_SCALE * t;
    for k in 0..half {
        let arg = omega(k) * s;
        out[k] = libm::sinf(arg);
        out[half + k] = libm::cosf(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits;

    #[test]
    fn time_features_follow_the_definition() {
        let mut phi = [0.0f32; 8];
        time_features(0.25, &mut phi);
        for k in 0..4 {
            let w = (-(10000f64.ln()) * k as f64 / 4.0).exp();
            let arg = w * 250.0;
            assert!((phi[k] as f64 - arg.sin()).abs() < 1e-4, "sin k={k}");
            assert!((phi[4 + k] as f64 - arg.cos()).abs() < 1e-4, "cos k={k}");
        }
    }

    #[test]
    fn features_from_precomputed_frequencies_have_the_same_bits() {
        let mut freqs = [0.0f32; limits::MAX_FREQS];
        for f in (0..=limits::MAX_FREQS).step_by(2) {
            frequencies(f, &mut freqs);
            for (k, w) in freqs[..f / 2].iter().enumerate() {
                assert_eq!(w.to_bits(), frequency(k, f / 2).to_bits());
            }
            let (mut want, mut got) = ([0.0f32; limits::MAX_FREQS], [0.0f32; limits::MAX_FREQS]);
            for t in [0.0f32, 1e-3, 0.25, 0.5, 0.999, 1.0, -0.3, f32::NAN] {
                time_features(t, &mut want[..f]);
                time_features_from(&freqs, t, &mut got[..f]);
                for (a, b) in want[..f].iter().zip(&got[..f]) {
                    assert_eq!(a.to_bits(), b.to_bits(), "F={f} t={t}");
                }
            }
        }
    }
}
