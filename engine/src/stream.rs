//! The streaming denoiser: samples go in one at a time (or in blocks of any size), denoised samples
//! come out W − 1 samples later, W the model's window length; no heap, fixed-capacity buffers.
//!
//! **Windows.** Window k covers the input samples [k·hop, k·hop + W) and is denoised as a whole by a
//! [`WindowDenoiser`] (for a model file, [`NetDenoiser`]: [`crate::denoise::denoise`], Tweedie or
//! SDEdit, window index k picking SDEdit's noise) as soon as its last sample arrives.
//!
//! **Combination (weighted overlap-add).** Output sample j is the weighted mean of the estimates
//! of every window that covers it,
//!
//! ```text
//! y_j = Σ_k g(j − k·hop)·x̂_k[j − k·hop] / Σ_k g(j − k·hop)     (k in increasing order)
//! ```
//!
//! with the taper g of [`Taper`]: `Hann`, g(a) = sin²(π(a + ½)/W), which is near 0 at a window's
//! borders and never 0, so each window's edge, where a denoiser sees only one side of the signal,
//! weighs little beside the centre of its neighbours and there is no seam; `Flat`, g = 1, a plain
//! mean. With hop = W and `Flat` each sample has one window of weight 1, and the stream is exactly
//! window-at-a-time denoising (a test holds the two to the same bits).
//!
//! **Latency.** Sample j is final once window ⌊j/hop⌋ has run, i.e. when sample ⌊j/hop⌋·hop + W − 1
//! has arrived: at most W − 1 samples after j (exactly W − 1 for j a multiple of hop). The stream
//! returns sample j when sample j + W − 1 is pushed ([`Stream::latency`]): one out for one in,
//! a fixed delay, the smallest that is the same for every sample. [`Stream::flush`] ends the
//! stream and returns the last min(N, W − 1) samples, so the output is as long as the input.
//!
//! **Edges.** The first windows start at sample 0 (no padding: the first samples simply have fewer
//! windows over them). At the end, the windows that start before the last sample but reach past it
//! are run with the missing samples set to the last sample (edge padding); their estimates past the
//! end are dropped. A stream shorter than W is one padded window.
//!
//! **Bad input.** Each sample is checked as it is pushed: NaN is replaced by the previous accepted
//! sample (the centre of the range before any), ±∞ and finite values outside the range
//! [`WindowDenoiser::range`] (for a model, the file's mean ± [`CLAMP_STDS`] standard deviations
//! of every position) are clamped to it, and [`Flags`] counts both. So the denoiser only ever sees
//! finite values of a bounded size and never returns NaN or ∞ for them.
//!
//! **`Sigma::Auto`**, the running noise estimate: window k's own estimate m_k is
//! [`crate::denoise::sigma_from_differences`] (σ̂ = 1.4826·MAD(Δy)/√2) of the W − 1 first
//! differences of its input, and the level used for window k is an exponential mean,
//! σ_0 = m_0, σ_k = σ_{k−1} + (m_k − σ_{k−1})/[`SIGMA_SMOOTHING`]; it follows a change of the
//! noise level within about 8 windows and varies less from window to window than m_k does. The
//! windows padded at the end keep σ as it is (a stream shorter than W: m_0 of the samples there are).
//!
//! **Determinism.** The order of every sum is fixed by the sample positions, so the output is the
//! same bits whether samples come one by one or in blocks of any size, and on every target.
//!
//! **RAM.** [`Stream`]`<C>` holds four buffers of C f32 (the input history, a heapless
//! [`HistoryBuffer`]; the window being denoised; the weighted sums; the weight sums) and a few
//! words: [`crate::footprint::stream_bytes`]. The window's denoiser runs on the caller's net.

use heapless::HistoryBuffer;

use crate::denoise::{self, DenoiseError, Method};
use crate::format::Role;
use crate::net::ScoreNet;
use crate::schedule::Diffusion;

/// The input range of a [`NetDenoiser`], in standard deviations of the training data around its
/// mean, at each position of the window (the widest over the window).
pub const CLAMP_STDS: f32 = 16.0;

/// The running σ estimate's smoothing: each window moves it 1/8 of the way to its own estimate.
pub const SIGMA_SMOOTHING: f32 = 8.0;

