//! Layout of a `w8a8` file's activation tensors for `B` blocks, `H` hidden and `D` dimensions,
//! one row per timestep group (see `docs/format.md` §6): which column of `act.scales`,
//! `act.requant` and `act.lut` holds what. Part of the file format (`format::layout` re-exports
//! it); the converter writes by it, and the integer path's plan ([`super::plan`]) gives each
//! fused layer its columns by it — the ordinal `b` of a scale or table is the layer's place
//! among its kind along the plan, and the `act.requant` columns follow the plan's order — so
//! the parser validates and the integer network reads by the same columns. A leaf module.

/// Columns of `act.scales`: `s_x, s_h[0..=B], s_a[0..=B], s_u[0..B], s_v[0..B]`.
pub fn scale_cols(blocks: usize) -> usize {
    4 * blocks + 3
}
/// Column of s_x, the input's int8 scale.
pub fn s_x() -> usize {
    0
}
/// Column of `s_h[b]`, the int16 residual stream's scale after block b (b = 0: input layer).
pub fn s_h(b: usize) -> usize {
    1 + b
}
/// Column of `s_a[b]`, the scale of silu(h_b) in int8.
pub fn s_a(blocks: usize, b: usize) -> usize {
    2 + blocks + b
}
/// Column of `s_u[b]`, block b's pre-activation (index of its SiLU table).
pub fn s_u(blocks: usize, b: usize) -> usize {
    3 + 2 * blocks + b
}
/// Column of `s_v[b]`, the scale of silu(u_b) in int8.
pub fn s_v(blocks: usize, b: usize) -> usize {
    3 + 3 * blocks + b
}

/// Columns of `act.requant`: (bias, multiplier, shift) per row of the input layer, then per
/// block the triples of w1 and w2 and the residual's (multiplier, shift), then the output
/// layer's biases.
pub fn requant_cols(dim: usize, hidden: usize, blocks: usize) -> usize {
    3 * hidden + blocks * (6 * hidden + 2) + dim
}
/// Column of the input layer's triples.
pub fn input(_hidden: usize) -> usize {
    0
}
/// Column of block b's w1 triples.
pub fn w1(hidden: usize, b: usize) -> usize {
    3 * hidden + b * (6 * hidden + 2)
}
/// Column of block b's w2 triples.
pub fn w2(hidden: usize, b: usize) -> usize {
    w1(hidden, b) + 3 * hidden
}
/// Column of block b's residual (multiplier, shift).
pub fn residual(hidden: usize, b: usize) -> usize {
    w1(hidden, b) + 6 * hidden
}
/// Column of the output layer's biases.
pub fn output(hidden: usize, blocks: usize) -> usize {
    3 * hidden + blocks * (6 * hidden + 2)
}

/// Tables of `act.lut` per group: silu(h_b) for b = 0..=B, then silu(u_b) for b < B.
pub fn lut_count(blocks: usize) -> usize {
    2 * blocks + 1
}
/// Table of silu(h_b).
pub fn lut_h(b: usize) -> usize {
    b
}
/// Table of silu(u_b).
pub fn lut_u(blocks: usize, b: usize) -> usize {
    blocks + 1 + b
}
