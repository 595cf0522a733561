//! The integer walk of a convolutional plan (`docs/quantization.md`, "Convolutions"): every
//! `conv1d` step of the graph's [`Int8Plan`] on the portable int8 kernel
//! ([`quant::conv::conv_i8_from`]), its epilogue by the dense layers' rule
//! ([`quant::epilogue`]: each output position's C_out accumulators are one vector; on the
//! Cortex-M4/M7 its twin [`quant::epilogue_vectors`] for a call's positions at once, with the
//! requantization's form found once per step). No buffer of its own: the arena after its time
//! region holds the plan's integer data region, each int8 value and int16 stream at its place
//! ([`Int8Plan::data_words`], placed by liveness: a step's outputs never share its input's
//! bytes), then the integer scratch
//! ([`Int8Plan::scratch_words`]): one call's accumulators and the kernels' columns. A
//! convolution of more than [`quant::plan::ACC_TILE`] output positions runs in tiles
//! ([`quant::plan::ConvIo::tiling`], or fewer longer ones where the plan's scratch, sized for
//! its largest step, has room: [`quant::plan::ConvIo::tiling_within`]), each a call of the
//! kernel on a window of the input read in place ([`quant::plan::ConvIo::call`]), accumulated
//! and requantized before the next; the input stays intact until the last tile has read it.

use super::int8::Params;
use crate::format::Model;
use crate::kernels::Kernels;
use crate::quant::{
    self,
    conv::Source,
    plan::{ConvSource, Kind},
    Epilogue, Int8Plan, Silu,
};

/// One convolution's accumulators ([`quant::conv::conv_i8_with`]): the dot products of each tile
/// of gathered columns by the AVX2 or NEON int8 matmul where `k` has it (a tile of positions is
/// a batch of vectors); on the Cortex-M DSP targets with the tile kernels the packed form
/// ([`quant::conv_packed`]: no gather, the output positions as rows of the four-vector `SMLAD`
/// kernel) where it applies (dilation 1); else the portable [`quant::dot_i8`]; exact integers,
/// the same bits. The walk uses the output positions `out` only: the packed form computes just
/// those ([`quant::conv_packed::conv_i8_packed_rows`]), the others all of them.
#[cfg_attr(not(target_arch = "arm"), inline(always))]
#[allow(clippy::too_many_arguments)]
fn conv(
    k: Kernels,
    s: &quant::conv::ConvShape,
    w: &[u8],
    x: Source<'_>,
    upsample: bool,
    out: core::ops::Range<usize>,
    col: &mut [i8],
    acc: &mut [i32],
) -> Result<(), quant::conv::ConvSizeError> {
    #[cfg(not(tinyscore_dsp_tile))]
    let _ = &out;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let (ck, co) = (s.cols(), s.acc_len() / s.l_out().max(1));
    // The gathering kernels take tiles of CONV_TILE positions; `col` may be longer (the DSP
    // form's packed operands).
    let tile = (quant::conv::CONV_TILE * s.cols()).min(col.len());
    match k {
        #[cfg(target_arch = "x86_64")]
        Kernels::Avx2(tok) => {
            quant::conv::conv_i8_with(s, w, x, upsample, &mut col[..tile], acc, |w, cols, n, acc| {
                quant::x86::matmul_i8(tok, w, co, ck, cols, ck, n, acc, co)
            })
        }
        #[cfg(target_arch = "aarch64")]
        Kernels::Neon(tok) => {
            quant::conv::conv_i8_with(s, w, x, upsample, &mut col[..tile], acc, |w, cols, n, acc| {
                quant::neon::matmul_i8(tok, w, co, ck, cols, ck, n, acc, co)
            })
        }
        _ => {
            #[cfg(tinyscore_dsp_tile)]
            match quant::conv_packed::conv_i8_packed_rows(
                s,
                w,
                x,
                upsample,
                out,
                col,
                acc,
                quant::conv_rows_dsp,
            ) {
                Ok(true) => return Ok(()),
                Err(e) => return Err(e),
                Ok(false) => {}
            }
            quant::conv::conv_i8_from(s, w, x, upsample, &mut col[..tile], acc)
        }
    }
}

