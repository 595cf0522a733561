//! What an int8 layer does with its int32 dot products: add the bias, requantize by the
//! layer's fixed-point (multiplier, shift), saturate, add the residual, look up SiLU
//! ([`epilogue`], the definition, one vector at a time; [`epilogue_tile`], the same values for a
//! tile of vectors with the Cortex-M4's high-word form [`HighRequant`] chosen once per layer,
//! [`LayerForm`]; [`epilogue_vectors`], the same for vectors side by side, the integer
//! convolution's). The AVX2 twin is `quant/x86.rs`, the DSP one `quant/dsp.rs`.

#[cfg(tinyscore_dsp_tile)]
use super::dsp;
use super::scheme::{lut, requantize, residual_index, sat_i16, sat_i8, SHIFT_MAX, SHIFT_MIN};

/// What an int8 layer does with its requantized dot products ([`epilogue`]).
#[derive(Debug)]
pub enum Epilogue<'b> {
    /// `out[s][r] = sat_i16(requantize(acc + bias))`: the input layer; then its SiLU.
    ToI16 {
        /// (n, stride) the residual stream.
        out: &'b mut [i16],
        /// The next layer's input, silu(h).
        silu: Silu<'b>,
    },
    /// `out[s][r] = lut(table, sat_i8(requantize(acc + bias + add[r])))`: a block's first
    /// layer (`add`: the time embedding in the accumulator's scale) and its SiLU table.
    Table {
        /// (rows,) added to every vector's dot products.
        add: &'b [i32],
        /// The 256-entry table.
        table: &'b [u8],
        /// (n, stride) the int8 output.
        out: &'b mut [i8],
    },
    /// `h[s][r] = sat_i16(requantize(h, mr, nr).saturating_add(requantize(acc + bias)))`: a
    /// block's second layer and the residual connection; then its SiLU.
    Residual {
        /// The next layer's input, silu(h).
        silu: Silu<'b>,
        /// The residual's multiplier.
        mr: i32,
        /// The residual's shift.
        nr: u32,
        /// (n, stride) the residual stream, read and written.
        h: &'b mut [i16],
    },
}

impl Epilogue<'_> {
    /// What a block's first layer adds to its accumulators (`None` for the other kinds).
    pub fn add(&self) -> Option<&[i32]> {
        match self {
            Self::Table { add, .. } => Some(add),
            _ => None,
        }
    }
}

/// The SiLU of the residual stream an [`Epilogue`] applies to each value `h` it writes:
/// `out[s][r] = lut(table, residual_index(h))`, the input of the next layer.
#[derive(Debug)]
pub struct Silu<'b> {
    /// The 256-entry table of silu(h_b).
    pub table: &'b [u8],
    /// (n, stride) its int8 output.
    pub out: &'b mut [i8],
}

/// Row `r`'s (bias, multiplier, shift) from a layer's little-endian int32 triples.
///
/// # Panics
/// If `rq` holds fewer than `r + 1` triples (a caller bug).
#[inline]
pub fn triple(rq: &[u8], r: usize) -> [i32; 3] {
    core::array::from_fn(|k| {
        let b = &rq[12 * r + 4 * k..12 * r + 4 * k + 4];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    })
}

/// The epilogue of an int8 layer, for rows `rows` of `n` vectors: `acc[s·so + r]` are the dot
/// products, `rq` holds the layer's (bias, multiplier, shift) per row as little-endian int32
/// triples (`act.requant`, `docs/format.md`), and output `s` starts at `s·stride`. This is the
/// definition; `x86::requant_layer` is its eight-lane twin.
///
/// # Panics
/// If a slice is shorter than those indices need (a caller bug, not an input error).
pub fn epilogue(
    rq: &[u8],
    acc: &[i32],
    so: usize,
    n: usize,
    rows: core::ops::Range<usize>,
    stride: usize,
    e: &mut Epilogue<'_>,
) {
    for r in rows {
        let [bias, mul, shift] = triple(rq, r);
        let shift = shift as u32;
        for s in 0..n {
            let (a, o) = (acc[s * so + r], s * stride + r);
            match e {
                Epilogue::ToI16 { out, silu } => {
                    let v = sat_i16(requantize(a + bias, mul, shift));
                    out[o] = v;
                    silu.out[o] = lut(silu.table, residual_index(v));
                }
                Epilogue::Table { add, table, out } => {
                    out[o] = lut(table, sat_i8(requantize(a + bias + add[r], mul, shift)));
                }
                Epilogue::Residual { mr, nr, h, silu } => {
                    let branch = requantize(a + bias, mul, shift);
                    let residual = requantize(h[o] as i32, *mr, *nr);
                    let v = sat_i16(residual.saturating_add(branch));
                    h[o] = v;
                    silu.out[o] = lut(silu.table, residual_index(v));
                }
            }
        }
    }
}

