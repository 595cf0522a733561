//! Property tests of the integer path: each kernel against an i128 oracle or a one-line
//! reference of itself.

use super::*;

/// A small deterministic generator for the property tests (no dev-dependency needed in a
/// no_std crate's unit tests).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn requantize_oracle(acc: i32, m: i32, n: u32) -> i32 {
    // Exact: floor((acc·m + 2^(n−1)) / 2^n) in i128, with a true floor division.
    let num = acc as i128 * m as i128 + (1i128 << (n - 1));
    let q = num.div_euclid(1i128 << n);
    q.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

#[test]
fn requantize_matches_the_oracle() {
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    let edges = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX, 1 << 20, -(1 << 20)];
    for i in 0..200_000 {
        let acc =
            if i % 10 == 0 { edges[i / 10 % edges.len()] } else { r.range(-(1 << 31), (1 << 31) - 1) as i32 };
        let m = r.range(MULT_MIN as i64, i32::MAX as i64) as i32;
        let n = r.range(SHIFT_MIN as i64, SHIFT_MAX as i64) as u32;
        assert_eq!(requantize(acc, m, n), requantize_oracle(acc, m, n), "acc {acc} m {m} n {n}");
    }
    // Ties round up: 3·2^30 / 2^31 = 1.5 → 2 and −1.5 → −1.
    assert_eq!(requantize(3, MULT_MIN, 31), 2);
    assert_eq!(requantize(-3, MULT_MIN, 31), -1);
}

#[test]
fn the_high_word_form_equals_requantize_and_the_oracle() {
    let mut r = Rng(0x5EED_F0A4);
    let ms = [MULT_MIN, i32::MAX, MULT_MIN + 1, 1_500_000_000];
    let ns = [1u32, 2, 16, 17, 30, 31, 32, 33, 34, 40, 61, 62];
    let bounds = [1u32 << 31, (1 << 31) - 1, 1 << 30, 1 << 23, (1 << 23) + 12_345, 1 << 15, 1];
    let (mut high, mut general) = (0u32, 0u32);
    for case in 0..40_000usize {
        let m = if case % 3 == 0 {
            ms[case / 3 % ms.len()]
        } else {
            r.range(MULT_MIN as i64, i32::MAX as i64) as i32
        };
        let n = if case % 2 == 0 { ns[case / 2 % ns.len()] } else { r.range(1, 62) as u32 };
        let bound = if case % 5 < 3 { bounds[case % bounds.len()] } else { r.range(1, 1 << 31) as u32 };
        let Some(q) = HighRequant::new(m, n, bound) else {
            // Refused only where a·2^(33−n) could leave i32.
            assert!(n < 33 && (bound as u64) << (33 - n) > i32::MAX as u64, "m {m} n {n} bound {bound}");
            general += 1;
            continue;
        };
        high += 1;
        let b = bound as i64;
        let edges = [-b, b.min(i32::MAX as i64), 0, -1, 1, -b + 1, b - 1];
        for k in 0..24 {
            let a = if k < edges.len() { edges[k] } else { r.range(-b, b.min(i32::MAX as i64)) };
            let a = a as i32;
            let want = requantize_oracle(a, m, n);
            assert_eq!(requantize(a, m, n), want);
            assert_eq!(q.apply(a), want, "a {a} m {m} n {n} bound {bound}");
        }
    }
    assert!(high > 10_000 && general > 1_000, "both cases exercised: {high} {general}");
    // Any accumulator once n ≥ 33 (i32::MIN included), and the largest shift.
    for (m, n) in [(MULT_MIN, 33), (i32::MAX, 33), (i32::MAX, 62), (MULT_MIN, 62)] {
        let q = HighRequant::new(m, n, 1 << 31).expect("n ≥ 33 needs no bound");
        for a in [i32::MIN, i32::MIN + 1, i32::MAX, -1, 0, 1] {
            assert_eq!(q.apply(a), requantize_oracle(a, m, n), "a {a} m {m} n {n}");
        }
    }
    // Shifts out of range are clamped as requantize clamps them.
    for n in [63u32, 100] {
        let q = HighRequant::new(MULT_MIN, n, 1 << 31).unwrap_or_else(|| panic!("n {n}"));
        assert_eq!(q.apply(i32::MIN), requantize(i32::MIN, MULT_MIN, n));
    }
    assert_eq!(HighRequant::new(MULT_MIN, 0, 1), None, "n = 0 is n = 1: a·2^32 never fits");
}

/// Rows of a layer in [`epilogue_tile_equals_epilogue`].
const TILE_H: usize = 24;