/// What the stream needs of a denoiser: one window of a fixed length at a time.
pub trait WindowDenoiser {
    /// The window length W.
    fn window(&self) -> usize;
    /// The range (low, high) of values the denoiser accepts; the stream clamps its input to it.
    fn range(&self) -> (f32, f32);
    /// Denoises `window` (W finite values in the range) in place, given its noise level `sigma`
    /// (finite, ≥ 0, data units); `index` is the window's number in the stream.
    fn denoise_window(&mut self, sigma: f32, index: u32, window: &mut [f32]);
}

/// A model file's network as a [`WindowDenoiser`]: [`crate::denoise::denoise`] with fixed method
/// and seed (window k of the stream uses SDEdit's noise of window index k).
pub struct NetDenoiser<'n, 'a, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>> {
    net: &'n mut ScoreNet<'a, D, H, F, S>,
    diff: &'n Diffusion,
    method: Method,
    seed: u64,
    range: (f32, f32),
}

impl<'n, 'a, const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>>
    NetDenoiser<'n, 'a, D, H, F, S>
{
    /// Checks the settings once (so that no window can fail later) and computes the input range.
    pub fn new(
        net: &'n mut ScoreNet<'a, D, H, F, S>,
        diff: &'n Diffusion,
        method: Method,
        seed: u64,
    ) -> Result<Self, DenoiseError> {
        if let Method::Sdedit { steps, draws } = method {
            if steps == 0 || steps > 1000 || draws == 0 || draws > denoise::MAX_DRAWS {
                return Err(DenoiseError::BadSettings);
            }
        }
        let d = net.dims().dim;
        if d > D || d < 2 {
            return Err(DenoiseError::Length { found: d, needed: D });
        }
        let (mean, std) = (net.model().tensor(Role::NormMean), net.model().tensor(Role::NormStd));
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for i in 0..d {
            let (m, s) = (mean.get(i), std.get(i));
            lo = lo.min(m - CLAMP_STDS * s);
            hi = hi.max(m + CLAMP_STDS * s);
        }
        Ok(Self { net, diff, method, seed, range: (lo, hi) })
    }
}

impl<const D: usize, const H: usize, const F: usize, S: AsMut<[f32]>> WindowDenoiser
    for NetDenoiser<'_, '_, D, H, F, S>
{
    fn window(&self) -> usize {
        self.net.dims().dim
    }

    fn range(&self) -> (f32, f32) {
        self.range
    }

    fn denoise_window(&mut self, sigma: f32, index: u32, window: &mut [f32]) {
        // Cannot fail: σ is finite and ≥ 0 (the stream's contract), the settings and the length
        // were checked in `new`.
        let _ = denoise::denoise(self.net, self.diff, self.method, sigma, self.seed, index, window);
    }
}

/// The weight of a window's positions in the overlap-add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Taper {
    /// g(a) = sin²(π(a + ½)/W): the centre of each window counts most (the default).
    Hann,
    /// g = 1: every window that covers a sample counts the same.
    Flat,
}

impl Taper {
    /// g(a) for position `a` of a window of `w` samples.
    pub fn weight(self, a: usize, w: usize) -> f32 {
        match self {
            Self::Flat => 1.0,
            Self::Hann => {
                let s = libm::sinf(core::f32::consts::PI * (a as f32 + 0.5) / w as f32);
                s * s
            }
        }
    }
}

/// The noise level of a stream.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sigma {
    /// Known, in data units (finite, ≥ 0).
    Given(f32),
    /// Estimated as the stream goes (the running estimate of the module doc).
    Auto,
}

/// Why a stream was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StreamError {
    /// The window is shorter than 2 or longer than the compiled capacity.
    Window {
        /// W.
        found: usize,
        /// The capacity C.
        capacity: usize,
    },
    /// The hop is 0 or longer than the window.
    Hop {
        /// The hop given.
        found: usize,
        /// W.
        window: usize,
    },
    /// The given σ is negative or not finite.
    BadSigma,
    /// The output slice is shorter than the samples it must receive.
    Output {
        /// Its length.
        found: usize,
        /// The samples to write.
        needed: usize,
    },
}

impl core::fmt::Display for StreamError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::Window { found, capacity } => {
                write!(f, "window of {found} samples, the stream holds 2..={capacity}")
            }
            Self::Hop { found, window } => write!(f, "hop must be in 1..={window}, got {found}"),
            Self::BadSigma => write!(f, "sigma must be a finite number >= 0"),
            Self::Output { found, needed } => {
                write!(f, "output buffer of {found} samples, {needed} needed")
            }
        }
    }
}