/// [`requantize`] for accumulators of bounded magnitude as one high-word multiply, the form
/// the Cortex-M4 epilogue uses ([`epilogue_tile`]).
///
/// With `k = max(0, 33 − n)` and `s = n + k − 32 ≥ 1`:
/// `⌊(a·m + 2^(n−1)) / 2^n⌋ = ⌊(⌊(a·2^k)·m / 2^32⌋ + 2^(s−1)) / 2^s⌋`, exactly: `2^(n+k−1)` is a
/// multiple of 2^32, so taking the high word first loses nothing. It holds when `a·2^k` fits
/// an i32 (checked against a bound on `|a|` when `k > 0`; any `a` when `n ≥ 33`), and then
/// `|a·2^k·m| ≤ 2^62`: the result needs no saturation. On the Cortex-M4 it is `LSL`, `SMMLA`
/// (the high word of the product plus the rounding term) and `ASR`, against an `SMULL`, 64-bit
/// add, shift and clamp for [`requantize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HighRequant {
    mul: i32,
    /// k: the left shift of the accumulator.
    pre: u32,
    /// s: the right shift of the high word.
    shift: u32,
    /// 2^(s−1).
    round: i32,
}

impl HighRequant {
    /// The form of `requantize(·, mul, shift)` for every accumulator `|a| ≤ bound`, or `None`
    /// where it does not hold (`shift` is clamped to 1..=62 as [`requantize`] clamps it).
    #[inline]
    pub fn new(mul: i32, shift: u32, bound: u32) -> Option<Self> {
        let n = shift.clamp(SHIFT_MIN, SHIFT_MAX);
        let pre = 33u32.saturating_sub(n);
        // With k = 0 any i32 will do (even i32::MIN: |a·m| ≤ 2^62 still).
        if pre > 0 && (pre >= 31 || bound > (i32::MAX as u32) >> pre) {
            return None;
        }
        let s = n + pre - 32;
        Some(Self { mul, pre, shift: s, round: 1 << (s - 1) })
    }

    /// `requantize(a, mul, shift)` for `|a| ≤ bound` (another `a` gives an unspecified value,
    /// never a panic).
    #[inline(always)]
    pub fn apply(self, a: i32) -> i32 {
        let high = (((a << self.pre) as i64 * self.mul as i64) >> 32) as i32;
        high.wrapping_add(self.round) >> self.shift
    }
}

/// What an int8 layer does with its requantized dot products, for the network's tile buffers
/// (vector `s`'s values in row `s` of an `[[T; H]]`): [`Epilogue`]'s three cases, the same
/// definitions; [`TileEpilogue::flat`] gives the [`Epilogue`].
#[derive(Debug)]
pub enum TileEpilogue<'b, const H: usize> {
    /// [`Epilogue::ToI16`]: `out = sat_i16(requantize(acc + bias))`, `silu = lut(table, …)`.
    ToI16 {
        /// (n, H) the residual stream.
        out: &'b mut [[i16; H]],
        /// The 256-entry table of silu(h).
        table: &'b [u8],
        /// (n, H) silu(h).
        silu: &'b mut [[i8; H]],
    },
    /// [`Epilogue::Table`]: `out = lut(table, sat_i8(requantize(acc + bias + add[r])))`.
    Table {
        /// (rows,) added to every vector's dot products.
        add: &'b [i32],
        /// The 256-entry table.
        table: &'b [u8],
        /// (n, H) the int8 output.
        out: &'b mut [[i8; H]],
    },
    /// [`Epilogue::Residual`]: `h = sat_i16(requantize(h, mr, nr) ⊕ requantize(acc + bias))`
    /// (⊕ saturating), `silu = lut(table, residual_index(h))`.
    Residual {
        /// The residual's multiplier.
        mr: i32,
        /// The residual's shift.
        nr: u32,
        /// (n, H) the residual stream, read and written.
        h: &'b mut [[i16; H]],
        /// The 256-entry table of silu(h).
        table: &'b [u8],
        /// (n, H) silu(h).
        silu: &'b mut [[i8; H]],
    },
}

