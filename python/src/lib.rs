//! # tinyscore-python
//!
//! The extension module `tinyscore._native` behind the Python package `tinyscore` (`python/`):
//! the engine's network, samplers, denoisers and likelihood on flat little-endian f32 buffers, the
//! converter, and checkpoint reading and writing. The Python side (`python/tinyscore/`) turns
//! numpy arrays into those buffers and back and holds the documented API; this crate adds no
//! numerics of its own: every result comes from `tinyscore-tools` and `tinyscore-train`, the code
//! the `tinyscore` command runs, so the package returns the command's bits.
//!
//! No panic crosses into Python: every input error is a typed exception of `tinyscore.errors`
//! carrying the engine's error name ([`error`]), long calls release the GIL and report progress
//! ([`progress`]).
#![deny(missing_docs)]

pub mod checkpoint;
pub mod error;
pub mod model;
pub mod progress;

use pyo3::prelude::*;

/// The module `tinyscore._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::NativeModel>()?;
    m.add_function(wrap_pyfunction!(checkpoint::convert, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::write_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::read_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::param_shapes, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::conv_param_shapes, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::frequencies, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::dataset, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::process_table, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::marginal, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint::evaluate, m)?)?;
    m.add("MAX_EPS_BATCH", model::MAX_EPS_BATCH)?;
    Ok(())
}

/// f32 values from little-endian bytes (`numpy.float32` `tobytes()` on every platform numpy
/// supports here; the Python side passes `<f4` arrays).
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
