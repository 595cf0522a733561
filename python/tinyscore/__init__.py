"""tinyscore from Python: run, sample, denoise and measure ``.tsm`` models with the engine the
firmware runs, and convert checkpoints (PyTorch interop in :mod:`tinyscore.torch`).

>>> import tinyscore
>>> model = tinyscore.Model.load("moons.tsm")
>>> x = model.sample(1000, sampler="ddim", steps=50, seed=0)     # (1000, 2) float32

Every call returns the ``tinyscore`` command's bits for the same inputs: the package runs the
command's library code (Rust, through PyO3), not a re-implementation.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from .errors import (
    ArgumentError,
    CalibrationError,
    CapacityError,
    CheckpointError,
    DataError,
    DenoiseError,
    ModelFileError,
    SamplerError,
    TinyscoreError,
)

__all__ = [
    "Model",
    "convert",
    "convert_report",
    "dataset",
    "evaluate",
    "Progress",
    "TinyscoreError",
    "ArgumentError",
    "ModelFileError",
    "CapacityError",
    "SamplerError",
    "DenoiseError",
    "CheckpointError",
    "CalibrationError",
    "DataError",
]

#: A progress callback: called with ``(done, total)`` about ten times a second from the calling
#: thread while a long call runs, and once with ``(total, total)`` at the end. If it raises, the
#: call stops and raises that exception. A ``tqdm`` bar fits with ``lambda d, t: bar.update(d - bar.n)``.
Progress = Callable[[int, int], Any]

PathOrBytes = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def _rows(a: Any, dim: int, name: str) -> Tuple[np.ndarray, bool]:
    """``a`` as a C-contiguous little-endian float32 (n, dim) array, and whether it was one row."""
    arr = np.asarray(a, dtype="<f4")
    single = arr.ndim == 1
    if single:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ArgumentError(f"{name} must have shape (n, {dim}) or ({dim},), got {np.shape(a)}", "Shape")
    return np.ascontiguousarray(arr), single


def _out(buf: bytes, n: int, dim: int, single: bool, dtype: str = "<f4") -> np.ndarray:
    out = np.frombuffer(bytearray(buf), dtype=dtype).reshape(n, dim) if dim else np.frombuffer(bytearray(buf), dtype=dtype)
    return out[0] if single else out


def _count(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ArgumentError(f"{name} must be an integer in {lo}..={hi}, got {value!r}", "Argument")
    return int(value)


class Model:
    """A ``.tsm`` model file, parsed and checked, ready to run on the host engine.

    Load with :meth:`Model.load`. A file the engine refuses raises :class:`ModelFileError`
    (``e.kind`` is the engine's ``FormatError`` variant) and never crashes the interpreter.
    Inputs are numpy arrays (any float dtype, converted to float32) of shape ``(n, D)`` or
    ``(D,)``; outputs are float32 arrays of the same shape.
    """

    __slots__ = ("_native", "name")

    def __init__(self, native: "_native.NativeModel", name: str = "<bytes>") -> None:
        self._native = native
        self.name = name

    @classmethod
    def load(cls, source: PathOrBytes) -> "Model":
        """Loads a model from a path or from the file's bytes.

        Raises :class:`ModelFileError` for bytes that are not a valid ``.tsm`` file,
        :class:`CapacityError` for a valid file larger than the host engine runs, and
        ``OSError`` for a path that cannot be read.
        """
        if isinstance(source, (bytes, bytearray, memoryview)):
            return cls(_native.NativeModel.load(bytes(source)), "<bytes>")
        path = os.fspath(source)
        with open(path, "rb") as f:
            data = f.read()
        return cls(_native.NativeModel.load(data), str(path))

    def to_bytes(self) -> bytes:
        """The model file's bytes (write them to flash, or to a ``.tsm`` file)."""
        return self._native.to_bytes()

    @property
    def dim(self) -> int:
        """D, the values per sample (C·L for a signal or an image)."""
        return self._native.dim

    @property
    def info(self) -> Dict[str, Any]:
        """The header, network, process, flash and RAM as a dict.

        Keys: ``version``, ``quant_version``, ``precision`` (``f32``/``f16``/``w8``/``w8a8``),
        ``crc32``, ``data`` (``points``/``signal``/``image``), ``dim``, ``channels``,
        ``length``, ``network`` (``scorenet-v1`` with ``hidden``, ``freqs``, ``blocks``, or
        ``graph``), ``layers``, ``graph`` (a list of the layers: ``op``, output ``channels`` and
        ``length``, ``branch`` ``time``/``data``, arena ``offset``), ``macs`` (per evaluation),
        ``parameters``, ``process`` (a dict:
        ``kind`` ``vp``/``vpsde``/``subvp``/``ve``, ``steps`` and the schedule's parameters),
        ``groups`` (w8a8 only), ``file_bytes``, ``flash_bytes``, ``activation_bytes`` (the
        file's figure) and ``ram_bytes`` (a dict: the engine's working set on a 32-bit MCU,
        ``arena``, ``network``, ``model``, ``process``, ``vectors``, ``total``).
        """
        return self._native.info()

    def report(self) -> str:
        """What ``tinyscore inspect`` prints for this file."""
        return self._native.report(self.name)

    def __repr__(self) -> str:
        i = self.info
        return f"<tinyscore.Model {self.name!r}: {i['network']} D={i['dim']} {i['precision']}, {i['file_bytes']} bytes>"

    def eps(
        self,
        x: Any,
        t: Union[float, Sequence[float], np.ndarray],
        *,
        threads: Optional[int] = None,
        progress: Optional[Progress] = None,
    ) -> np.ndarray:
        """The network's noise prediction ε̂ = ε_θ(x, t), batched.

        ``x``: normalised inputs, ``(n, D)`` or ``(D,)`` (the network's own units, as in
        ``docs/scorenet.md``; ``tinyscore bench --eval-csv`` takes the same). ``t``: one time in
        [0, 1] for all rows, or one per row. Rows that share a time run through the engine's
        batched call together (the same bits as one row at a time). The GIL is released; the
        rows are split over ``threads`` threads (default: all cores); the bits do not depend on
        the split.
        """
        dim = self.dim
        xs, single = _rows(x, dim, "x")
        n = xs.shape[0]
        ts = np.ascontiguousarray(np.asarray(t, dtype="<f4").reshape(-1))
        if ts.size not in (1, n):
            raise ArgumentError(f"t must be a scalar or have {n} values, got {ts.size}", "Shape")
        if threads is None:
            threads = os.cpu_count() or 1
        threads = _count(threads, "threads", 1, 1024)
        buf = self._native.eps(xs.tobytes(), ts.tobytes(), threads, progress)
        return _out(buf, n, dim, single)

    def sample(
        self,
        n: int,
        *,
        sampler: str = "ddpm",
        steps: Optional[int] = None,
        seed: int = 0,
        variance: Optional[str] = None,
        eta: Optional[float] = None,
        snr: Optional[float] = None,
        corrector_steps: Optional[int] = None,
        predictor: Optional[str] = None,
        langevin_step: Optional[float] = None,
        denoise_final: bool = False,
        progress: Optional[Progress] = None,
    ) -> np.ndarray:
        """Draws ``n`` samples, ``(n, D)`` float32 in the data's units.

        The same as ``tinyscore sample MODEL --n N --seed SEED --sampler S …`` with the same
        settings, bit for bit: sample i depends only on (model, seed, i, settings).
        ``sampler``: ``ddpm``, ``ddim``, ``em``, ``ode-euler``, ``ode-heun``, ``langevin`` or
        ``pc``; ``steps`` defaults to the file's N. The other settings are the command's flags
        of the same names (``variance`` ``beta``/``posterior`` for ddpm, ``eta`` for ddim,
        ``snr``, ``predictor`` (``reverse-diffusion``/``em``) and ``corrector_steps`` for pc,
        ``corrector_steps`` and ``langevin_step`` for langevin); setting one for a sampler that
        does not use it raises :class:`ArgumentError`, and a sampler that does not fit the
        file's process raises :class:`SamplerError`.
        """
        n = _count(n, "n", 1, 2**32 - 1)
        seed = _count(seed, "seed", 0, 2**64 - 1)
        flags = ["--sampler", str(sampler)]
        for name, value in [
            ("steps", steps),
            ("variance", variance),
            ("eta", eta),
            ("snr", snr),
            ("corrector-steps", corrector_steps),
            ("predictor", predictor),
            ("langevin-step", langevin_step),
        ]:
            if value is not None:
                flags += [f"--{name}", str(value)]
        if denoise_final:
            flags.append("--denoise-final")
        buf = self._native.sample(n, seed, flags, progress)
        return _out(buf, n, self.dim, False)

    def denoise(
        self,
        y: Any,
        *,
        sigma: Optional[float] = None,
        method: str = "tweedie",
        steps: int = 50,
        draws: int = 4,
        seed: int = 0,
        progress: Optional[Progress] = None,
    ) -> np.ndarray:
        """Denoises windows ``y`` (``(n, D)`` or ``(D,)``, data units), as ``tinyscore denoise``.

        ``sigma``: the noise's standard deviation in data units, or ``None`` to estimate it from
        ``y`` (the command's ``--sigma auto``: median absolute deviation of the first
        differences, pooled over all windows). ``method``: ``tweedie`` (one network evaluation)
        or ``sdedit`` (partial reverse diffusion from the matched noise level, ``steps`` steps,
        ``draws`` runs averaged; window i uses the noise of (seed, i)).
        """
        dim = self.dim
        ys, single = _rows(y, dim, "y")
        if sigma is not None:
            sigma = float(sigma)
        steps = _count(steps, "steps", 0, 2**32 - 1)
        draws = _count(draws, "draws", 0, 2**32 - 1)
        seed = _count(seed, "seed", 0, 2**64 - 1)
        buf = self._native.denoise(ys.tobytes(), sigma, str(method), steps, draws, seed, progress)
        return _out(buf, ys.shape[0], dim, single)

    def impute(
        self,
        y: Any,
        mask: Any,
        *,
        steps: int = 50,
        draws: int = 4,
        resample: int = 1,
        seed: int = 0,
        progress: Optional[Progress] = None,
    ) -> np.ndarray:
        """Fills the missing entries of ``y`` where ``mask`` is 0 (or False); entries where it
        is 1 (True) are kept bit for bit. As ``tinyscore denoise --mask``: the replacement
        method from t = 1 with ``steps`` reverse steps, ``resample`` RePaint rounds per step
        (1: plain replacement), ``draws`` runs averaged; window i uses the noise of (seed, i).
        """
        dim = self.dim
        ys, single = _rows(y, dim, "y")
        m = np.asarray(mask)
        if m.shape != np.shape(y):
            raise ArgumentError(f"mask must have the shape of y {np.shape(y)}, got {m.shape}", "Shape")
        if m.dtype != np.bool_:
            if not np.all((m == 0) | (m == 1)):
                raise ArgumentError("mask values must be 0 or 1", "Argument")
        m = np.ascontiguousarray(m.reshape(ys.shape).astype(np.uint8))
        steps = _count(steps, "steps", 0, 2**32 - 1)
        draws = _count(draws, "draws", 0, 2**32 - 1)
        resample = _count(resample, "resample", 0, 2**32 - 1)
        seed = _count(seed, "seed", 0, 2**64 - 1)
        buf = self._native.impute(ys.tobytes(), m.tobytes(), steps, draws, resample, seed, progress)
        return _out(buf, ys.shape[0], dim, single)

    def likelihood(
        self,
        x: Any,
        *,
        steps: int = 100,
        exact: bool = False,
        hutchinson: Optional[int] = None,
        seed: int = 1,
        progress: Optional[Progress] = None,
    ) -> np.ndarray:
        """log p(x) in nats of each row of ``x`` (data units), through the probability-flow ODE,
        as ``tinyscore likelihood`` computes it (float64; its report is ``-mean(log p)/D``).

        ``steps`` RK4 steps; the divergence exact (D vector-Jacobian products) or by
        ``hutchinson`` Rademacher probes (from (seed, i)); the default is exact for D ≤ 64,
        else 16 probes. The weights are the file's, dequantised to f32; a w8a8 file raises
        :class:`TinyscoreError` (its integer network has no Jacobian).
        """
        dim = self.dim
        xs, single = _rows(x, dim, "x")
        steps = _count(steps, "steps", 0, 2**32 - 1)
        seed = _count(seed, "seed", 0, 2**64 - 1)
        if hutchinson is not None:
            hutchinson = _count(hutchinson, "hutchinson", 0, 2**32 - 1)
        buf, _mode = self._native.likelihood(xs.tobytes(), steps, bool(exact), hutchinson, seed, progress)
        out = np.frombuffer(bytearray(buf), dtype="<f8")
        return out[0] if single else out


def convert(
    checkpoint: Union[str, "os.PathLike[str]"],
    out: Optional[Union[str, "os.PathLike[str]"]] = None,
    *,
    quant: str = "f32",
    raw: bool = False,
    calib: Optional[str] = None,
    groups: Optional[int] = None,
) -> Model:
    """Converts a ``.safetensors`` checkpoint into a model, as ``tinyscore convert``.

    ``quant``: ``f32``, ``f16``, ``w8`` or ``w8a8``; ``raw`` uses the raw weights instead of
    their EMA; ``calib`` is the calibration data (a built-in name or a CSV/.npy file; default:
    the data recorded in the checkpoint); ``groups`` the w8a8 timestep groups (default: chosen
    by measured SNR). Writes the file to ``out`` if given (atomically) and returns the
    :class:`Model`; :func:`convert_report` also returns the groups and the score SNR.
    """
    model, _groups, _snr = convert_report(checkpoint, out, quant=quant, raw=raw, calib=calib, groups=groups)
    return model


def convert_report(
    checkpoint: Union[str, "os.PathLike[str]"],
    out: Optional[Union[str, "os.PathLike[str]"]] = None,
    *,
    quant: str = "f32",
    raw: bool = False,
    calib: Optional[str] = None,
    groups: Optional[int] = None,
) -> Tuple[Model, int, float]:
    """:func:`convert`, also returning the w8a8 timestep groups chosen (0 for other modes) and
    the score SNR (dB) of the converted network against float over the calibration inputs (what
    ``tinyscore convert`` prints)."""
    path = os.fspath(checkpoint)
    data, chosen, snr = _native.convert(path, str(quant), bool(raw), calib, groups)
    model = Model(_native.NativeModel.load(data), os.fspath(out) if out is not None else "<converted>")
    if out is not None:
        tmp = os.fspath(out) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.fspath(out))
    return model, chosen, snr