impl<'b, const H: usize> TileEpilogue<'b, H> {
    /// What a block's first layer adds to its accumulators (`None` for the other kinds).
    pub fn add(&self) -> Option<&[i32]> {
        match self {
            Self::Table { add, .. } => Some(add),
            _ => None,
        }
    }

    /// The same epilogue over flat slices (stride H), for [`epilogue`] and its AVX2 twin.
    pub fn flat(self) -> Epilogue<'b> {
        match self {
            Self::ToI16 { out, table, silu } => Epilogue::ToI16 {
                out: out.as_flattened_mut(),
                silu: Silu { table, out: silu.as_flattened_mut() },
            },
            Self::Table { add, table, out } => Epilogue::Table { add, table, out: out.as_flattened_mut() },
            Self::Residual { mr, nr, h, table, silu } => Epilogue::Residual {
                mr,
                nr,
                h: h.as_flattened_mut(),
                silu: Silu { table, out: silu.as_flattened_mut() },
            },
        }
    }
}

/// Vectors [`epilogue_tile`] requantizes per pass over a layer's rows (then 4, then 1): the
/// per-row work (reading the row's triple, forming its requantization) is shared by this many
/// vectors.
const EPILOGUE_GROUP: usize = 8;

/// [`epilogue`] for rows `0..rows` of the `n` vectors of a tile (`acc[s][r]`, outputs in the
/// same places), written for the Cortex-M4, in two passes. First the requantization, in place
/// in `acc`, row by row for groups of 8 (or 4) vectors (a row's constants are read once per
/// group): a [`HighRequant`] (`LSL`, `SMMLA`, `ASR`) wherever it holds for every accumulator
/// of the layer — with one pre-shift for the whole layer when one fits all its rows, else
/// chosen row by row, and [`requantize`] itself for a row where no form holds. `form` is
/// [`LayerForm::new`] of the same `rq`, `rows` and `add`, with `acc_max` bounding `|acc|`
/// (`cols·2^14` for `cols` int8 × int8 products); it is found once per layer, or once per call
/// of a batch. Then the rest of the kind's epilogue (saturation, tables, the residual add with
/// its requantization chosen once per layer), vector by vector with the layer's constants
/// only: on `thumbv7em` targets (unless built for size) in assembly (`quant/dsp.rs`). The same
/// values as [`epilogue`] (unit tests below, and on the M4 `firmware-example/examples/
/// kernels.rs`); `acc` is left holding the requantized values. An accumulator beyond
/// `acc_max` gives an unspecified value, never a panic.
///
/// # Panics
/// If `rq` holds fewer than `rows` triples, a table fewer than 256 entries, or `add` fewer
/// than `rows` values (caller bugs).
pub fn epilogue_tile<const H: usize>(
    rq: &[u8],
    acc: &mut [[i32; H]],
    rows: usize,
    form: LayerForm,
    e: TileEpilogue<'_, H>,
) {
    let rows = rows.min(H);
    let rq = &rq[..12 * rows];
    let add = e.add().map(|add| &add[..rows]);
    match form.pre {
        Some(pre) => requantize_rows(rq, add, OnePre(pre), acc),
        None => requantize_rows(rq, add, EachRow(form.acc_max), acc),
    }
    let acc = &*acc;
    match e {
        TileEpilogue::ToI16 { out, table, silu } => {
            let table = table256(table);
            for ((a, h), o) in acc.iter().zip(out).zip(silu) {
                to_i16_vector(&a[..rows], table, &mut h[..rows], &mut o[..rows]);
            }
        }
        TileEpilogue::Table { table, out, .. } => {
            let table = table256(table);
            for (a, o) in acc.iter().zip(out) {
                table_vector(&a[..rows], table, &mut o[..rows]);
            }
        }
        TileEpilogue::Residual { mr, nr, h, table, silu } => {
            let res = ResidualForm::new(mr, nr);
            let table = table256(table);
            for ((a, h), o) in acc.iter().zip(h).zip(silu) {
                residual_vector(&a[..rows], res, table, &mut h[..rows], &mut o[..rows]);
            }
        }
    }
}

