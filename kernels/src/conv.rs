//! CPU twins of the 1-D convolution kernels: the layers of a convolutional score network
//! (Conv1d, 2× nearest upsampling, the per-example channel bias of the time embedding), their
//! backward passes, and the forward-mode tangent of the convolution (sliced score matching).
//! These functions *define* what the kernels compute; the CUDA versions (`kernels/cuda/conv.cu`)
//! are tested against them.
//!
//! # Layout
//!
//! Activations are **channels-last**: a chunk of `rows` examples, each a (L, C) signal, element
//! (r, l, c) at `r·L·C + l·C + c`. Time-branch vectors (the channel bias) are (rows, C).
//!
//! # Conv1d
//!
//! Weight `w` (C_out, C_in, K) row-major, element (co, ci, j) at `co·C_in·K + ci·K + j` (PyTorch's
//! `nn.Conv1d` layout), bias `b` (C_out). K odd, dilation `dil ≥ 1`, stride 1 or 2, zero "same"
//! padding p = dil·(K−1)/2, output length L_out = ⌈L_in/stride⌉:
//!
//! ```text
//! y[r, l, co] = b[co] + Σ_{ci < C_in, j < K} w[co, ci, j] · x[r, stride·l + j·dil − p, ci]
//! ```
//!
//! with the x term taken as 0 outside [0, L_in). This is PyTorch's
//! `Conv1d(C_in, C_out, K, stride, padding=p, dilation=dil)` on channel-major (N, C, L) data.
//! Its gradients, given dy = ∂L/∂y:
//!
//! ```text
//! dx[r, i, ci]   = Σ_{l, co, j : stride·l + j·dil − p = i} w[co, ci, j] · dy[r, l, co]
//! dw[co, ci, j] += Σ_{r, l} dy[r, l, co] · x[r, stride·l + j·dil − p, ci]
//! db[co]        += Σ_{r, l} dy[r, l, co]
//! ```
//!
//! and its tangent is the convolution without bias, ẏ = conv_w(ẋ) (the map is linear in x).
//!
//! # How: im2col + GEMM, in tiles of positions
//!
//! The output positions of a chunk are numbered q = r·L_out + l, q < rows·L_out, which is also
//! the row index of y and dy seen as (rows·L_out, C_out) matrices. They are processed in tiles of
//! at most [`CONV_TILE`] consecutive q (a tile may span examples). For a tile, im2col writes
//!
//! ```text
//! col[t, ci·K + j] = x[r, stride·l + j·dil − p, ci]   (0 outside)     (T, C_in·K), q = q0 + t
//! ```
//!
//! (column index ci·K + j: the weight's memory order, so `w` is a (C_out, C_in·K) matrix as it
//! lies), and the crate's GEMM (`matrixmultiply::sgemm`) does the rest:
//!
//! ```text
//! forward       y[q0.., :]  = col · wᵀ (+ b)                 (T, C_out)
//! input grad    dcol        = dy[q0.., :] · w                (T, C_in·K), then col2im adds
//!                                                            dcol[t, ci·K + j] into dx[r, stride·l + j·dil − p, ci]
//! weight grad   dw         += dy[q0.., :]ᵀ · col             (C_out, C_in·K)
//! ```
//!
//! A pointwise convolution (K = 1, stride 1) needs no im2col: the tile of x is its col matrix.
//!
//! **Scratch.** The caller owns the im2col buffer and passes it as `scratch`, at least
//! [`Conv1d::scratch_len`] = min(`CONV_TILE`, rows·L_out)·C_in·K f32 (its contents on entry do
//! not matter; on return they are unspecified). A plain slice, not a `Vec` the kernel grows,
//! because the hot loop never allocates and a static-arena caller can size it once per layer.
//! The tile size is the constant [`CONV_TILE`], never derived from the scratch length, so the
//! result does not depend on how large a buffer the caller happens to pass.
//!
//! # Summation order and determinism
//!
//! Every kernel is a fixed sequence of operations for given shapes: the same inputs give the same
//! bits run after run (the GEMM is single-threaded). What holds across chunkings of the rows:
//!
//! * **Forward, tangent, input gradient, upsampling, channel bias:** example r's outputs depend
//!   only on example r. A y element (and a dcol element) is one dot product over ci·K + j that
//!   sgemm computes with the same k loop whatever the row of the tile it falls in; a dx element
//!   receives its col2im terms in increasing (l, j) order whatever the tiling. So splitting the
//!   rows into chunks gives the same bits (asserted by `kernels/tests/conv.rs` with the sgemm
//!   micro-kernel this machine selects).
//! * **Parameter gradients** (`dw`, `db`) sum over all (r, l) of a call: `db` in increasing q, `dw`
//!   tile after tile (each tile one GEMM accumulation into `dw`). A trainer that gives each chunk
//!   its own zeroed gradient and adds the chunk gradients in chunk order is deterministic for a
//!   given chunking (the trainer's chunking depends only on the batch size, so on any thread count
//!   the bits are the same); a different chunking re-associates the sum and differs by rounding only.

