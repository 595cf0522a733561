//! Counter-based Gaussian noise: Philox4x32-10 and a bit-exact Box–Muller transform.
//!
//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) maps a
//! 128-bit counter and a 64-bit key to 128 random bits with ten rounds of 32×32→64-bit
//! multiplications, so a noise value is a pure function of *where* it is used, never of how many
//! values were drawn before it. tinyscore uses:
//!
//! * key = the user's seed (low word, high word);
//! * counter = (element block, sample, step, stream), where element block = element index / 4:
//!   one Philox call gives the normals of four consecutive elements.
//!
//! Uniforms are taken from the top 24 bits of each word (exact in f32), and pairs of them become
//! normals by Box–Muller with `libm`'s `logf`, `sqrtf`, `sinf` and `cosf`: pure software functions
//! over IEEE-754 single precision, so the stream is bit-identical on x86-64 and Cortex-M4F.
//! The exact recipe is in `docs/samplers.md` ("Noise").

// No panics by construction (issue 8): the noise path runs inside every sampler step on device.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

/// Philox 4×32 round multipliers and Weyl key increments (Salmon et al. 2011, Table 2).
const PHILOX_M0: u32 = 0xD251_1F53;
const PHILOX_M1: u32 = 0xCD9E_8D57;
const PHILOX_W0: u32 = 0x9E37_79B9;
const PHILOX_W1: u32 = 0xBB67_AE85;

/// Streams: independent noise families under one seed. Sampler noise and initial noise never
/// collide because they use different stream words.
pub mod stream {
    /// The initial sample x_T of a reverse process (step word = 0).
    pub const INIT: u32 = 0;
    /// Per-step noise of a stochastic sampler (step word = the step's index).
    pub const STEP: u32 = 1;
    /// Corrector (Langevin) noise of a predictor–corrector sampler.
    pub const CORRECTOR: u32 = 2;
    /// Training: the ε of the denoising score matching loss.
    pub const TRAIN_EPS: u32 = 16;
    /// Training: the diffusion time of each example.
    pub const TRAIN_TIME: u32 = 17;
    /// Training: which data example is drawn.
    pub const TRAIN_INDEX: u32 = 18;
    /// Generated (toy) data sets.
    pub const DATA: u32 = 32;
    /// Weight initialisation.
    pub const INIT_WEIGHTS: u32 = 33;
    /// Random projections of the sliced Wasserstein distance.
    pub const PROJECTIONS: u32 = 34;
    /// Draws from a Gaussian fitted to data (the baseline of `tinyscore eval`).
    pub const GAUSSIAN_FIT: u32 = 35;
    /// Training: the random projections v of sliced score matching.
    pub const SSM_PROJECTIONS: u32 = 36;
    /// The Hutchinson probes of the likelihood's divergence estimate.
    pub const HUTCHINSON: u32 = 37;
    /// The noise of the converter's calibration inputs.
    pub const CALIBRATION: u32 = 48;
    /// Denoising (SDEdit) and imputation: draw k uses stream `DENOISE + k` (k < 16).
    pub const DENOISE: u32 = 64;
}

/// One Philox4x32-10 block: ten rounds over `counter` with `key`.
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    let mut round = 0;
    while round < 10 {
        let p0 = (PHILOX_M0 as u64) * (c[0] as u64);
        let p1 = (PHILOX_M1 as u64) * (c[2] as u64);
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(PHILOX_W0), k[1].wrapping_add(PHILOX_W1)];
        round += 1;
    }
    c
}