def dataset(spec: str, n: int = 20000, *, seed: int = 0) -> np.ndarray:
    """``n`` examples of a built-in data set (``moons``, ``swissroll``, ``8gaussians``,
    ``checkerboard``, ``pinwheel``, ``digits``, ``ecg``) or a CSV/.npy file, as
    ``tinyscore train --data SPEC --n N --seed SEED`` trains on: ``(n, D)`` float32."""
    n = _count(n, "n", 1, 2**63)
    seed = _count(seed, "seed", 0, 2**64 - 1)
    buf, dim = _native.dataset(str(spec), n, seed)
    return np.frombuffer(bytearray(buf), dtype="<f4").reshape(-1, dim)


def evaluate(samples: Any, data: str, *, projections: int = 256, seed: int = 1) -> Dict[str, Any]:
    """``tinyscore eval``: the sliced Wasserstein distance between ``samples`` and held-out data
    of ``data``, with its floor (two held-out halves) and a fitted Gaussian's. Returns a dict
    with ``distance``, ``floor``, ``gaussian``, ``points`` and ``text`` (the command's line)."""
    arr = np.asarray(samples, dtype="<f4")
    if arr.ndim != 2:
        raise ArgumentError(f"samples must be (n, D), got shape {arr.shape}", "Shape")
    projections = _count(projections, "projections", 0, 2**32 - 1)
    seed = _count(seed, "seed", 0, 2**64 - 1)
    return _native.evaluate(np.ascontiguousarray(arr).tobytes(), arr.shape[1], str(data), projections, seed)