use crate::cpu::gemm;

/// Output positions per im2col tile: bounds the scratch buffer at `CONV_TILE·C_in·K` f32 and is
/// the depth of each weight-gradient GEMM. Part of the summation order of `dw` (see the module
/// doc), so a constant.
pub const CONV_TILE: usize = 256;

/// The shape of one Conv1d call: a chunk of `rows` examples of length `l_in`.
///
/// Invariants (asserted by every kernel): `k` odd, `dil ≥ 1`, `stride` 1 or 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1d {
    /// Examples in the chunk.
    pub rows: usize,
    /// L_in, the input length of each example.
    pub l_in: usize,
    /// C_in, input channels.
    pub c_in: usize,
    /// C_out, output channels.
    pub c_out: usize,
    /// K, the kernel size (odd).
    pub k: usize,
    /// Dilation (≥ 1).
    pub dil: usize,
    /// Stride (1 or 2).
    pub stride: usize,
}

impl Conv1d {
    /// Panics unless the invariants hold: K odd, dil ≥ 1, stride 1 or 2.
    pub fn validate(&self) {
        assert!(self.k % 2 == 1, "conv1d: kernel size {} is not odd", self.k);
        assert!(self.dil >= 1, "conv1d: dilation must be at least 1");
        assert!(self.stride == 1 || self.stride == 2, "conv1d: stride {} is not 1 or 2", self.stride);
    }

    /// L_out = ⌈L_in / stride⌉.
    pub fn l_out(&self) -> usize {
        self.l_in.div_ceil(self.stride)
    }

    /// The "same" zero padding p = dil·(K−1)/2 on each side.
    pub fn pad(&self) -> usize {
        self.dil * (self.k - 1) / 2
    }

    /// f32 elements of x: rows·L_in·C_in.
    pub fn x_len(&self) -> usize {
        self.rows * self.l_in * self.c_in
    }

    /// f32 elements of y: rows·L_out·C_out.
    pub fn y_len(&self) -> usize {
        self.rows * self.l_out() * self.c_out
    }

    /// f32 elements of w: C_out·C_in·K.
    pub fn w_len(&self) -> usize {
        self.c_out * self.c_in * self.k
    }

    /// The scratch every conv kernel of this shape needs: min(`CONV_TILE`, rows·L_out)·C_in·K f32.
    pub fn scratch_len(&self) -> usize {
        CONV_TILE.min(self.rows * self.l_out()) * self.c_in * self.k
    }

    /// Whether im2col is the identity (K = 1, stride 1): the col matrix is x itself.
    fn pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1
    }

    /// Asserts the invariants and the lengths of the operands (x-like, y-like, w, scratch).
    fn check(&self, x: usize, y: usize, w: usize, scratch: usize) {
        self.validate();
        assert!(x >= self.x_len(), "conv1d: x-sized buffer has {x} < {} elements", self.x_len());
        assert!(y >= self.y_len(), "conv1d: y-sized buffer has {y} < {} elements", self.y_len());
        assert!(w >= self.w_len(), "conv1d: w has {w} < {} elements", self.w_len());
        if !self.pointwise() {
            assert!(scratch >= self.scratch_len(), "conv1d: scratch has {scratch} < {}", self.scratch_len());
        }
    }

    /// The tiles (q0, T) of output positions, in increasing q.
    fn tiles(&self) -> impl Iterator<Item = (usize, usize)> {
        let total = self.rows * self.l_out();
        (0..total).step_by(CONV_TILE).map(move |q0| (q0, CONV_TILE.min(total - q0)))
    }

    /// The first input position of output position q's window, stride·l − p, and its example r.
    fn window(&self, q: usize) -> (usize, isize) {
        let l_out = self.l_out();
        let (r, l) = (q / l_out, q % l_out);
        (r, (self.stride * l) as isize - self.pad() as isize)
    }
}

