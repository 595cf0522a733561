//! Launchers of `kernels/cuda/elementwise.cu`: the SiLU that no GEMM epilogue absorbs, its
//! backward from the kept σ, a zero fill, a two-operand add and the per-row transposition
//! between channel-major and channels-last. Each names its twin.

use cudarc::driver::PushKernelArg;

use super::{done, linear_cfg, DPtr, Gpu, GpuError};

impl Gpu {
    /// `y = silu(x)`, `sig = σ(x)`, n elements. Twin: [`crate::cpu::silu_fwd_sig`].
    pub fn silu_fwd_sig(&self, x: DPtr, y: DPtr, sig: DPtr, n: usize) -> Result<(), GpuError> {
        if n == 0 {
            return Ok(());
        }
        let len = n as i64;
        let mut l = self.stream.launch_builder(&self.f.silu_fwd_sig);
        l.arg(&x.0).arg(&y.0).arg(&sig.0).arg(&len);
        // SAFETY: reads n f32 of x, writes n of y and sig.
        done(unsafe { l.launch(linear_cfg(n)) })
    }

    /// `dx = dy·silu'(x)` from the kept σ, or `dx += …` with `accumulate`, n elements. Twins:
    /// [`crate::cpu::silu_bwd_sig`], [`crate::cpu::silu_bwd_sig_acc`].
    #[allow(clippy::too_many_arguments)]
    pub fn silu_bwd_sig(
        &self,
        x: DPtr,
        sig: DPtr,
        dy: DPtr,
        dx: DPtr,
        n: usize,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        if n == 0 {
            return Ok(());
        }
        let (len, acc) = (n as i64, accumulate as i32);
        let mut l = self.stream.launch_builder(&self.f.silu_bwd_sig);
        l.arg(&x.0).arg(&sig.0).arg(&dy.0).arg(&dx.0).arg(&len).arg(&acc);
        // SAFETY: reads n f32 of x, sig, dy (and dx when accumulating), writes n of dx.
        done(unsafe { l.launch(linear_cfg(n)) })
    }

    /// `y = 0`, n elements (twin: `fill(0.0)`).
    pub fn fill_zero(&self, y: DPtr, n: usize) -> Result<(), GpuError> {
        if n == 0 {
            return Ok(());
        }
        let len = n as i64;
        let mut l = self.stream.launch_builder(&self.f.fill_zero);
        l.arg(&y.0).arg(&len);
        // SAFETY: writes n f32 of y.
        done(unsafe { l.launch(linear_cfg(n)) })
    }

    /// `y = a + b`, n elements (y may be a or b). Twin: [`crate::elementwise::add`].
    pub fn add2(&self, a: DPtr, b: DPtr, y: DPtr, n: usize) -> Result<(), GpuError> {
        if n == 0 {
            return Ok(());
        }
        let len = n as i64;
        let mut l = self.stream.launch_builder(&self.f.add2);
        l.arg(&a.0).arg(&b.0).arg(&y.0).arg(&len);
        // SAFETY: reads n f32 of a and b, writes n of y (element i only after reading element i).
        done(unsafe { l.launch(linear_cfg(n)) })
    }

    /// Per row `dst[r, j, i] = src[r, i, j]`: src (rows, a, b), dst (rows, b, a), not
    /// overlapping. Twin: [`crate::elementwise::transpose_rows`].
    pub fn transpose_rows(
        &self,
        src: DPtr,
        dst: DPtr,
        rows: usize,
        a: usize,
        b: usize,
    ) -> Result<(), GpuError> {
        let n = rows * a * b;
        if n == 0 {
            return Ok(());
        }
        if a > i32::MAX as usize || b > i32::MAX as usize {
            return Err(GpuError::Unsupported(format!("transpose_rows: ({a}, {b}) too large")));
        }
        let (len, a32, b32) = (n as i64, a as i32, b as i32);
        let mut l = self.stream.launch_builder(&self.f.transpose_rows);
        l.arg(&src.0).arg(&dst.0).arg(&len).arg(&a32).arg(&b32);
        // SAFETY: reads and writes rows·a·b f32 of src and dst.
        done(unsafe { l.launch(linear_cfg(n)) })
    }
}