#[test]
fn epilogue_tile_equals_epilogue() {
    let mut r = Rng(0x0E91_0605);
    let (mut one_pre, mut each_row) = (0u32, 0u32);
    for case in 0..1_500usize {
        let n = case % 10;
        let rows = r.range(0, TILE_H as i64) as usize;
        let cols = r.range(1, 512) as u32;
        let acc_max = cols * (1 << 14);
        let m = acc_max as i64;
        // Shifts around the boundaries of the forms, multipliers over their range; biases
        // small (the usual) or up to ±2^30 (the largest a file may hold).
        // Per case, shifts all in a narrow range (a layer with one pre-shift: `LayerForm`) or
        // some anywhere in 1..=62 (forms row by row), biases small or some large.
        let (wide_shifts, large_biases) = (case % 3 == 0, case % 5 == 0);
        let mut rq = [0u8; 12 * TILE_H];
        for t in rq.chunks_exact_mut(12) {
            let bias = match r.range(0, 3) {
                0 if large_biases => r.range(-(1 << 30), 1 << 30),
                _ => r.range(-100_000, 100_000),
            } as i32;
            let mul = r.range(MULT_MIN as i64, i32::MAX as i64) as i32;
            let shift = match r.range(0, 3) {
                0 if wide_shifts => r.range(1, 62),
                _ => r.range(28, 44),
            } as i32;
            for (k, v) in [bias, mul, shift].into_iter().enumerate() {
                t[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        let mut acc = [[0i32; TILE_H]; 9];
        for (k, v) in acc.as_flattened_mut().iter_mut().enumerate() {
            *v = match k % 7 {
                0 => -m,
                1 => m,
                _ => r.range(-m, m),
            } as i32;
        }
        let table: [u8; 256] = core::array::from_fn(|_| r.next() as u8);
        let add: [i32; TILE_H] = core::array::from_fn(|_| r.range(-(1 << 29), 1 << 29) as i32);
        let h0: [[i16; TILE_H]; 9] = core::array::from_fn(|_| core::array::from_fn(|_| r.next() as i16));
        let (mr, nr) = match case % 4 {
            // The residual's form holds (n ≥ 17), or not.
            0 => (r.range(MULT_MIN as i64, i32::MAX as i64) as i32, r.range(1, 16) as u32),
            _ => (r.range(MULT_MIN as i64, i32::MAX as i64) as i32, r.range(17, 62) as u32),
        };
        let acc = &acc[..n];
        match LayerForm::new(&rq, rows, None, acc_max).is_uniform() {
            true => one_pre += 1,
            false => each_row += 1,
        }
        let mut want = ([[0i16; TILE_H]; 9], [[0i8; TILE_H]; 9]);
        let mut got = ([[1i16; TILE_H]; 9], [[1i8; TILE_H]; 9]);
        for kind in 0..3 {
            want.0 = h0;
            got.0 = h0;
            let make = |kind: usize,
                        h: &mut [[i16; TILE_H]],
                        o: &mut [[i8; TILE_H]],
                        f: &mut dyn FnMut(TileEpilogue<'_, TILE_H>)| {
                f(match kind {
                    0 => TileEpilogue::ToI16 { out: h, table: &table, silu: o },
                    1 => TileEpilogue::Table { add: &add, table: &table, out: o },
                    _ => TileEpilogue::Residual { mr, nr, h, table: &table, silu: o },
                })
            };
            make(kind, &mut want.0[..n], &mut want.1[..n], &mut |e| {
                epilogue(&rq, acc.as_flattened(), TILE_H, n, 0..rows, TILE_H, &mut e.flat())
            });
            let mut acc2 = [[0i32; TILE_H]; 9];
            acc2[..n].copy_from_slice(acc);
            make(kind, &mut got.0[..n], &mut got.1[..n], &mut |e| {
                let form = LayerForm::new(&rq, rows, e.add(), acc_max);
                epilogue_tile(&rq, &mut acc2[..n], rows, form, e)
            });
            assert_eq!(got.0, want.0, "case {case} kind {kind}: residual stream");
            for (g, w) in got.1[..n].iter().zip(&want.1[..n]) {
                assert_eq!(g[..rows], w[..rows], "case {case} kind {kind}: int8 output");
            }
            // The convolution's twin: the n vectors of `rows` values side by side, in one call
            // (even cases) or requantized at once and finished vector by vector (odd cases).
            let (hf, of) = epilogue_vectors_of(
                &rq,
                acc,
                rows,
                acc_max,
                kind,
                &h0[..n],
                (&add, &table, mr, nr),
                case % 2 == 1,
            );
            for s in 0..n {
                assert_eq!(
                    hf[s * rows..(s + 1) * rows],
                    want.0[s][..rows],
                    "case {case} kind {kind}: flat stream"
                );
                assert_eq!(
                    of[s * rows..(s + 1) * rows],
                    want.1[s][..rows],
                    "case {case} kind {kind}: flat int8"
                );
            }
        }
    }
    assert!(one_pre > 300 && each_row > 300, "both ways exercised: {one_pre} {each_row}");
}

/// [`epilogue_vectors`] (or [`requantize_vectors`] then [`finish_vectors`] vector by vector,
/// `split`) of kind `kind` (0 `ToI16`, 1 `Table`, 2 `Residual`) on the first `rows` values of
/// the vectors `acc` laid side by side, the stream starting as `h0`'s: (stream, int8 output).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn epilogue_vectors_of(
    rq: &[u8],
    acc: &[[i32; TILE_H]],
    rows: usize,
    acc_max: u32,
    kind: usize,
    h0: &[[i16; TILE_H]],
    (add, table, mr, nr): (&[i32], &[u8], i32, u32),
    split: bool,
) -> (std::vec::Vec<i16>, std::vec::Vec<i8>) {
    let mut accf: std::vec::Vec<i32> = acc.iter().flat_map(|v| v[..rows].iter().copied()).collect();
    let mut hf: std::vec::Vec<i16> = h0.iter().flat_map(|v| v[..rows].iter().copied()).collect();
    let mut of = std::vec![1i8; accf.len()];
    let ctx = (kind, add, table, mr, nr);
    fn make<'b>(
        (kind, add, table, mr, nr): (usize, &'b [i32], &'b [u8], i32, u32),
        h: &'b mut [i16],
        o: &'b mut [i8],
    ) -> Epilogue<'b> {
        match kind {
            0 => Epilogue::ToI16 { out: h, silu: Silu { table, out: o } },
            1 => Epilogue::Table { add, table, out: o },
            _ => Epilogue::Residual { mr, nr, h, silu: Silu { table, out: o } },
        }
    }
    let add = (kind == 1).then_some(add);
    let form = LayerForm::new(rq, rows, add, acc_max);
    if !split {
        epilogue_vectors(rq, &mut accf, rows, form, &mut make(ctx, &mut hf, &mut of));
    } else if rows > 0 {
        requantize_vectors(rq, &mut accf, rows, add, form);
        for ((a, h), o) in
            accf.chunks_exact(rows).zip(hf.chunks_exact_mut(rows)).zip(of.chunks_exact_mut(rows))
        {
            finish_vectors(a, rows, &mut make(ctx, h, o));
        }
    }
    (hf, of)
}