impl core::error::Error for StreamError {}

/// What the input check changed (see the module doc), counted since the stream began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Flags {
    /// NaN samples replaced by the previous accepted sample.
    pub nan: u32,
    /// Infinite or out-of-range samples clamped to the range.
    pub clamped: u32,
}

/// A streaming denoiser of capacity C (the longest window it can hold); see the module doc.
pub struct Stream<const C: usize> {
    /// (C,) the last samples pushed, after the input check; the last W are the next window.
    history: HistoryBuffer<f32, C>,
    /// (W,) the window being denoised; before that, its first differences (σ auto).
    window: [f32; C],
    /// (W,) Σ g·x̂ of sample j at slot j mod W.
    acc: [f32; C],
    /// (W,) Σ g of sample j at slot j mod W.
    wsum: [f32; C],
    w: usize,
    hop: usize,
    taper: Taper,
    sigma: Sigma,
    /// The running σ of `Sigma::Auto` (negative before the first window).
    running: f32,
    range: (f32, f32),
    /// The last accepted sample (what NaN becomes).
    last: f32,
    /// Samples pushed since the stream began.
    pushed: u64,
    /// Windows run since the stream began (the next window's k).
    windows: u32,
    flags: Flags,
}

impl<const C: usize> Stream<C> {
    /// A stream for `den`'s windows, a new window every `hop` samples (1 ≤ hop ≤ W), weighted by
    /// `taper`, at noise level `sigma`.
    pub fn new(
        den: &impl WindowDenoiser,
        hop: usize,
        taper: Taper,
        sigma: Sigma,
    ) -> Result<Self, StreamError> {
        let w = den.window();
        if !(2..=C).contains(&w) {
            return Err(StreamError::Window { found: w, capacity: C });
        }
        if hop == 0 || hop > w {
            return Err(StreamError::Hop { found: hop, window: w });
        }
        if let Sigma::Given(s) = sigma {
            if !(s.is_finite() && s >= 0.0) {
                return Err(StreamError::BadSigma);
            }
        }
        let (lo, hi) = den.range();
        // A denoiser with a range that is not an ordered pair of finite numbers gets its
        // samples clamped to 0 (never NaN).
        let range = if lo.is_finite() && hi.is_finite() && lo <= hi { (lo, hi) } else { (0.0, 0.0) };
        Ok(Self {
            history: HistoryBuffer::new(),
            window: [0.0; C],
            acc: [0.0; C],
            wsum: [0.0; C],
            w,
            hop,
            taper,
            sigma,
            running: -1.0,
            range,
            last: 0.5 * range.0 + 0.5 * range.1,
            pushed: 0,
            windows: 0,
            flags: Flags::default(),
        })
    }

    /// The delay in samples between a sample going in and its denoised value coming out: W − 1.
    pub fn latency(&self) -> usize {
        self.w - 1
    }

    /// What the input check has changed so far.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// The noise level the last window used (data units; `None` before the first window).
    pub fn sigma(&self) -> Option<f32> {
        match self.sigma {
            Sigma::Given(s) => Some(s),
            Sigma::Auto if self.running >= 0.0 => Some(self.running),
            Sigma::Auto => None,
        }
    }

    /// Samples pushed since the stream began.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The samples [`Self::flush`] will return now: min(pushed, W − 1).
    pub fn pending(&self) -> usize {
        (self.pushed.min(self.latency() as u64)) as usize
    }

    /// Takes sample `x`; returns the denoised sample pushed W − 1 samples before it, once there
    /// is one. Runs window k when its last sample arrives (every hop samples, the only costly call).
    pub fn push(&mut self, den: &mut impl WindowDenoiser, x: f32) -> Option<f32> {
        let x = self.accept(x);
        self.history.write(x);
        self.pushed += 1;
        let w = self.w as u64;
        if self.pushed < w {
            return None;
        }
        let start = self.pushed - w;
        if start % self.hop as u64 == 0 {
            self.run_window(den, start, self.pushed);
        }
        Some(self.take(start))
    }

