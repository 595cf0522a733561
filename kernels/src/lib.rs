//! # tinyscore-kernels
//!
//! The training kernels of tinyscore. Every kernel has a CPU twin in [`cpu`] that *defines* its
//! meaning: a formula in its doc comment, shape comments on its buffers, and a test against a
//! naive scalar loop. The CPU trainer (`tinyscore-train`) runs these twins directly; the CUDA
//! sources (see `cuda/README.md`) will be checked against them. [`conv`] holds the twins of the
//! 1-D convolutional network's layers (Conv1d, upsampling, the time-embedding channel bias) on
//! channels-last (rows, L, C) activations.
//!
//! Conventions: matrices are row-major, a weight `W` of a layer with `in` inputs and `out`
//! outputs has shape `(out, in)` (as in PyTorch's `Linear` and the engine's model file), and a
//! batch of activations has shape `(rows, features)`. Every reduction runs in a fixed order, so
//! a kernel gives the same bits run after run.
#![deny(missing_docs)]

pub mod conv;
pub mod cpu;
pub mod cuda;
pub mod elementwise;
pub mod fused;