#[test]
fn multipliers_represent_their_factor() {
    let mut r = Rng(7);
    for _ in 0..10_000 {
        let real = libm::exp((r.range(-20_000, 20_000) as f64) / 1000.0);
        let (m, n) = quantize_multiplier(real).unwrap();
        assert!(m >= MULT_MIN);
        let back = m as f64 / libm::pow(2.0, n as f64);
        assert!((back / real - 1.0).abs() <= 1.0 / (1u64 << 30) as f64, "{real} -> {m} {n}");
    }
    assert_eq!(quantize_multiplier(0.5), Some((MULT_MIN, 31)));
    assert_eq!(quantize_multiplier(1.0), Some((MULT_MIN, 30)));
    assert!(quantize_multiplier(0.0).is_none());
    assert!(quantize_multiplier(f64::NAN).is_none());
    assert!(quantize_multiplier(1e12).is_none());
    assert!(quantize_multiplier(1e-12).is_none());
}

#[test]
fn dot_i8_matches_the_one_line_reference_on_random_shapes() {
    let mut r = Rng(99);
    for _ in 0..5_000 {
        let cols = r.range(0, 512) as usize;
        let w: [u8; 512] = core::array::from_fn(|_| r.range(-127, 127) as i8 as u8);
        let x: [i8; 512] = core::array::from_fn(|_| r.range(-128, 127) as i8);
        let reference: i32 = (0..cols).map(|c| (w[c] as i8) as i32 * x[c] as i32).sum();
        assert_eq!(dot_i8(&w[..cols], &x[..cols]), reference, "cols {cols}");
    }
    // The extremes of the range.
    let w = [127u8; 512];
    let x = [-128i8; 512];
    assert_eq!(dot_i8(&w, &x), 512 * 127 * -128);
}