/// The table of a stream step whose stream no SiLU reads: its output goes to a sink.
const NO_TABLE: [u8; 256] = [0; 256];

/// The [`Epilogue`] of a stream step: `Residual` (its residual's multiplier and shift) or
/// `ToI16`, into the stream `h` and its SiLU `silu` by `table`.
fn stream_epilogue<'b>(
    residual: bool,
    mr: i32,
    nr: u32,
    table: &'b [u8],
    h: &'b mut [i16],
    silu: &'b mut [i8],
) -> Epilogue<'b> {
    let silu = Silu { table, out: silu };
    if residual {
        Epilogue::Residual { silu, mr, nr, h }
    } else {
        Epilogue::ToI16 { out: h, silu }
    }
}

/// The network's caller-side buffers: `x8` (≥ D) the quantized input, `tq` (≥ C_out) a step's
/// time embedding in its accumulators' scale, `sink16` and `sink8` (≥ C_out) one position of
/// a stream or SiLU no later layer reads.
pub(super) struct ConvBufs<'b> {
    pub x8: &'b mut [i8],
    pub tq: &'b mut [i32],
    pub sink16: &'b mut [i16],
    pub sink8: &'b mut [i8],
}

/// Bytes `r` of `data` viewed as int16 (`None` if out of range; never misaligned: blocks start
/// at whole words).
fn i16s(data: &mut [u8], r: core::ops::Range<usize>) -> Option<&mut [i16]> {
    bytemuck::try_cast_slice_mut(data.get_mut(r)?).ok()
}

/// Two disjoint byte ranges of `data`, mutably.
fn two(
    data: &mut [u8],
    a: core::ops::Range<usize>,
    b: core::ops::Range<usize>,
) -> Option<(&mut [u8], &mut [u8])> {
    if a.end <= b.start {
        let (lo, hi) = data.split_at_mut(b.start);
        Some((lo.get_mut(a)?, hi.get_mut(..b.end - b.start)?))
    } else if b.end <= a.start {
        let (y, x) = two(data, b, a)?;
        Some((x, y))
    } else {
        None
    }
}