/// The key of a 64-bit seed.
#[inline]
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// A uniform in (0, 1] from the top 24 bits of `bits` (never 0, so `ln` is finite).
#[inline]
pub fn uniform_open0(bits: u32) -> f32 {
    ((bits >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// A uniform in [0, 1) from the top 24 bits of `bits`.
#[inline]
pub fn uniform(bits: u32) -> f32 {
    (bits >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Box–Muller: two uniforms to two independent standard normals.
///
/// `r = sqrt(-2 ln u1)`, `z0 = r cos(2π u2)`, `z1 = r sin(2π u2)`, each operation in f32 through
/// `libm`, in exactly this order.
#[inline]
pub fn box_muller(b1: u32, b2: u32) -> (f32, f32) {
    let u1 = uniform_open0(b1);
    let u2 = uniform(b2);
    let r = libm::sqrtf(-2.0 * libm::logf(u1));
    let theta = core::f32::consts::TAU * u2;
    (r * libm::cosf(theta), r * libm::sinf(theta))
}

/// Four standard normals for elements `4·block .. 4·block+3` at `(sample, step, stream)`.
#[inline]
pub fn normal4(seed: u64, block: u32, sample: u32, step: u32, stream: u32) -> [f32; 4] {
    let r = philox4x32_10([block, sample, step, stream], key_of(seed));
    let (a, b) = box_muller(r[0], r[1]);
    let (c, d) = box_muller(r[2], r[3]);
    [a, b, c, d]
}

/// Fills `out[e]` with the standard normal of element `e` at `(sample, step, stream)`.
///
/// Element `e` always receives the same value whatever the length of `out`, so a vector's noise
/// does not depend on its neighbours, on the batch, or on the target.
pub fn fill_normal(seed: u64, sample: u32, step: u32, stream: u32, out: &mut [f32]) {
    for (block, chunk) in out.chunks_mut(4).enumerate() {
        let z = normal4(seed, block as u32, sample, step, stream);
        // chunks_mut(4): the last chunk may be shorter, zip takes its length.
        for (o, v) in chunk.iter_mut().zip(z) {
            *o = v;
        }
    }
}

/// Four raw 32-bit words at `(block, sample, step, stream)`: for integer draws (indices, times).
#[inline]
pub fn bits4(seed: u64, block: u32, sample: u32, step: u32, stream: u32) -> [u32; 4] {
    philox4x32_10([block, sample, step, stream], key_of(seed))
}

/// A source of Gaussian noise for the samplers. The samplers take it as a parameter so a test
/// can inject zeros or a known sequence (as k-diffusion does).
pub trait NoiseSource {
    /// Fills `out` with standard normals for `step` of `stream`.
    fn fill(&mut self, step: u32, stream: u32, out: &mut [f32]);
}

/// The default noise: Philox4x32-10 with key = seed and the sample's index in the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Philox {
    /// The user's seed.
    pub seed: u64,
    /// The index of the sample being drawn (its noise is independent of the others').
    pub sample: u32,
}

impl Philox {
    /// The noise of sample `sample` under `seed`.
    pub const fn new(seed: u64, sample: u32) -> Self {
        Self { seed, sample }
    }
}

impl NoiseSource for Philox {
    fn fill(&mut self, step: u32, stream: u32, out: &mut [f32]) {
        fill_normal(self.seed, self.sample, step, stream, out);
    }
}

/// Noise that is always zero: turns a stochastic sampler into its mean path (for tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct ZeroNoise;

impl NoiseSource for ZeroNoise {
    fn fill(&mut self, _step: u32, _stream: u32, out: &mut [f32]) {
        out.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer tests from the Random123 distribution (kat_vectors, philox4x32_10).
    #[test]
    fn philox_known_answers() {
        assert_eq!(philox4x32_10([0, 0, 0, 0], [0, 0]), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], [0xa409_3822, 0x299f_31d0]),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn normals_have_unit_moments() {
        let n = 1 << 16;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        let mut buf = [0.0f32; 64];
        for sample in 0..(n / 64) as u32 {
            fill_normal(7, sample, 3, stream::STEP, &mut buf);
            for &z in &buf {
                assert!(z.is_finite());
                s1 += z as f64;
                s2 += (z as f64) * (z as f64);
            }
        }
        let mean = s1 / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "var {var}");
    }

    #[test]
    fn element_noise_does_not_depend_on_length() {
        let mut long = [0.0f32; 13];
        let mut short = [0.0f32; 6];
        fill_normal(42, 5, 9, stream::STEP, &mut long);
        fill_normal(42, 5, 9, stream::STEP, &mut short);
        assert_eq!(&long[..6], &short[..]);
        let mut other = [0.0f32; 6];
        fill_normal(42, 6, 9, stream::STEP, &mut other);
        assert_ne!(short, other);
    }
}