#[test]
fn prepared_kernel_and_its_instruction_model_match_dot_i8() {
    let mut r = Rng(4242);
    let mut words = [0u32; prepared_words(512)];
    for case in 0..3_000 {
        let cols = if case < 513 { case } else { r.range(0, 512) as usize };
        // Weights over the whole byte range (a file may hold −128), activations with the
        // extremes mixed in.
        let w: [u8; 512] = core::array::from_fn(|_| match r.range(0, 9) {
            0 => 0x80,
            1 => 0x7f,
            _ => r.range(-128, 127) as i8 as u8,
        });
        let x: [i8; 512] = core::array::from_fn(|_| match r.range(0, 9) {
            0 => -128,
            1 => 127,
            _ => r.range(-128, 127) as i8,
        });
        let (w, x) = (&w[..cols], &x[..cols]);
        let want = dot_i8(w, x);
        let p = Prepared::new(x, &mut words);
        assert_eq!(p.dot(w), want, "cols {cols}");
        let n = prepared_words(cols);
        prepare_into(x, &mut words[..n]);
        let full = cols / CHUNK * CHUNK;
        assert_eq!(dot16_model(&w[..full], &words[..n]) + dot_i8(&w[full..], &x[full..]), want);
    }
    let (w, x) = ([0x80u8; 512], [-128i8; 512]);
    prepare_into(&x, &mut words);
    assert_eq!(dot16_model(&w, &words), 512 * 128 * 128);
}

#[test]
fn tile_kernels_and_their_instruction_model_match_dot_i8() {
    let mut r = Rng(777);
    let mut buf = [0u32; 4 * prepared_words(512)];
    for case in 0..1_200 {
        let cols = if case < 513 { case } else { r.range(0, 512) as usize };
        let byte = |r: &mut Rng| match r.range(0, 9) {
            0 => -128i8,
            1 => 127,
            _ => r.range(-128, 127) as i8,
        };
        let w: [u8; 512] = core::array::from_fn(|_| byte(&mut r) as u8);
        let xs: [[i8; 512]; 4] = core::array::from_fn(|_| core::array::from_fn(|_| byte(&mut r)));
        let (w, x) = (&w[..cols], |i: usize| &xs[i][..cols]);
        let want: [i32; 4] = core::array::from_fn(|i| dot_i8(w, x(i)));
        // The layout and unpacking order, instruction by instruction.
        let full = cols / CHUNK * CHUNK;
        let tail = |i: usize| dot_i8(&w[full..], &x(i)[full..]);
        let n4 = 4 * prepared_words(cols);
        prepare_tile_into([x(0), x(1), x(2), x(3)], &mut buf[..n4]);
        let m4 = dot16_tile_model::<4>(&w[..full], &buf[..n4]);
        let n2 = 2 * prepared_words(cols);
        prepare_tile_into([x(0), x(1)], &mut buf[..n2]);
        let m2 = dot16_tile_model::<2>(&w[..full], &buf[..n2]);
        prepare_tile_into([x(0)], &mut buf[..n2 / 2]);
        let m1 = dot16_tile_model::<1>(&w[..full], &buf[..n2 / 2]);
        assert_eq!(m1[0], dot16_model(&w[..full], &buf[..n2 / 2]), "S = 1 is the one-vector layout");
        for i in 0..4 {
            assert_eq!(m4[i] + tail(i), want[i], "cols {cols} vector {i} of 4");
        }
        for i in 0..2 {
            assert_eq!(m2[i] + tail(i), want[i], "cols {cols} vector {i} of 2");
        }
        // The dispatching entry points (the kernels on thumbv7em, dot_i8 here).
        assert_eq!(PreparedTile::new([x(0), x(1), x(2), x(3)], &mut buf).dots(w), want);
        assert_eq!(PreparedTile::new([x(2), x(3)], &mut buf).dots(w), [want[2], want[3]]);
        assert_eq!(PreparedTile::new([x(1), x(2), x(3)], &mut buf).dots(w), [want[1], want[2], want[3]]);
    }
    let (w, x) = ([0x80u8; 512], [-128i8; 512]);
    prepare_tile_into([&x[..], &x[..], &x[..], &x[..]], &mut buf);
    assert_eq!(dot16_tile_model::<4>(&w, &buf), [512 * 128 * 128; 4]);
}