    /// Pushes every sample of `input`, writing what comes out to the front of `out`; returns how
    /// many were written. `out` must be at least as long as `input` (checked before any work).
    pub fn push_block(
        &mut self,
        den: &mut impl WindowDenoiser,
        input: &[f32],
        out: &mut [f32],
    ) -> Result<usize, StreamError> {
        if out.len() < input.len() {
            return Err(StreamError::Output { found: out.len(), needed: input.len() });
        }
        let mut n = 0;
        for &x in input {
            if let Some(y) = self.push(den, x) {
                if let Some(o) = out.get_mut(n) {
                    *o = y;
                }
                n += 1;
            }
        }
        Ok(n)
    }

    /// Ends the stream: runs the windows that reach past its last sample (edge-padded), writes
    /// the last [`Self::pending`] samples to the front of `out` (checked before any work) and
    /// returns their number. The stream is then empty, ready for a new signal.
    pub fn flush(&mut self, den: &mut impl WindowDenoiser, out: &mut [f32]) -> Result<usize, StreamError> {
        let pending = self.pending();
        if out.len() < pending {
            return Err(StreamError::Output { found: out.len(), needed: pending });
        }
        let (n, w, hop) = (self.pushed, self.w as u64, self.hop as u64);
        if n > 0 {
            // The next window's start: the first multiple of hop whose window ends past n − 1.
            let mut start = if n < w { 0 } else { ((n - w) / hop + 1) * hop };
            while start < n {
                self.run_window(den, start, n);
                start += hop;
            }
        }
        let first = n - pending as u64;
        for (i, o) in out.iter_mut().take(pending).enumerate() {
            *o = self.take(first + i as u64);
        }
        self.reset();
        Ok(pending)
    }

    /// Forgets the signal (history, sums, σ estimate, flags, counts); keeps the settings.
    pub fn reset(&mut self) {
        self.history.clear();
        self.acc = [0.0; C];
        self.wsum = [0.0; C];
        self.running = -1.0;
        self.last = 0.5 * self.range.0 + 0.5 * self.range.1;
        self.pushed = 0;
        self.windows = 0;
        self.flags = Flags::default();
    }

    /// The input check: NaN → the last accepted sample, ±∞ and out-of-range values → clamped.
    fn accept(&mut self, x: f32) -> f32 {
        let (lo, hi) = self.range;
        let v = if x.is_nan() {
            self.flags.nan = self.flags.nan.saturating_add(1);
            self.last
        } else if x < lo || x > hi {
            self.flags.clamped = self.flags.clamped.saturating_add(1);
            x.clamp(lo, hi)
        } else {
            x
        };
        self.last = v;
        v
    }

    /// Output sample j (final): the weighted mean at its slot.
    fn take(&self, j: u64) -> f32 {
        let slot = (j % self.w as u64) as usize;
        match (self.acc.get(slot), self.wsum.get(slot)) {
            (Some(&a), Some(&g)) if g > 0.0 => a / g,
            _ => 0.0,
        }
    }

    /// Runs the window that starts at sample `start`, with the samples pushed so far (`n`, the
    /// history's newest is sample n − 1; samples from n on are the last one repeated), and adds
    /// its estimate of the samples below n into the sums.
    fn run_window(&mut self, den: &mut impl WindowDenoiser, start: u64, n: u64) {
        let w = self.w;
        let valid = (n - start).min(w as u64) as usize; // samples of the window that exist
        let sigma = match self.sigma {
            Sigma::Given(s) => s,
            Sigma::Auto if valid < w && self.running >= 0.0 => self.running,
            Sigma::Auto => {
                // m_k from the window's first differences (of its samples that exist: a window
                // padded at the end of a stream keeps the running σ, unless it is the first),
                // made in the window buffer (Δ_i = y_{i+1} − y_i, front to back, so each y_{i+1}
                // is read before it is overwritten); the window is then filled again.
                self.fill_window(valid);
                let win = &mut self.window[..valid];
                for i in 0..valid.saturating_sub(1) {
                    if let (Some(&y0), Some(&y1)) = (win.get(i), win.get(i + 1)) {
                        if let Some(d) = win.get_mut(i) {
                            *d = y1 - y0;
                        }
                    }
                }
                let m = denoise::sigma_from_differences(&mut win[..valid.saturating_sub(1)]);
                self.running =
                    if self.running < 0.0 { m } else { self.running + (m - self.running) / SIGMA_SMOOTHING };
                self.running
            }
        };
        self.fill_window(valid);
        den.denoise_window(sigma, self.windows, &mut self.window[..w]);
        self.windows = self.windows.wrapping_add(1);
        for (a, &xh) in self.window[..valid].iter().enumerate() {
            let slot = ((start + a as u64) % w as u64) as usize;
            // The positions no earlier window covers: all of window 0, the last hop of the others.
            let fresh = start == 0 || a + self.hop >= w;
            let g = self.taper.weight(a, w);
            if let (Some(acc), Some(ws)) = (self.acc.get_mut(slot), self.wsum.get_mut(slot)) {
                if fresh {
                    *acc = 0.0;
                    *ws = 0.0;
                }
                *acc += g * xh;
                *ws += g;
            }
        }
    }

