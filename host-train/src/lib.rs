//! # tinyscore-train
//!
//! Training of tinyscore's score networks (ScoreNet v1, `docs/scorenet.md`) on the CPU:
//!
//! * [`data`]: built-in toys and real data sets, CSV / `.npy` files, normalisation;
//! * [`train`]: denoising score matching with ε-prediction (or sliced score matching,
//!   `train::Loss`), Adam, EMA, gradient clipping, on both cores with results that do not depend
//!   on the thread count;
//! * [`likelihood`]: log-likelihoods through the probability-flow ODE;
//! * [`config`]: what defines a run ([`config::TrainConfig`], the objective and its weighting);
//! * [`checkpoint`]: `.safetensors` checkpoints that resume bit-exactly;
//! * [`metrics`]: the sliced Wasserstein distance used to judge samples;
//! * [`cuda`]: the same training step on an NVIDIA GPU, with the CUDA kernels of
//!   `tinyscore-kernels` (`tinyscore train --device cuda`).
//!
//! The network math, the noise schedule, the noise itself and the tensor names come from
//! `tinyscore-engine`, and every kernel from `tinyscore-kernels`, so what is trained here is
//! exactly what the engine runs. The library never prints; the caller times [`train::Trainer::step`].
//!
//! ```
//! use tinyscore_train::{data, train::{TrainConfig, Trainer}};
//! let moons = data::load("moons", 1000, 0)?;
//! let cfg = TrainConfig { hidden: 32, blocks: 1, batch: 64, ..TrainConfig::default() };
//! let mut trainer = Trainer::new(cfg, &moons, "moons")?;
//! let loss = trainer.step();
//! assert!(loss.is_finite() && trainer.steps_done() == 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod cuda;
pub mod data;
mod graph_net;
pub mod likelihood;
pub mod metrics;
#[cfg(test)]
mod scorenet;
pub mod train;
