"""The exceptions of tinyscore.

Every error the engine, the converter or the checkpoint reader reports arrives as one of these
classes. ``str(e)`` is the one-line message the ``tinyscore`` command would print, and
``e.kind`` names the error variant it came from (``"BadMagic"``, ``"CrcMismatch"``,
``"WrongShape"``, ``"Steps"``, …: the Rust enum variants of ``tinyscore_engine`` and
``tinyscore_train``), so code can branch on the cause without parsing text.
"""

from __future__ import annotations

__all__ = [
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


class TinyscoreError(Exception):
    """Base class of every tinyscore error: ``(message, kind)``."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message, kind)
        self.message = message
        self.kind = kind

    def __str__(self) -> str:
        return self.message


class ArgumentError(TinyscoreError, ValueError):
    """An argument is out of range, of the wrong shape, or has no effect with the others."""


class ModelFileError(TinyscoreError):
    """The bytes are not a valid ``.tsm`` model file (``kind``: the engine's ``FormatError``)."""


class CapacityError(TinyscoreError):
    """A valid file needs more than the host engine gives it (its sizes or its arena)."""


class SamplerError(TinyscoreError):
    """The sampler does not fit the model's process, or its steps are out of range."""


class DenoiseError(TinyscoreError):
    """The denoiser refused its settings or a window."""


class CheckpointError(TinyscoreError):
    """A ``.safetensors`` checkpoint cannot be read or written (``kind``: ``CheckpointError``)."""


class CalibrationError(TinyscoreError):
    """The calibration data of ``convert`` cannot be loaded or does not fit the model."""


class DataError(TinyscoreError):
    """A data set cannot be loaded or does not fit."""
