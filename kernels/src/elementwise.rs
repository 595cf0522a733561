//! CPU twins of the layout and element-wise kernels of `kernels/cuda/elementwise.cu` that
//! [`crate::cpu`] does not already define (its SiLU twins `cpu::silu_fwd_sig`,
//! `cpu::silu_bwd_sig` and `cpu::silu_bwd_sig_acc` serve the SiLU kernels).

/// `y = a + b`, element-wise. All three: same length.
pub fn add(a: &[f32], b: &[f32], y: &mut [f32]) {
    for ((o, &p), &q) in y.iter_mut().zip(a).zip(b) {
        *o = p + q;
    }
}

/// Per row, the transposition of an (A, B) matrix: `dst[r, j, i] = src[r, i, j]`, src
/// (rows, A, B), dst (rows, B, A). Channel-major (C, L) → channels-last (L, C) is A = C, B = L.
pub fn transpose_rows(src: &[f32], dst: &mut [f32], rows: usize, a: usize, b: usize) {
    let per = a * b;
    for r in 0..rows {
        let (s, d) = (&src[r * per..(r + 1) * per], &mut dst[r * per..(r + 1) * per]);
        for i in 0..a {
            for j in 0..b {
                d[j * a + i] = s[i * b + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_twice_is_the_identity_and_moves_the_right_element() {
        let (rows, a, b) = (3, 4, 5);
        let src: Vec<f32> = (0..rows * a * b).map(|i| i as f32).collect();
        let (mut t, mut back) = (vec![0.0; src.len()], vec![0.0; src.len()]);
        transpose_rows(&src, &mut t, rows, a, b);
        transpose_rows(&t, &mut back, rows, b, a);
        assert_eq!(back, src);
        // Row 2, (i, j) = (1, 3): src at 2·20 + 1·5 + 3, dst at 2·20 + 3·4 + 1.
        assert_eq!(t[40 + 12 + 1], src[40 + 5 + 3]);
        let mut y = vec![0.0; 3];
        add(&[1.0, 2.0, 3.0], &[0.5, -2.0, 1.0], &mut y);
        assert_eq!(y, [1.5, 0.0, 4.0]);
    }
}
