//! # tinyscore-tools
//!
//! The `tinyscore` command line: train a ScoreNet on the CPU, convert its checkpoint into a `.tsm`
//! model file, inspect it, sample from it with the no_std engine, and measure the samples. Each
//! subcommand is one `run_*` function in [`cmd`]; [`tsm`] is the model-file writer.
#![deny(missing_docs)]

pub mod calib;
pub mod cli;
pub mod cmd;
pub mod output;
pub mod plot;
pub mod simd;
pub mod tsm;