/// [`epilogue_tile`] for `n` vectors of `rows` values side by side (`acc[s·rows + r]`, the
/// outputs of `e` in the same places: [`epilogue`] with `so = stride = rows`, all rows), in
/// the same two passes: [`requantize_vectors`] then [`finish_vectors`]. The integer
/// convolution's epilogue on the Cortex-M4/M7 (`net/int8_conv.rs`: a call's output positions
/// are its vectors). The same values as [`epilogue`] (unit tests below, and on the M4
/// `firmware-example/examples/kernels.rs`); `acc` is left holding the requantized values.
///
/// # Panics
/// If `rq` holds fewer than `rows` triples, a table fewer than 256 entries, `add` fewer than
/// `rows` values, or an output of `e` fewer than `acc.len()` values (caller bugs).
pub fn epilogue_vectors(rq: &[u8], acc: &mut [i32], rows: usize, form: LayerForm, e: &mut Epilogue<'_>) {
    requantize_vectors(rq, acc, rows, e.add(), form);
    finish_vectors(acc, rows, e);
}

/// The first pass of [`epilogue_vectors`]: `acc[s·rows + r] = requantize(acc[s·rows + r] + c_r,
/// m_r, n_r)` (`c_r` = the row's bias, plus `add[r]`) for the `acc.len() / rows` whole vectors,
/// row by row, each row's form chosen once for all the vectors as [`epilogue_tile`] chooses it
/// (`form`: [`LayerForm::new`] of the same `rq`, `rows` and `add`).
///
/// # Panics
/// If `rq` holds fewer than `rows` triples or `add` fewer than `rows` values.
pub fn requantize_vectors(rq: &[u8], acc: &mut [i32], rows: usize, add: Option<&[i32]>, form: LayerForm) {
    if rows == 0 {
        return;
    }
    let rq = &rq[..12 * rows];
    let add = add.map(|add| &add[..rows]);
    match form.pre {
        Some(pre) => requantize_flat(rq, add, OnePre(pre), acc, rows),
        None => requantize_flat(rq, add, EachRow(form.acc_max), acc, rows),
    }
}

/// The second pass of [`epilogue_vectors`] on the requantized values `q` (`q.len() / rows`
/// whole vectors of `rows`): the rest of `e`'s kind (saturation, tables, the residual add),
/// vector by vector, with `e`'s outputs at the same places as `q`'s values. On `thumbv7em`
/// targets (unless built for size) in assembly, as [`epilogue_tile`]'s.
///
/// # Panics
/// If a table holds fewer than 256 entries or an output fewer than `q.len()` values.
pub fn finish_vectors(q: &[i32], rows: usize, e: &mut Epilogue<'_>) {
    if rows == 0 {
        return;
    }
    let q = &q[..q.len() / rows * rows];
    let n = q.len();
    match e {
        Epilogue::ToI16 { out, silu } => {
            let table = table256(silu.table);
            let vs = out[..n].chunks_exact_mut(rows).zip(silu.out[..n].chunks_exact_mut(rows));
            for (a, (h, o)) in q.chunks_exact(rows).zip(vs) {
                to_i16_vector(a, table, h, o);
            }
        }
        Epilogue::Table { table, out, .. } => {
            let table = table256(table);
            for (a, o) in q.chunks_exact(rows).zip(out[..n].chunks_exact_mut(rows)) {
                table_vector(a, table, o);
            }
        }
        Epilogue::Residual { mr, nr, h, silu } => {
            let res = ResidualForm::new(*mr, *nr);
            let table = table256(silu.table);
            let vs = h[..n].chunks_exact_mut(rows).zip(silu.out[..n].chunks_exact_mut(rows));
            for (a, (h, o)) in q.chunks_exact(rows).zip(vs) {
                residual_vector(a, res, table, h, o);
            }
        }
    }
}

/// `h = sat_i16(a)`, `o = lut(table, residual_index(h))` for one vector (equal lengths).
#[inline(always)]
fn to_i16_vector(a: &[i32], table: &[u8; 256], h: &mut [i16], o: &mut [i8]) {
    #[cfg(tinyscore_dsp_tile)]
    if dsp::to_i16_out(a, table, h, o) {
        return;
    }
    for ((&a, h), o) in a.iter().zip(h).zip(o) {
        let v = sat_i16(a);
        *h = v;
        *o = lut256(table, residual_index(v));
    }
}

/// `o = lut(table, sat_i8(a))` for one vector (equal lengths).
#[inline(always)]
fn table_vector(a: &[i32], table: &[u8; 256], o: &mut [i8]) {
    #[cfg(tinyscore_dsp_tile)]
    if dsp::table_out(a, table, o) {
        return;
    }
    for (&a, o) in a.iter().zip(o) {
        *o = lut256(table, sat_i8(a));
    }
}