    /// Fills the window with the newest `valid` samples of the history, then the newest sample
    /// repeated up to W.
    fn fill_window(&mut self, valid: usize) {
        let skip = self.history.len().saturating_sub(valid);
        let pad = self.history.recent().copied().unwrap_or(self.last);
        let mut it = self.history.oldest_ordered().skip(skip);
        for v in self.window[..self.w].iter_mut() {
            *v = it.next().copied().unwrap_or(pad);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in denoiser: a 3-tap smoother plus a shift by the window index, so that every
    /// window's estimate differs and depends on the whole window; records the σ it was given.
    struct Fake {
        w: usize,
        sigmas: std::vec::Vec<f32>,
    }

    impl Fake {
        fn new(w: usize) -> Self {
            Self { w, sigmas: std::vec::Vec::new() }
        }
        fn apply(index: u32, y: &mut [f32]) {
            let orig: std::vec::Vec<f32> = y.to_vec();
            let n = y.len();
            for i in 0..n {
                let l = orig[i.saturating_sub(1)];
                let r = orig[(i + 1).min(n - 1)];
                y[i] = 0.5 * orig[i] + 0.25 * (l + r) + 0.01 * index as f32;
            }
        }
    }

    impl WindowDenoiser for Fake {
        fn window(&self) -> usize {
            self.w
        }
        fn range(&self) -> (f32, f32) {
            (-100.0, 100.0)
        }
        fn denoise_window(&mut self, sigma: f32, index: u32, window: &mut [f32]) {
            self.sigmas.push(sigma);
            Self::apply(index, window);
        }
    }

    fn signal(n: usize, seed: u64) -> std::vec::Vec<f32> {
        let mut z = std::vec![0.0f32; n];
        crate::rng::fill_normal(seed, 0, 0, 0, &mut z);
        (0..n).map(|i| libm::sinf(i as f32 * 0.07) + 0.2 * z[i]).collect()
    }

    /// The whole output of a stream fed in blocks of `block` samples.
    fn run<const C: usize>(
        w: usize,
        hop: usize,
        taper: Taper,
        sigma: Sigma,
        input: &[f32],
        block: usize,
    ) -> (std::vec::Vec<f32>, Flags, Fake) {
        let mut den = Fake::new(w);
        let mut s = Stream::<C>::new(&den, hop, taper, sigma).unwrap();
        let mut out = std::vec![f32::NAN; input.len()];
        let mut n = 0;
        for chunk in input.chunks(block.max(1)) {
            n += s.push_block(&mut den, chunk, &mut out[n..]).unwrap();
        }
        let flags = s.flags();
        n += s.flush(&mut den, &mut out[n..]).unwrap();
        assert_eq!(n, input.len());
        assert_eq!(s.pushed(), 0, "flush empties the stream");
        (out, flags, den)
    }

    #[test]
    fn hop_w_and_flat_is_window_at_a_time() {
        let w = 16;
        for n in [0usize, 1, 5, 15, 16, 17, 48, 61] {
            let x = signal(n, 1);
            let (got, _, _) = run::<32>(w, w, Taper::Flat, Sigma::Given(0.1), &x, 1);
            // Window after window, the last one padded with its last sample.
            let mut want = std::vec::Vec::new();
            for (k, chunk) in x.chunks(w).enumerate() {
                let mut win = std::vec![*chunk.last().unwrap(); w];
                win[..chunk.len()].copy_from_slice(chunk);
                Fake::apply(k as u32, &mut win);
                want.extend_from_slice(&win[..chunk.len()]);
            }
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<std::vec::Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<std::vec::Vec<_>>(),
                "n = {n}"
            );
        }
    }

    #[test]
    fn overlap_add_follows_the_documented_rule() {
        let w = 16;
        for (hop, taper) in
            [(8, Taper::Hann), (4, Taper::Hann), (5, Taper::Flat), (16, Taper::Hann), (1, Taper::Hann)]
        {
            for n in [3usize, 16, 40, 77] {
                let x = signal(n, 2);
                let (got, _, _) = run::<16>(w, hop, taper, Sigma::Given(0.1), &x, 3);
                // Every window k with k·hop < n, padded past the end; y_j in f64.
                let mut num = std::vec![0.0f64; n];
                let mut den = std::vec![0.0f64; n];
                let mut k = 0;
                while k * hop < n {
                    let mut win: std::vec::Vec<f32> = (0..w).map(|a| x[(k * hop + a).min(n - 1)]).collect();
                    Fake::apply(k as u32, &mut win);
                    for a in 0..w {
                        if k * hop + a < n {
                            let g = taper.weight(a, w) as f64;
                            num[k * hop + a] += g * win[a] as f64;
                            den[k * hop + a] += g;
                        }
                    }
                    k += 1;
                }
                for j in 0..n {
                    let want = num[j] / den[j];
                    assert!(
                        (got[j] as f64 - want).abs() < 1e-5,
                        "hop {hop} n {n} j {j}: {} vs {want}",
                        got[j]
                    );
                }
            }
        }
    }

    #[test]
    fn block_size_does_not_change_a_bit() {
        let mut x = signal(1000, 3);
        x[100] = f32::NAN;
        x[500] = f32::INFINITY;
        for sigma in [Sigma::Given(0.2), Sigma::Auto] {
            for (hop, taper) in [(16, Taper::Hann), (7, Taper::Flat), (64, Taper::Hann)] {
                let (one, f1, _) = run::<64>(64, hop, taper, sigma, &x, 1);
                for block in [2usize, 13, 64, 100, 1000] {
                    let (b, fb, _) = run::<64>(64, hop, taper, sigma, &x, block);
                    assert_eq!(f1, fb);
                    assert!(one.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "block {block}");
                }
            }
        }
    }

    #[test]
    fn one_out_for_one_in_after_the_latency() {
        let w = 16;
        let mut den = Fake::new(w);
        let mut s = Stream::<16>::new(&den, 4, Taper::Hann, Sigma::Given(0.0)).unwrap();
        assert_eq!(s.latency(), 15);
        for i in 0..40 {
            let y = s.push(&mut den, i as f32 * 0.1);
            assert_eq!(y.is_some(), i >= 15, "sample {i}");
            assert_eq!(s.pending(), (i + 1).min(15));
        }
        // Windows run every hop samples once the first is full: 0, 4, …, 24.
        assert_eq!(den.sigmas.len(), (40 - 16) / 4 + 1);
        let mut short = [0.0f32; 14];
        assert_eq!(s.flush(&mut den, &mut short), Err(StreamError::Output { found: 14, needed: 15 }));
    }

    #[test]
    fn nan_infinity_and_huge_values_are_replaced_and_flagged() {
        let clean = signal(300, 4);
        let mut bad = clean.clone();
        let mut fixed = clean.clone();
        for (i, v) in [
            (0usize, f32::NAN),
            (10, f32::NAN),
            (11, f32::NAN),
            (50, f32::INFINITY),
            (51, f32::NEG_INFINITY),
            (120, 1e30),
            (121, -3e9),
            (299, f32::NAN),
        ] {
            bad[i] = v;
        }
        // The documented rule by hand: NaN → the previous accepted value (the range's centre, 0,
        // at the start), the rest clamped to (−100, 100).
        let mut last = 0.0f32;
        for (f, &b) in fixed.iter_mut().zip(&bad) {
            *f = if b.is_nan() { last } else { b.clamp(-100.0, 100.0) };
            last = *f;
        }
        for sigma in [Sigma::Given(0.2), Sigma::Auto] {
            let (got, flags, den) = run::<32>(32, 8, Taper::Hann, sigma, &bad, 5);
            let (want, wflags, _) = run::<32>(32, 8, Taper::Hann, sigma, &fixed, 5);
            assert_eq!(flags, Flags { nan: 4, clamped: 4 });
            assert_eq!(wflags, Flags::default());
            assert!(got.iter().all(|v| v.is_finite()));
            assert!(den.sigmas.iter().all(|s| s.is_finite() && *s >= 0.0));
            assert!(got.iter().zip(&want).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
        // A denoiser whose range is not finite clamps everything to 0 instead of passing NaN on.
        struct Broken;
        impl WindowDenoiser for Broken {
            fn window(&self) -> usize {
                4
            }
            fn range(&self) -> (f32, f32) {
                (f32::NAN, 1.0)
            }
            fn denoise_window(&mut self, _: f32, _: u32, w: &mut [f32]) {
                assert!(w.iter().all(|v| *v == 0.0));
            }
        }
        let mut s = Stream::<4>::new(&Broken, 2, Taper::Hann, Sigma::Auto).unwrap();
        for v in [f32::NAN, 3.0, f32::INFINITY, -1.0, 2.0] {
            let _ = s.push(&mut Broken, v);
        }
    }

    #[test]
    fn running_sigma_matches_the_batch_estimate_on_stationary_noise() {
        // σ = 0.2 white noise on a slow sine; windows of 256 (the ECG models'), 80 of them.
        let x = signal(256 * 40, 5);
        let (_, _, den) = run::<256>(256, 128, Taper::Hann, Sigma::Auto, &x, 64);
        let mut diffs: std::vec::Vec<f32> = x.windows(2).map(|p| p[1] - p[0]).collect();
        let batch = denoise::sigma_from_differences(&mut diffs);
        assert!((batch - 0.2).abs() < 0.02, "batch {batch}");
        // After the first 16 windows the running estimate stays within 10% of the batch one.
        for (k, s) in den.sigmas.iter().enumerate().skip(16) {
            assert!((s / batch - 1.0).abs() < 0.1, "window {k}: {s} vs {batch}");
        }
        // The first window uses its own estimate.
        let mut d0: std::vec::Vec<f32> = x[..256].windows(2).map(|p| p[1] - p[0]).collect();
        assert_eq!(den.sigmas[0], denoise::sigma_from_differences(&mut d0));
    }

    #[test]
    fn running_sigma_follows_a_change_of_the_noise_level() {
        // σ = 0.1 for 20 windows of 256, then σ = 0.3: within 30 windows (hop 128) of the
        // change the estimate is within 10% of the new level.
        let n = 256 * 20;
        let mut z = std::vec![0.0f32; 2 * n];
        crate::rng::fill_normal(6, 0, 0, 0, &mut z);
        let x: std::vec::Vec<f32> =
            (0..2 * n).map(|i| libm::sinf(i as f32 * 0.05) + if i < n { 0.1 } else { 0.3 } * z[i]).collect();
        let (_, _, den) = run::<256>(256, 128, Taper::Hann, Sigma::Auto, &x, 256);
        let before = den.sigmas[(n - 256) / 128];
        assert!((before / 0.1 - 1.0).abs() < 0.1, "{before}");
        let after = den.sigmas[(n - 256) / 128 + 2 + 30];
        assert!((after / 0.3 - 1.0).abs() < 0.1, "{after}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let den = Fake::new(16);
        assert_eq!(
            Stream::<8>::new(&den, 4, Taper::Hann, Sigma::Auto).err(),
            Some(StreamError::Window { found: 16, capacity: 8 })
        );
        assert_eq!(
            Stream::<16>::new(&den, 0, Taper::Hann, Sigma::Auto).err(),
            Some(StreamError::Hop { found: 0, window: 16 })
        );
        assert_eq!(
            Stream::<16>::new(&den, 17, Taper::Hann, Sigma::Auto).err(),
            Some(StreamError::Hop { found: 17, window: 16 })
        );
        for s in [-0.1, f32::NAN, f32::INFINITY] {
            assert_eq!(
                Stream::<16>::new(&den, 4, Taper::Hann, Sigma::Given(s)).err(),
                Some(StreamError::BadSigma)
            );
        }
        assert_eq!(
            Stream::<16>::new(&Fake::new(1), 1, Taper::Hann, Sigma::Auto).err(),
            Some(StreamError::Window { found: 1, capacity: 16 })
        );
        let mut den = Fake::new(16);
        let mut s = Stream::<16>::new(&den, 4, Taper::Hann, Sigma::Auto).unwrap();
        let mut out = [0.0f32; 3];
        assert_eq!(
            s.push_block(&mut den, &[0.0; 4], &mut out),
            Err(StreamError::Output { found: 3, needed: 4 })
        );
        assert_eq!(s.pushed(), 0, "refused before any work");
    }
}