/// The col matrix (T, C_in·K) of the tile (q0, T): x's own rows for a pointwise conv, else
/// im2col into `scratch`. `col[t, ci·K + j] = x[r, stride·l + j·dil − p, ci]`, 0 outside.
fn cols<'a>(x: &'a [f32], s: &Conv1d, (q0, t_len): (usize, usize), scratch: &'a mut [f32]) -> &'a [f32] {
    let ck = s.c_in * s.k;
    if s.pointwise() {
        return &x[q0 * ck..(q0 + t_len) * ck];
    }
    let col = &mut scratch[..t_len * ck];
    for (t, dst) in col.chunks_exact_mut(ck).enumerate() {
        let (r, base) = s.window(q0 + t);
        // (L_in, C_in) the example's signal.
        let xr = &x[r * s.l_in * s.c_in..(r + 1) * s.l_in * s.c_in];
        for j in 0..s.k {
            let pos = base + (j * s.dil) as isize;
            if pos < 0 || pos >= s.l_in as isize {
                for ci in 0..s.c_in {
                    dst[ci * s.k + j] = 0.0;
                }
            } else {
                let src = &xr[pos as usize * s.c_in..(pos as usize + 1) * s.c_in];
                for (ci, &v) in src.iter().enumerate() {
                    dst[ci * s.k + j] = v;
                }
            }
        }
    }
    col
}

/// y (rows·L_out, C_out) = conv(x) (+ b): the forward and the tangent.
fn conv_apply(x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32], s: &Conv1d, scratch: &mut [f32]) {
    s.check(x.len(), y.len(), w.len(), scratch.len());
    let (ck, co) = (s.c_in * s.k, s.c_out);
    for tile in s.tiles() {
        let (q0, t_len) = tile;
        // (T, C_out) the tile's outputs.
        let yt = &mut y[q0 * co..(q0 + t_len) * co];
        let beta = match b {
            Some(b) => {
                for row in yt.chunks_exact_mut(co) {
                    row.copy_from_slice(&b[..co]);
                }
                1.0
            }
            None => 0.0,
        };
        let col = cols(x, s, tile, scratch);
        // wᵀ (C_in·K, C_out): element (i, o) is w[o·C_in·K + i], strides (1, C_in·K).
        gemm(t_len, ck, co, col, (ck, 1), w, (1, ck), beta, yt);
    }
}

/// Conv1d forward: `y[r, l, co] = b[co] + Σ_{ci, j} w[co, ci, j]·x[r, stride·l + j·dil − p, ci]`
/// (the module doc has the whole contract).
///
/// * `x`: (rows, L_in, C_in) input;
/// * `w`: (C_out, C_in, K) weight; `b`: (C_out,) bias;
/// * `y`: (rows, L_out, C_out) output, overwritten;
/// * `scratch`: at least [`Conv1d::scratch_len`] f32 (im2col tile).
pub fn conv1d_fwd(x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], s: &Conv1d, scratch: &mut [f32]) {
    assert!(b.len() >= s.c_out, "conv1d: bias has {} < {} elements", b.len(), s.c_out);
    conv_apply(x, w, Some(b), y, s, scratch);
}

/// Conv1d tangent (forward-mode derivative; the map is linear in x, so it is the convolution
/// without bias): `ẏ[r, l, co] = Σ_{ci, j} w[co, ci, j]·ẋ[r, stride·l + j·dil − p, ci]`.
///
/// * `xdot`: (rows, L_in, C_in); `w`: (C_out, C_in, K); `ydot`: (rows, L_out, C_out), overwritten;
/// * `scratch`: at least [`Conv1d::scratch_len`] f32.
///
/// Its backward is [`conv1d_bwd_input`] (to ẋ) and [`conv1d_bwd_weight`] (to w).
pub fn conv1d_tangent(xdot: &[f32], w: &[f32], ydot: &mut [f32], s: &Conv1d, scratch: &mut [f32]) {
    conv_apply(xdot, w, None, ydot, s, scratch);
}