/// ε̂ of one input `x` (channel-major, D values) at time `t` into `eps` (channel-major), on the
/// integer path of a convolutional plan; `arena` the network's arena with its time region
/// computed (the time branch, f32), then the plan's integer data region and scratch; `places`
/// the plan's [`quant::plan::Places`]. Sizes are
/// the plan's (checked when the file was parsed and the network built); a slice too short ends
/// the walk early instead of panicking.
#[allow(clippy::too_many_arguments)]
pub(super) fn int8_conv(
    m: &Model<'_>,
    plan: &Int8Plan,
    places: &[[u32; 2]],
    arena: &mut [f32],
    x: &[f32],
    t: f32,
    eps: &mut [f32],
    b: ConvBufs<'_>,
    k: Kernels,
) {
    let g = m.graph();
    let r = g.regions();
    let p = Params::new(m, t);
    let Some((time, rest)) = arena.split_at_mut_checked(r.time) else { return };
    let Some((data, scratch)) = rest.split_at_mut_checked(plan.data_words()) else { return };
    let data: &mut [u8] = bytemuck::cast_slice_mut(data);
    let Some(scratch) = scratch.get_mut(..plan.scratch_words()) else { return };
    // x8 = round(x / s_x), channels-last                                    (L, C) int8
    let (c, l) = (g.input().channels, g.input().length);
    let s_x = p.scale(quant::layout::s_x());
    let (Some(x), Some(x8)) = (x.get(..c * l), b.x8.get_mut(..c * l)) else { return };
    for (pos, row) in x8.chunks_exact_mut(c.max(1)).enumerate() {
        for (ch, q) in row.iter_mut().enumerate() {
            *q = quant::quantize_i8(x[ch * l + pos], s_x);
        }
    }
    let at = |a: u32| a as usize;
    for step in plan.steps() {
        let Some(io) = plan.conv_io(step, g, places) else { return };
        let rows = step.rows();
        let Some(shape) = io.shape(rows) else { return };
        let w = p.weight(step);
        let l_out = shape.l_out();
        // Calls of ACC_TILE positions, or fewer longer ones where the scratch has room.
        let tiling = io.tiling_within(rows, scratch.len());
        // Scratch: a call's accumulators, the kernels' columns (`ConvIo::col_words`).
        let cols = io.col_words(&tiling, rows);
        let Some((acc, col)) = scratch.split_at_mut_checked(tiling.call * rows) else { return };
        let Some(col) = col.get_mut(..cols) else { return };
        let acc: &mut [i32] = bytemuck::cast_slice_mut(acc);
        let col: &mut [i8] = bytemuck::cast_slice_mut(col);
        let (c_in, u) = (io.c_in as usize, usize::from(io.upsample));
        let table = |lut: u16| if lut == quant::plan::NO_LUT { &NO_TABLE[..] } else { p.table(lut as usize) };
        // What the epilogue needs once per step: the time embedding; the residual into the
        // stream's place, once, before anything is written (the places are disjoint).
        if let Kind::Table { .. } = step.kind {
            let Some(tq) = b.tq.get_mut(..rows) else { return };
            super::int8::quantize_temb(&p, step, time, tq);
        }
        // On the Cortex-M4/M7 (unless built for size, as the tile kernels) the epilogue's fast
        // twin for a call's positions at once, its requantization's form found once per step.
        let form = match step.kind {
            Kind::Output => None,
            _ if !cfg!(tinyscore_dsp_tile) => None,
            Kind::Table { .. } => Some(quant::LayerForm::new(
                p.triples(step),
                rows,
                b.tq.get(..rows),
                super::int8::acc_max(shape.cols()),
            )),
            _ => Some(quant::LayerForm::new(p.triples(step), rows, None, super::int8::acc_max(shape.cols()))),
        };
        if let (Kind::Residual { .. }, Some(o), Some(r)) = (step.kind, io.out_at, io.res_at) {
            let len = 2 * rows * l_out;
            if o != r {
                if at(r).max(at(o)) + len > data.len() {
                    return;
                }
                data.copy_within(at(r)..at(r) + len, at(o));
            }
        }
        // The source stays where it is while the tiles run: no output is placed on it.
        let mut p0 = 0;
        while p0 < l_out {
            // The call's window of the input, in place: source positions from..to.
            let call = io.call(&tiling, p0);
            let (n, from, to) = (call.n, (call.start >> u) * c_in, ((call.start + call.len) >> u) * c_in);
            // acc = W ⊛ window: the convolution's outputs p0..p0 + n            (n, C_out) int32
            {
                let source = match io.source {
                    ConvSource::X => match x8.get(from..to) {
                        Some(v) => Source::I8(v),
                        None => return,
                    },
                    ConvSource::I8(a) => {
                        let Some(v) = data.get(at(a) + from..at(a) + to) else { return };
                        Source::I8(bytemuck::cast_slice(v))
                    }
                    ConvSource::I16(a) => {
                        let Some(v) = data.get(at(a) + 2 * from..at(a) + 2 * to) else { return };
                        let Ok(v) = bytemuck::try_cast_slice::<u8, i16>(v) else { return };
                        Source::I16(v)
                    }
                };
                let Some(shape) = io.call_shape(call.len, rows) else { return };
                let out = call.skip..call.skip + n;
                if n == 0 || conv(k, &shape, w.data(), source, io.upsample, out, col, acc).is_err() {
                    return;
                }
            }
            let Some(acc) = acc.get_mut(call.skip * rows..(call.skip + n) * rows) else { return };
            match step.kind {
                // ε̂[co, l] = (acc + b) · s_w[co]·s_in                           (C, L) f32
                Kind::Output => {
                    let s_in = p.scale(step.in_scale()) * step.in_factor();
                    let Some(eps) = eps.get_mut(..rows * l_out) else { return };
                    for (j, a) in acc.chunks_exact(rows).enumerate() {
                        for (co, &v) in a.iter().enumerate() {
                            eps[co * l_out + p0 + j] =
                                (v + p.rq_at(step.rq() + co)) as f32 * (w.scale(co) * s_in);
                        }
                    }
                }
                // silu(u) by table, u = requant(acc + b + temb)                 (n, C_out) int8
                Kind::Table { lut, .. } => {
                    let Some(tq) = b.tq.get(..rows) else { return };
                    let Some(s) = io.silu_at else { return };
                    let o = at(s) + p0 * rows;
                    let Some(out) = data.get_mut(o..o + n * rows) else { return };
                    let out: &mut [i8] = bytemuck::cast_slice_mut(out);
                    let mut e = Epilogue::Table { add: tq, table: table(lut), out };
                    match form {
                        Some(f) => quant::epilogue_vectors(p.triples(step), acc, rows, f, &mut e),
                        None => quant::epilogue(p.triples(step), acc, rows, n, 0..rows, rows, &mut e),
                    }
                }
                // h = requant(acc + b) [+ requant(res)], then silu(h) by table if a SiLU reads it
                Kind::ToI16 { lut } | Kind::Residual { lut } => {
                    let residual = matches!(step.kind, Kind::Residual { .. });
                    let c = step.rq() + 3 * rows;
                    let (mr, nr) = if residual { (p.rq_at(c), p.rq_at(c + 1) as u32) } else { (0, 0) };
                    let tab = table(lut);
                    let epilogue = |e: &mut Epilogue<'_>, a: &[i32]| match form {
                        Some(_) => quant::finish_vectors(a, rows, e),
                        None => quant::epilogue(p.triples(step), a, rows, 1, 0..rows, rows, e),
                    };
                    if let Some(f) = form {
                        quant::requantize_vectors(p.triples(step), acc, rows, None, f);
                        // The stream and its SiLU at their places: the call's positions at once.
                        if let (Some(o), Some(s)) = (io.out_at, io.silu_at) {
                            let (ho, so) = (2 * p0 * rows, p0 * rows);
                            let Some((h, sl)) = two(
                                data,
                                at(o) + ho..at(o) + ho + 2 * n * rows,
                                at(s) + so..at(s) + so + n * rows,
                            ) else {
                                return;
                            };
                            let Ok(h) = bytemuck::try_cast_slice_mut(h) else { return };
                            let sl = bytemuck::cast_slice_mut(sl);
                            epilogue(&mut stream_epilogue(residual, mr, nr, tab, h, sl), acc);
                            p0 += n;
                            continue;
                        }
                    }
                    for (j, a) in acc.chunks_exact(rows).enumerate() {
                        let pos = p0 + j;
                        let (ho, so) = (2 * pos * rows, pos * rows);
                        // This position's stream and SiLU outputs: at their places, or the sinks.
                        let (h, silu): (&mut [i16], &mut [i8]) = match (io.out_at, io.silu_at) {
                            (Some(o), Some(s)) => {
                                let Some((h, sl)) = two(
                                    data,
                                    at(o) + ho..at(o) + ho + 2 * rows,
                                    at(s) + so..at(s) + so + rows,
                                ) else {
                                    return;
                                };
                                let Ok(h) = bytemuck::try_cast_slice_mut(h) else { return };
                                (h, bytemuck::cast_slice_mut(sl))
                            }
                            (Some(o), None) => {
                                let Some(h) = i16s(data, at(o) + ho..at(o) + ho + 2 * rows) else { return };
                                let Some(sink) = b.sink8.get_mut(..rows) else { return };
                                (h, sink)
                            }
                            (None, Some(s)) => {
                                let Some(sink) = b.sink16.get_mut(..rows) else { return };
                                if let Some(r) = io.res_at {
                                    let Some(res) = i16s(data, at(r) + ho..at(r) + ho + 2 * rows) else {
                                        return;
                                    };
                                    sink.copy_from_slice(res);
                                }
                                let Some(sl) = data.get_mut(at(s) + so..at(s) + so + rows) else { return };
                                (sink, bytemuck::cast_slice_mut(sl))
                            }
                            (None, None) => return,
                        };
                        epilogue(&mut stream_epilogue(residual, mr, nr, tab, h, silu), a);
                    }
                }
            }
            p0 += n;
        }
    }
}