/// How a layer's residual stream is requantized (`requantize(h, mr, nr)`), chosen once per
/// layer: on the DSP targets in assembly for 17 ≤ nr ≤ 46, else a [`HighRequant`] where it
/// holds for every int16 (|h| ≤ 2^15), else [`requantize`] itself.
#[derive(Clone, Copy)]
struct ResidualForm {
    mr: i32,
    nr: u32,
    high: Option<HighRequant>,
}

impl ResidualForm {
    #[inline(always)]
    fn new(mr: i32, nr: u32) -> Self {
        Self { mr, nr, high: HighRequant::new(mr, nr, 1 << 15) }
    }
}

/// `h = sat_i16(res(h) ⊕ a)` (⊕ saturating), `o = lut(table, residual_index(h))` for one
/// vector (`a`: the requantized branch; equal lengths).
#[inline(always)]
fn residual_vector(a: &[i32], res: ResidualForm, table: &[u8; 256], h: &mut [i16], o: &mut [i8]) {
    #[cfg(tinyscore_dsp_tile)]
    if dsp::residual_out(a, res.mr, res.nr, table, h, o) {
        return;
    }
    match res.high {
        Some(q) => residual_add(a, h, table, o, move |v| q.apply(v)),
        None => residual_add(a, h, table, o, move |v| requantize(v, res.mr, res.nr)),
    }
}

/// `h = sat_i16(res(h) ⊕ a)`, `o = lut(table, residual_index(h))` for one vector (`a`: the
/// requantized branch).
#[inline(always)]
fn residual_add(a: &[i32], h: &mut [i16], table: &[u8; 256], o: &mut [i8], res: impl Fn(i32) -> i32) {
    for ((&a, h), o) in a.iter().zip(h).zip(o) {
        let v = sat_i16(res(*h as i32).saturating_add(a));
        *h = v;
        *o = lut256(table, residual_index(v));
    }
}

/// How [`epilogue_tile`] requantizes a layer's rows, found from its triples once
/// ([`LayerForm::new`]): the pre-shift `k` with which every row's requantization of
/// `acc + c_r` (`c_r` = bias, plus `add[r]`) is a [`HighRequant`] form for all
/// `|acc| ≤ acc_max`, if there is one for the whole layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerForm {
    pre: Option<u32>,
    acc_max: u32,
}

impl LayerForm {
    /// The form of the layer with triples `rq` (rows `0..rows`), `add` (a block's first layer:
    /// its time embedding) and accumulators `|acc| ≤ acc_max`: `k = max(0, 33 − min n)`,
    /// provided every shift is in 1..=62 (no clamping needed), `max n + k − 32 ≤ 30` and
    /// `(acc_max + max |c_r|)·2^k` fits an i32; else each row finds its own.
    ///
    /// # Panics
    /// If `rq` holds fewer than `rows` triples or `add` fewer than `rows` values.
    pub fn new(rq: &[u8], rows: usize, add: Option<&[i32]>, acc_max: u32) -> Self {
        let rq = &rq[..12 * rows];
        let (mut n_min, mut n_max, mut c_max) = (i32::MAX, i32::MIN, 0u32);
        for (r, t) in rq.chunks_exact(12).enumerate() {
            let [bias, _, n] = triple(t, 0);
            let c = match add {
                Some(add) => bias.wrapping_add(add[r]),
                None => bias,
            };
            n_min = n_min.min(n);
            n_max = n_max.max(n);
            c_max = c_max.max(c.unsigned_abs());
        }
        let pre = if rows == 0 {
            Some(0)
        } else if n_min < SHIFT_MIN as i32 || n_max > SHIFT_MAX as i32 {
            // A shift out of 1..=62 (which `requantize` clamps): row by row.
            None
        } else {
            let pre = 33u32.saturating_sub(n_min as u32);
            let fits = pre == 0 || (pre < 31 && acc_max.saturating_add(c_max) <= (i32::MAX as u32) >> pre);
            (n_max as u32 + pre <= 62 && fits).then_some(pre)
        };
        Self { pre, acc_max }
    }

    /// Whether one pre-shift serves every row.
    pub fn is_uniform(&self) -> bool {
        self.pre.is_some()
    }
}

/// How the rows of a layer get their [`HighRequant`] form.
trait RowForms: Copy {
    /// The form of `requantize(acc + c, mul, shift)`, or `None` where it does not hold.
    fn form(self, mul: i32, shift: i32, c: i32) -> Option<HighRequant>;
}

/// One pre-shift for every row ([`LayerForm::new`] checked that it holds for all of them).
#[derive(Clone, Copy)]
struct OnePre(u32);