/// dx (rows·L_in, C_in) = (=, or += when `accumulate`) convᵀ(dy), by dcol = dy·w and col2im.
fn conv_bwd_input(dy: &[f32], w: &[f32], dx: &mut [f32], s: &Conv1d, scratch: &mut [f32], accumulate: bool) {
    s.check(dx.len(), dy.len(), w.len(), scratch.len());
    let (ck, co) = (s.c_in * s.k, s.c_out);
    if s.pointwise() {
        // dx (rows·L, C_in) = dy (rows·L, C_out) · w (C_out, C_in): one GEMM, no col2im.
        let n = s.x_len();
        gemm(
            n / s.c_in.max(1),
            co,
            ck,
            dy,
            (co, 1),
            w,
            (ck, 1),
            if accumulate { 1.0 } else { 0.0 },
            &mut dx[..n],
        );
        return;
    }
    if !accumulate {
        dx[..s.x_len()].fill(0.0);
    }
    let dcol_buf = &mut scratch[..s.scratch_len()];
    for (q0, t_len) in s.tiles() {
        // (T, C_in·K) the gradient of the tile's col matrix: dy tile (T, C_out) · w (C_out, C_in·K).
        let dcol = &mut dcol_buf[..t_len * ck];
        gemm(t_len, co, ck, &dy[q0 * co..(q0 + t_len) * co], (co, 1), w, (ck, 1), 0.0, dcol);
        // col2im: every dx element receives its terms in increasing (l, j) order.
        for (t, src) in dcol.chunks_exact(ck).enumerate() {
            let (r, base) = s.window(q0 + t);
            // (L_in, C_in) the example's input gradient.
            let dxr = &mut dx[r * s.l_in * s.c_in..(r + 1) * s.l_in * s.c_in];
            for j in 0..s.k {
                let pos = base + (j * s.dil) as isize;
                if pos < 0 || pos >= s.l_in as isize {
                    continue;
                }
                let dst = &mut dxr[pos as usize * s.c_in..(pos as usize + 1) * s.c_in];
                for (ci, o) in dst.iter_mut().enumerate() {
                    *o += src[ci * s.k + j];
                }
            }
        }
    }
}

/// Conv1d input gradient, overwritten:
/// `dx[r, i, ci] = Σ_{l, co, j : stride·l + j·dil − p = i} w[co, ci, j]·dy[r, l, co]`.
///
/// * `dy`: (rows, L_out, C_out) output gradient; `w`: (C_out, C_in, K);
/// * `dx`: (rows, L_in, C_in), overwritten (positions no window reaches get 0);
/// * `scratch`: at least [`Conv1d::scratch_len`] f32.
pub fn conv1d_bwd_input(dy: &[f32], w: &[f32], dx: &mut [f32], s: &Conv1d, scratch: &mut [f32]) {
    conv_bwd_input(dy, w, dx, s, scratch, false);
}

/// [`conv1d_bwd_input`], accumulated: `dx += convᵀ(dy)` (residual graphs sum the gradients of a
/// tensor's readers). Each dx element gets its terms added in increasing (l, j) order; the bits
/// differ from overwriting into a zeroed buffer and adding the prior value afterwards.
pub fn conv1d_bwd_input_acc(dy: &[f32], w: &[f32], dx: &mut [f32], s: &Conv1d, scratch: &mut [f32]) {
    conv_bwd_input(dy, w, dx, s, scratch, true);
}

/// dw += dyᵀ·col over the tiles, and db += Σ_q dy[q] when given.
fn conv_bwd_params(
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    s: &Conv1d,
    scratch: &mut [f32],
) {
    s.check(x.len(), dy.len(), dw.len(), scratch.len());
    let (ck, co) = (s.c_in * s.k, s.c_out);
    let dw = &mut dw[..co * ck];
    for tile in s.tiles() {
        let (q0, t_len) = tile;
        let col = cols(x, s, tile, scratch);
        // dyᵀ (C_out, T): element (o, t) is dy[(q0 + t)·C_out + o], strides (1, C_out).
        gemm(co, t_len, ck, &dy[q0 * co..(q0 + t_len) * co], (1, co), col, (ck, 1), 1.0, dw);
    }
    if let Some(db) = db {
        let db = &mut db[..co];
        for row in dy[..s.y_len()].chunks_exact(co.max(1)) {
            for (g, &d) in db.iter_mut().zip(row) {
                *g += d;
            }
        }
    }
}

/// Conv1d parameter gradients, accumulated (like [`crate::cpu::linear_bwd_params`]):
/// `dw[co, ci, j] += Σ_{r, l} dy[r, l, co]·x[r, stride·l + j·dil − p, ci]`,
/// `db[co] += Σ_{r, l} dy[r, l, co]`.
///
/// * `dy`: (rows, L_out, C_out); `x`: (rows, L_in, C_in) the forward's input;
/// * `dw`: (C_out, C_in, K) and `db`: (C_out,), accumulated into;
/// * `scratch`: at least [`Conv1d::scratch_len`] f32.
///
/// Order: `db` adds q = r·L_out + l in increasing order; `dw` adds one GEMM per tile of
/// [`CONV_TILE`] positions, tiles in increasing q (the module doc says what that implies).
pub fn conv1d_bwd_params(
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    s: &Conv1d,
    scratch: &mut [f32],
) {
    assert!(db.len() >= s.c_out, "conv1d: db has {} < {} elements", db.len(), s.c_out);
    conv_bwd_params(dy, x, dw, Some(db), s, scratch);
}

