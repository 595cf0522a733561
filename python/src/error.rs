//! Errors as Python exceptions: each is an instance of a class of `tinyscore.errors` (defined in
//! Python, so the stubs and docs live with the package) built from `(message, kind)`, where
//! `kind` is the engine's or the checkpoint reader's variant name (`BadMagic`, `WrongShape`, …)
//! and the message is what the `tinyscore` command would print after `error: `.

use pyo3::prelude::*;

/// An error on its way to Python: the exception class, the variant name, the message.
#[derive(Debug)]
pub struct Error {
    /// The class's name in `tinyscore.errors`.
    pub class: &'static str,
    /// The engine's (or reader's) error variant, or a short name for errors of this crate.
    pub kind: String,
    /// The one-line message.
    pub message: String,
}

/// The first identifier of a `Debug` rendering: an enum variant's name.
pub fn variant<E: std::fmt::Debug>(e: &E) -> String {
    let text = format!("{e:?}");
    text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

impl Error {
    /// An error of `class` with the variant name of `e` and `message`.
    pub fn typed<E: std::fmt::Debug>(class: &'static str, e: &E, message: impl Into<String>) -> Self {
        Self { class, kind: variant(e), message: message.into() }
    }

    /// An error of `class` with an explicit `kind`.
    pub fn new(class: &'static str, kind: &str, message: impl Into<String>) -> Self {
        Self { class, kind: kind.into(), message: message.into() }
    }

    /// A bad argument (`tinyscore.errors.ArgumentError`, also a `ValueError`).
    pub fn argument(message: impl Into<String>) -> Self {
        Self::new("ArgumentError", "Argument", message)
    }

    /// An error of the tools' code (anyhow), classified by what it wraps: the engine's capacity
    /// error, a sampler or denoiser error, else `class`.
    pub fn from_anyhow(class: &'static str, e: &anyhow::Error) -> Self {
        let message = tinyscore_tools::cli::error_line(e);
        for cause in e.chain() {
            if let Some(c) = cause.downcast_ref::<tinyscore_engine::net::CapacityError>() {
                return Self::typed("CapacityError", c, message);
            }
            if let Some(c) = cause.downcast_ref::<tinyscore_engine::format::FormatError>() {
                return Self::typed("ModelFileError", c, message);
            }
            if let Some(c) = cause.downcast_ref::<tinyscore_train::checkpoint::CheckpointError>() {
                return Self::typed("CheckpointError", c, message);
            }
        }
        Self::new(class, class.trim_end_matches("Error"), message)
    }

    /// The Python exception.
    pub fn into_py(self, py: Python<'_>) -> PyErr {
        let made = (|| -> PyResult<PyErr> {
            let class = py.import("tinyscore.errors")?.getattr(self.class)?;
            Ok(PyErr::from_value(class.call1((self.message.clone(), self.kind.clone()))?))
        })();
        made.unwrap_or_else(|e| e)
    }
}

/// A result whose error becomes a Python exception.
pub type Result<T> = std::result::Result<T, Error>;

/// Converts a [`Result`] into a `PyResult`.
pub fn to_py<T>(py: Python<'_>, r: Result<T>) -> PyResult<T> {
    r.map_err(|e| e.into_py(py))
}