impl RowForms for OnePre {
    #[inline(always)]
    fn form(self, mul: i32, shift: i32, _c: i32) -> Option<HighRequant> {
        let s = shift as u32 + self.0 - 32;
        Some(HighRequant { mul, pre: self.0, shift: s, round: 1 << (s - 1) })
    }
}

/// Each row's own form ([`HighRequant::new`]) for accumulators `|acc| ≤ self.0`.
#[derive(Clone, Copy)]
struct EachRow(u32);

impl RowForms for EachRow {
    #[inline(always)]
    fn form(self, mul: i32, shift: i32, c: i32) -> Option<HighRequant> {
        HighRequant::new(mul, shift as u32, self.0.saturating_add(c.unsigned_abs()))
    }
}

/// `acc[s][r] = requantize(acc[s][r] + c_r, m_r, n_r)` for every vector and row (`c_r` = the
/// row's bias, plus `add[r]`), in groups of [`EPILOGUE_GROUP`] vectors, then 4, then one by one.
#[inline(always)]
fn requantize_rows<const H: usize>(
    rq: &[u8],
    add: Option<&[i32]>,
    forms: impl RowForms,
    acc: &mut [[i32; H]],
) {
    let mut groups = acc.chunks_exact_mut(EPILOGUE_GROUP);
    for g in &mut groups {
        let g: &mut [[i32; H]; EPILOGUE_GROUP] = g.try_into().expect("a group");
        requantize_group(rq, add, forms, g);
    }
    let mut quads = groups.into_remainder().chunks_exact_mut(4);
    for g in &mut quads {
        let g: &mut [[i32; H]; 4] = g.try_into().expect("four vectors");
        requantize_group(rq, add, forms, g);
    }
    for v in quads.into_remainder() {
        requantize_group::<1, H>(rq, add, forms, core::array::from_mut(v));
    }
}

/// [`requantize_rows`] for `S` vectors.
#[inline(always)]
fn requantize_group<const S: usize, const H: usize>(
    rq: &[u8],
    add: Option<&[i32]>,
    forms: impl RowForms,
    acc: &mut [[i32; H]; S],
) {
    for (r, t) in rq.chunks_exact(12).enumerate().take(H) {
        let [bias, mul, shift] = triple(t, 0);
        // (acc + bias) + add in one addition: the same wrapping sum.
        let c = match add {
            Some(add) => bias.wrapping_add(add[r]),
            None => bias,
        };
        match forms.form(mul, shift, c) {
            Some(q) => (0..S).for_each(|s| acc[s][r] = q.apply(acc[s][r].wrapping_add(c))),
            None => (0..S).for_each(|s| acc[s][r] = requantize(acc[s][r].wrapping_add(c), mul, shift as u32)),
        }
    }
}

/// [`requantize_rows`] for the whole vectors of `rows` values side by side in `acc`
/// ([`requantize_vectors`]): row by row, each row's constants read and its form chosen once
/// for all the vectors (a loop of `LDR`, `ADD`, `LSL`, `SMMLA`, `ASR`, `STR` down the row;
/// `chunks_exact` and `get`, which compile to fewer instructions than a `step_by`).
#[inline(always)]
fn requantize_flat(rq: &[u8], add: Option<&[i32]>, forms: impl RowForms, acc: &mut [i32], rows: usize) {
    for (r, t) in rq.chunks_exact(12).enumerate().take(rows) {
        let [bias, mul, shift] = triple(t, 0);
        // (acc + bias) + add in one addition: the same wrapping sum.
        let c = match add {
            Some(add) => bias.wrapping_add(add[r]),
            None => bias,
        };
        let row = acc.chunks_exact_mut(rows).filter_map(|v| v.get_mut(r));
        match forms.form(mul, shift, c) {
            Some(q) => row.for_each(|a| *a = q.apply(a.wrapping_add(c))),
            None => row.for_each(|a| *a = requantize(a.wrapping_add(c), mul, shift as u32)),
        }
    }
}

/// A 256-entry table as an array, so that an index of a `u8` needs no bounds check.
#[inline(always)]
fn table256(t: &[u8]) -> &[u8; 256] {
    t[..256].try_into().expect("256 entries")
}

/// [`lut`] on a 256-entry array (`index` of an i8; as an i32 the index arithmetic can fold
/// into the load's address).
#[inline(always)]
fn lut256(table: &[u8; 256], index: i8) -> i8 {
    table[(index as i32 + 128) as usize] as i8
}