/// The weight gradient of a bias-free convolution (the tangent pass's share of a weight's
/// gradient), accumulated: `dw[co, ci, j] += Σ_{r, l} dy[r, l, co]·x[r, stride·l + j·dil − p, ci]`,
/// the same bits as the `dw` of [`conv1d_bwd_params`]. Shapes as there.
pub fn conv1d_bwd_weight(dy: &[f32], x: &[f32], dw: &mut [f32], s: &Conv1d, scratch: &mut [f32]) {
    conv_bwd_params(dy, x, dw, None, s, scratch);
}

/// 2× nearest upsampling: `y[r, l, c] = x[r, ⌊l/2⌋, c]`, L_out = 2·L_in.
///
/// * `x`: (rows, L_in, C); `y`: (rows, 2·L_in, C), overwritten.
pub fn upsample2_fwd(x: &[f32], y: &mut [f32], rows: usize, l_in: usize, c: usize) {
    let n = rows * l_in * c;
    assert!(x.len() >= n && y.len() >= 2 * n, "upsample2_fwd: buffers too short");
    if c == 0 {
        return;
    }
    for (src, dst) in x[..n].chunks_exact(c).zip(y[..2 * n].chunks_exact_mut(2 * c)) {
        dst[..c].copy_from_slice(src);
        dst[c..].copy_from_slice(src);
    }
}

fn upsample2_bwd_impl(dy: &[f32], dx: &mut [f32], rows: usize, l_in: usize, c: usize, accumulate: bool) {
    let n = rows * l_in * c;
    assert!(dx.len() >= n && dy.len() >= 2 * n, "upsample2_bwd: buffers too short");
    if c == 0 {
        return;
    }
    for (src, dst) in dy[..2 * n].chunks_exact(2 * c).zip(dx[..n].chunks_exact_mut(c)) {
        let (even, odd) = src.split_at(c);
        for ((o, &a), &b) in dst.iter_mut().zip(even).zip(odd) {
            *o = if accumulate { *o + (a + b) } else { a + b };
        }
    }
}

/// Backward of [`upsample2_fwd`], overwritten: `dx[r, l, c] = dy[r, 2l, c] + dy[r, 2l+1, c]`.
///
/// * `dy`: (rows, 2·L_in, C); `dx`: (rows, L_in, C), overwritten. `l_in` is the forward's L_in.
pub fn upsample2_bwd(dy: &[f32], dx: &mut [f32], rows: usize, l_in: usize, c: usize) {
    upsample2_bwd_impl(dy, dx, rows, l_in, c, false);
}

/// [`upsample2_bwd`], accumulated: `dx[r, l, c] += (dy[r, 2l, c] + dy[r, 2l+1, c])` (the pair
/// summed first, then added).
pub fn upsample2_bwd_acc(dy: &[f32], dx: &mut [f32], rows: usize, l_in: usize, c: usize) {
    upsample2_bwd_impl(dy, dx, rows, l_in, c, true);
}

/// The time-embedding injection, a per-example, per-channel bias: `y[r, l, c] += v[r, c]`.
///
/// * `y`: (rows, L, C), added to in place; `v`: (rows, C).
pub fn channel_bias_fwd(y: &mut [f32], v: &[f32], rows: usize, l: usize, c: usize) {
    assert!(y.len() >= rows * l * c && v.len() >= rows * c, "channel_bias_fwd: buffers too short");
    if l == 0 || c == 0 {
        return;
    }
    for (yr, vr) in y[..rows * l * c].chunks_exact_mut(l * c).zip(v.chunks_exact(c)) {
        for row in yr.chunks_exact_mut(c) {
            for (o, &b) in row.iter_mut().zip(vr) {
                *o += b;
            }
        }
    }
}

/// Backward of [`channel_bias_fwd`] to the bias, accumulated: `dv[r, c] += Σ_l dy[r, l, c]`,
/// adding l = 0, 1, … in increasing order into `dv` (the gradient to y is dy itself).
///
/// * `dy`: (rows, L, C); `dv`: (rows, C), accumulated into.
pub fn channel_bias_bwd(dy: &[f32], dv: &mut [f32], rows: usize, l: usize, c: usize) {
    assert!(dy.len() >= rows * l * c && dv.len() >= rows * c, "channel_bias_bwd: buffers too short");
    if l == 0 || c == 0 {
        return;
    }
    for (dr, vr) in dy[..rows * l * c].chunks_exact(l * c).zip(dv.chunks_exact_mut(c)) {
        for row in dr.chunks_exact(c) {
            for (o, &g) in vr.iter_mut().zip(row) {
                *o += g;
            }
        }
    }
}