#[test]
fn matmul_prepared_equals_dot_i8_for_any_number_of_vectors() {
    let mut r = Rng(31337);
    for case in 0..300 {
        let (rows, cols) = (r.range(0, 8) as usize, r.range(0, 80) as usize);
        let n = case % 10;
        let stride = cols + r.range(0, 5) as usize;
        let w: [u8; 8 * 85] = core::array::from_fn(|_| r.range(-128, 127) as i8 as u8);
        let xs: [[i8; 80]; 9] = core::array::from_fn(|_| core::array::from_fn(|_| r.range(-128, 127) as i8));
        let mut out = [[i32::MIN; 8]; 9];
        // Buffers from none to room for four vectors: every tile size is taken somewhere.
        let mut buf = [0u32; 4 * prepared_words(80)];
        let words = r.range(0, buf.len() as i64) as usize;
        matmul_prepared(&w, stride, rows, cols, &xs[..n], &mut out[..n], &mut buf[..words]);
        for (i, o) in out[..n].iter().enumerate() {
            for (k, &v) in o[..rows].iter().enumerate() {
                assert_eq!(v, dot_i8(&w[k * stride..k * stride + cols], &xs[i][..cols]), "case {case}");
            }
            assert!(o[rows..].iter().all(|&v| v == i32::MIN), "only `rows` rows are written");
        }
    }
}

#[test]
fn instruction_models_follow_the_arm_definitions() {
    // SXTB16: bytes 0 and 2, sign-extended; ROR #8 selects bytes 1 and 3.
    assert_eq!(sxtb16(0x80_7f_01_ff), 0x007f_ffff);
    assert_eq!(sxtb16(0x80_7f_01_ffu32.rotate_right(8)), 0xff80_0001);
    // SMLAD: acc + lo·lo + hi·hi, signed halves.
    assert_eq!(smlad(pack16(-128, 127), pack16(-128, -128), 5), 5 + 16384 - 16256);
}

#[test]
fn small_kernels_follow_their_definitions() {
    for h in i16::MIN..=i16::MAX {
        let want = ((h as f64 / 256.0) + 0.5).floor().clamp(-128.0, 127.0) as i8;
        assert_eq!(residual_index(h), want, "h {h}");
    }
    assert_eq!(quantize_i8(0.5, 1.0), 1);
    assert_eq!(quantize_i8(-0.5, 1.0), -1);
    assert_eq!(quantize_i8(1e9, 1.0), 127);
    assert_eq!(quantize_i8(f32::NAN, 1.0), 0);
    assert_eq!(time_group(0.0, 4), 0);
    assert_eq!(time_group(0.2499, 4), 0);
    assert_eq!(time_group(0.25, 4), 1);
    assert_eq!(time_group(1.0, 4), 3);
    assert_eq!(time_group(f32::NAN, 4), 0);
    let mut table = [0u8; 256];
    for (i, e) in table.iter_mut().enumerate() {
        *e = silu_lut_entry(i as i32 - 128, 0.05, 0.05) as u8;
    }
    assert_eq!(lut(&table, 0), 0);
    assert_eq!(lut(&table, 127), quantize_i8(crate::act::silu(127.0 * 0.05), 0.05));
    assert_eq!(quantize_bias(1.0, 0.25), 4);
    assert_eq!(quantize_bias(1e30, 1e-30), BIAS_MAX);
}

/// The time embedding's quantization as first written: `libm::roundf`, then the clamp.
fn quantize_temb_libm(v: f32, acc_scale: f32) -> i32 {
    let q = libm::roundf(v / acc_scale);
    if q.is_nan() {
        return 0;
    }
    q.clamp(-TEMB_MAX, TEMB_MAX) as i32
}

#[test]
fn quantize_temb_rounds_as_libm_does() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let specials = [
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        0.499_999_97,
        -0.499_999_97,
        8_388_607.5,
        -8_388_607.5,
        8_388_608.0,
        16_777_217.0,
        TEMB_MAX,
        -TEMB_MAX,
        TEMB_MAX * 2.0,
        -TEMB_MAX * 2.0,
        1e30,
        -1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE,
        1e-45,
    ];
    for &v in &specials {
        for s in [1.0, 0.5, 3e-4, 1e-30, 0.0, f32::INFINITY] {
            assert_eq!(quantize_temb(v, s), quantize_temb_libm(v, s), "v {v:e} s {s:e}");
        }
    }
    for i in 0..2_000_000u32 {
        // Any bit pattern, and values near halves and near the clamp.
        let v = match i % 3 {
            0 => f32::from_bits(r.next() as u32),
            1 => (r.range(-(1 << 24), 1 << 24) as f32) * 0.5,
            _ => r.range(-(1 << 31), (1 << 31) - 1) as f32,
        };
        let s = f32::from_bits(0x3000_0000 + (r.next() as u32 % 0x1000_0000));
        assert_eq!(quantize_temb(v, s), quantize_temb_libm(v, s), "v {v:e} s {s:e}");
        assert_eq!(quantize_temb(v, 1.0), quantize_temb_libm(v, 1.0), "v {v:e}");
    }
}
