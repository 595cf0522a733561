//! SiLU (swish) and its first two derivatives: the one scalar definition that the engine's f32
//! path, its int8 SiLU tables (`quant::silu_lut_entry`), the eight-lane twin
//! ([`crate::vmath::silu8_into`]), the CPU trainer and the CUDA kernels' CPU twins share
//! (`docs/scorenet.md`). A leaf module, so that `quant` and `vmath` can use it without importing
//! the network that imports them.

/// SiLU (swish): x·sigmoid(x) = x / (1 + e^(−x)), with `libm::expf`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + libm::expf(-x))
}

/// d silu / dx = σ(x)·(1 + x·(1 − σ(x))), for the trainer's backward pass.
#[inline]
pub fn silu_grad(x: f32) -> f32 {
    let s = 1.0 / (1.0 + libm::expf(-x));
    s * (1.0 + x * (1.0 - s))
}

/// d² silu / dx² = σ(x)·(1 − σ(x))·(2 + x·(1 − 2σ(x))), for the gradient of a loss that contains
/// the network's Jacobian (sliced score matching backpropagates through silu').
#[inline]
pub fn silu_grad2(x: f32) -> f32 {
    let s = 1.0 / (1.0 + libm::expf(-x));
    s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silu_and_its_gradient() {
        for x in [-8.0f32, -1.5, 0.0, 0.3, 4.0] {
            let want = x as f64 / (1.0 + (-x as f64).exp());
            assert!((silu(x) as f64 - want).abs() < 1e-6);
            let h = 1e-3f64;
            let s = |v: f64| v / (1.0 + (-v).exp());
            let fd = (s(x as f64 + h) - s(x as f64 - h)) / (2.0 * h);
            assert!((silu_grad(x) as f64 - fd).abs() < 1e-4);
            let g = |v: f64| {
                let sg = 1.0 / (1.0 + (-v).exp());
                sg * (1.0 + v * (1.0 - sg))
            };
            let fd2 = (g(x as f64 + h) - g(x as f64 - h)) / (2.0 * h);
            assert!((silu_grad2(x) as f64 - fd2).abs() < 1e-4, "silu'' at {x}");
        }
    }
}
