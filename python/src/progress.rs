//! Long calls: the work runs on a thread of its own with the GIL released, while the calling
//! thread waits for it and, every [`POLL`], takes the GIL to call the progress callback with
//! (done, total) and to check for signals (Ctrl-C). A callback that raises, or a signal, sets the
//! cancel flag that the work checks between rows, and its exception is what the call raises.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use indicatif::ProgressBar;
use pyo3::prelude::*;

use crate::error::{Error, Result};

/// How often the waiting thread reports progress and checks for signals.
pub const POLL: Duration = Duration::from_millis(100);

/// What the work sees: the counter it ticks and the flag it must honour.
pub struct Ticker<'a> {
    /// Ticked once per finished unit (sample, window, point, row).
    pub pb: &'a ProgressBar,
    /// Set when the caller asked to stop.
    pub cancel: &'a AtomicBool,
}

impl Ticker<'_> {
    /// An error if the caller asked to stop (checked by the work between units).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            anyhow::bail!("cancelled");
        }
        Ok(())
    }
}

/// Runs `work` with the GIL released and reports its progress to `callback(done, total)`.
/// Without a callback the work runs on the calling thread (no thread, no polling: `Model.eps`
/// pays nothing for this); signals are then seen when the call returns.
pub fn run<T: Send>(
    py: Python<'_>,
    total: u64,
    callback: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Ticker<'_>) -> Result<T> + Send,
) -> PyResult<T> {
    let pb = ProgressBar::hidden();
    pb.set_length(total);
    let cancel = AtomicBool::new(false);
    let ticker = Ticker { pb: &pb, cancel: &cancel };
    let Some(callback) = callback else {
        let r = py.detach(|| work(&ticker));
        return r.map_err(|e| e.into_py(py));
    };
    let callback: Py<PyAny> = callback.clone().unbind();
    let (outcome, raised) = py.detach(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let ticker = &ticker;
            let handle = scope.spawn(move || {
                let r = work(ticker);
                let _ = done_tx.send(());
                r
            });
            let mut raised: Option<PyErr> = None;
            let mut last = None;
            loop {
                let finished = !matches!(done_rx.recv_timeout(POLL), Err(mpsc::RecvTimeoutError::Timeout));
                if raised.is_none() {
                    let done = if finished { total } else { pb.position().min(total) };
                    let r = Python::attach(|py| -> PyResult<()> {
                        py.check_signals()?;
                        if last != Some(done) {
                            callback.call1(py, (done, total))?;
                        }
                        Ok(())
                    });
                    last = Some(done);
                    if let Err(e) = r {
                        cancel.store(true, Ordering::Relaxed);
                        raised = Some(e);
                    }
                }
                if finished {
                    break;
                }
            }
            let outcome = handle
                .join()
                .unwrap_or_else(|_| Err(Error::new("TinyscoreError", "Panic", "a worker thread panicked")));
            (outcome, raised)
        })
    });
    if let Some(e) = raised {
        return Err(e);
    }
    outcome.map_err(|e| e.into_py(py))
}
