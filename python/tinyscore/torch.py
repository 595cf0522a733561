"""PyTorch interop (``pip install "tinyscore[torch]"``): train ScoreNet v1 in your own PyTorch
loop, export a checkpoint that ``tinyscore convert`` takes, and read checkpoints back.

:class:`ScoreNet` computes the engine's function (``docs/scorenet.md``): the same layers, the
same parameter names and layout (``nn.Linear``'s, rows = outputs), the same time features (with
the engine's own frequencies ω_k). :func:`export` writes the checkpoint through the trainer's
writer, so a converted file's ε̂ equals the module's within float rounding.

A sketch::

    net = ScoreNet(dim=2, hidden=64, blocks=2).normalize_to(x)   # x: training data, data units
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        loss = dsm_loss(net, x[torch.randint(len(x), (256,))])
        opt.zero_grad(); loss.backward(); opt.step()
    export(net, "net.safetensors", data="moons")
    model = tinyscore.convert("net.safetensors", "net.tsm", quant="w8a8")
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from torch import nn

from . import _native
from .errors import ArgumentError

__all__ = ["ScoreNet", "dsm_loss", "export", "load_checkpoint"]

_PROCESSES = ("vp", "vpsde", "subvp", "ve")


def _process_flags(process: str, schedule: Optional[str], diffusion_steps: Optional[int]) -> List[str]:
    """The ``tinyscore train`` flags of a process (the command's parser applies the defaults)."""
    if process not in _PROCESSES:
        raise ArgumentError(f"process must be one of {', '.join(_PROCESSES)}, got {process!r}", "Argument")
    flags = ["--process", process]
    if schedule is not None:
        flags += ["--schedule", str(schedule)]
    if diffusion_steps is not None:
        flags += ["--diffusion-steps", str(int(diffusion_steps))]
    return flags


class _Block(nn.Module):
    """One residual block: u = W1·silu(h) + b1 + temb; h + W2·silu(u) + b2."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(hidden, hidden)
        self.w2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        u = self.w1(nn.functional.silu(h)) + temb
        return h + self.w2(nn.functional.silu(u))


class ScoreNet(nn.Module):
    """ScoreNet v1, the engine's MLP (``docs/scorenet.md``), as a ``torch.nn.Module``.

    ``forward(x, t)`` takes normalised inputs ``x`` (batch, D) and times ``t`` in [0, 1]
    (a scalar or (batch,); DDPM step n of N is t = n/N) and predicts the noise ε̂. The
    normalisation (``norm_mean``, ``norm_std``, buffers in data units) is stored in the
    checkpoint; :meth:`normalize_to` sets it from training data. The diffusion process
    (``process``: ``vp`` (discrete DDPM, ``schedule`` ``linear``/``cosine``, ``diffusion_steps``
    N), ``vpsde``, ``subvp`` or ``ve``, with ``tinyscore train``'s parameters) is what
    :func:`dsm_loss` trains and :func:`export` records.

    Sizes: D ≤ 256, H ≤ 512, F even ≤ 64, B ≤ 8 (the engine's capacities).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        blocks: int = 3,
        freqs: int = 32,
        *,
        process: str = "vp",
        schedule: Optional[str] = None,
        diffusion_steps: Optional[int] = None,
    ) -> None:
        super().__init__()
        # Checks the sizes against the engine's capacities (raises ArgumentError).
        _native.param_shapes(dim, hidden, freqs, blocks)
        self.dim, self.hidden, self.n_blocks, self.freqs = dim, hidden, blocks, freqs
        self.process_flags = _process_flags(process, schedule, diffusion_steps)
        _native.process_table(self.process_flags)  # validates the process now, not at export
        self.time_w1 = nn.Linear(freqs, hidden)
        self.time_w2 = nn.Linear(hidden, hidden)
        self.input = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList([_Block(hidden) for _ in range(blocks)])
        self.output = nn.Linear(hidden, dim)
        omega = np.frombuffer(_native.frequencies(freqs), dtype="<f4").copy()
        self.register_buffer("omega", torch.from_numpy(omega), persistent=False)
        self.register_buffer("norm_mean", torch.zeros(dim))
        self.register_buffer("norm_std", torch.ones(dim))

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """φ(t) = [sin(ω_k·1000t), cos(ω_k·1000t)], (batch, F), in the engine's f32 order."""
        s = (t.to(torch.float32) * 1000.0).reshape(-1, 1)
        arg = self.omega.reshape(1, -1) * s
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)

    def forward(self, x: torch.Tensor, t: Union[float, torch.Tensor]) -> torch.Tensor:
        """ε̂ for normalised ``x`` (batch, D) at times ``t`` (scalar or (batch,))."""
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        phi = self.time_features(t)
        temb = self.time_w2(nn.functional.silu(self.time_w1(phi)))
        h = self.input(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.output(nn.functional.silu(h))

    @torch.no_grad()
    def normalize_to(self, data: Any) -> "ScoreNet":
        """Sets the normalisation to the per-dimension mean and std of ``data`` ((n, D), data
        units; population std, floored at 1e-6 of the largest, or 1 if every dimension is
        constant), as the trainer's ``Normalization::fit``. Returns the module."""
        x = torch.as_tensor(np.asarray(data, dtype=np.float64))
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False)
        top = float(std.max()) if std.numel() else 0.0
        std = std.clamp(min=1e-6 * top) if top > 0 else torch.ones_like(std)
        self.norm_mean.copy_(mean.to(torch.float32))
        self.norm_std.copy_(std.to(torch.float32))
        return self

    def tensors(self) -> Dict[str, torch.Tensor]:
        """The weights under the checkpoint's names (``time.w1``, ``blocks.0.b2``, …), in
        ``Dims::params()`` order."""
        out = {
            "time.w1": self.time_w1.weight,
            "time.b1": self.time_w1.bias,
            "time.w2": self.time_w2.weight,
            "time.b2": self.time_w2.bias,
            "input.w": self.input.weight,
            "input.b": self.input.bias,
        }
        for b, block in enumerate(self.blocks):
            out[f"blocks.{b}.w1"] = block.w1.weight
            out[f"blocks.{b}.b1"] = block.w1.bias
            out[f"blocks.{b}.w2"] = block.w2.weight
            out[f"blocks.{b}.b2"] = block.w2.bias
        out["output.w"] = self.output.weight
        out["output.b"] = self.output.bias
        return out

    def flat_parameters(self) -> np.ndarray:
        """The weights as one float32 vector in the checkpoint's (the engine's) order."""
        shapes = _native.param_shapes(self.dim, self.hidden, self.freqs, self.n_blocks)
        tensors = self.tensors()
        parts = []
        for name, shape in shapes:
            v = tensors[name].detach().to("cpu", torch.float32)
            if tuple(v.shape) != tuple(shape):
                raise ArgumentError(f"{name} has shape {tuple(v.shape)}, expected {tuple(shape)}", "WrongShape")
            parts.append(v.numpy().reshape(-1))
        return np.ascontiguousarray(np.concatenate(parts).astype("<f4"))

    @torch.no_grad()
    def load_flat_parameters(self, flat: np.ndarray) -> None:
        """Sets the weights from one vector in the checkpoint's order."""
        shapes = _native.param_shapes(self.dim, self.hidden, self.freqs, self.n_blocks)
        tensors = self.tensors()
        at = 0
        for name, shape in shapes:
            size = int(np.prod(shape))
            tensors[name].copy_(torch.from_numpy(np.array(flat[at : at + size], dtype=np.float32).reshape(shape)))
            at += size


_TABLES: Dict[tuple, Dict[str, Any]] = {}


def _table(flags: List[str]) -> Dict[str, Any]:
    """The process of ``flags`` (the engine's tables as tensors), computed once per process."""
    key = tuple(flags)
    if key not in _TABLES:
        table = dict(_native.process_table(flags))
        for name in ("alpha", "sigma"):
            if name in table:
                table[name] = torch.from_numpy(np.frombuffer(table[name], dtype="<f4").copy())
        _TABLES[key] = table
    return _TABLES[key]


def dsm_loss(net: ScoreNet, x0: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The denoising score matching loss of ``tinyscore train`` (the simplified ε-loss of Ho et
    al. 2020, eq. 14) on a batch ``x0`` (batch, D) in data units: x₀ normalised by the module's
    buffers, t drawn as the trainer draws it (discrete: n uniform on 1..=N, t = n/N, (α, σ) from
    the engine's table; an SDE: t uniform on [t_ε, 1], (α_t, σ_t) the engine's marginal),
    x_t = α x₀ + σ ε, loss = mean (ε̂(x_t, t) − ε)²."""
    device = net.norm_mean.device
    x = (x0.to(device, torch.float32) - net.norm_mean) / net.norm_std
    batch = x.shape[0]
    table = _table(net.process_flags)
    if "alpha" in table:
        steps = table["steps"]
        n = torch.randint(1, steps + 1, (batch,), generator=generator)
        t = n.to(torch.float32) / steps
        alpha, sigma = table["alpha"][n], table["sigma"][n]
    else:
        t_eps = table["t_eps"]
        t = t_eps + (1.0 - t_eps) * torch.rand(batch, generator=generator)
        a, s = _native.marginal(net.process_flags, t.numpy().astype("<f4").tobytes())
        alpha = torch.from_numpy(np.frombuffer(a, dtype="<f4").copy())
        sigma = torch.from_numpy(np.frombuffer(s, dtype="<f4").copy())
    eps = torch.randn(x.shape, generator=generator).to(device)
    alpha, sigma, t = alpha.to(device), sigma.to(device), t.to(device)
    x_t = alpha[:, None] * x + sigma[:, None] * eps
    return ((net(x_t, t) - eps) ** 2).mean()


def export(
    module: ScoreNet,
    path: Union[str, "os.PathLike[str]"],
    *,
    process: Optional[str] = None,
    schedule: Optional[str] = None,
    diffusion_steps: Optional[int] = None,
    data: str = "",
    ema: Optional[ScoreNet] = None,
    step: int = 0,
) -> None:
    """Writes ``module`` as a ``tinyscore-ckpt-v1`` safetensors checkpoint that
    ``tinyscore convert`` (and :func:`tinyscore.convert`) takes.

    ``process`` (and ``schedule``, ``diffusion_steps``) override the module's; ``data`` (a
    built-in data set's name or a CSV/.npy path) is recorded for the converter's calibration
    (``convert --calib`` can name it instead); ``ema``, a second module of the same sizes, is
    stored as the EMA weights (the converter's default); without it the EMA is the weights.
    Written atomically by the trainer's own writer.
    """
    if not isinstance(module, ScoreNet):
        raise ArgumentError(
            f"export takes a tinyscore.torch.ScoreNet, got {type(module).__name__}"
            " (load a state dict into a ScoreNet of the same sizes first)",
            "Argument",
        )
    flags = module.process_flags if process is None else _process_flags(process, schedule, diffusion_steps)
    if process is None and (schedule is not None or diffusion_steps is not None):
        flags = _process_flags(flags[1], schedule, diffusion_steps)
    params = module.flat_parameters()
    ema_flat = None
    if ema is not None:
        if not isinstance(ema, ScoreNet) or (ema.dim, ema.hidden, ema.freqs, ema.n_blocks) != (
            module.dim,
            module.hidden,
            module.freqs,
            module.n_blocks,
        ):
            raise ArgumentError("ema must be a ScoreNet of the same sizes", "Argument")
        ema_flat = ema.flat_parameters().tobytes()
    mean = module.norm_mean.detach().to("cpu", torch.float32).numpy().astype("<f4")
    std = module.norm_std.detach().to("cpu", torch.float32).numpy().astype("<f4")
    _native.write_checkpoint(
        os.fspath(path),
        (module.dim, module.hidden, module.freqs, module.n_blocks),
        params.tobytes(),
        ema_flat,
        mean.tobytes(),
        std.tobytes(),
        str(data),
        flags,
        int(step),
    )


def load_checkpoint(path: Union[str, "os.PathLike[str]"], *, ema: bool = True) -> ScoreNet:
    """Reads a checkpoint (``tinyscore train``'s, or :func:`export`'s) into a :class:`ScoreNet`:
    the EMA weights (``ema=False``: the raw ones), the normalisation and the process. Its
    ``checkpoint`` attribute holds the rest (``step``, ``data``). Raises
    :class:`tinyscore.CheckpointError` for a file the reader refuses."""
    c = _native.read_checkpoint(os.fspath(path))
    dim, hidden, freqs, blocks = c["dims"]
    process = c["process"]
    net = ScoreNet(
        dim,
        hidden,
        blocks,
        freqs,
        process=process,
        schedule=c["schedule"] if process == "vp" else None,
        diffusion_steps=c["diffusion_steps"],
    )
    net.load_flat_parameters(np.frombuffer(c["ema" if ema else "params"], dtype="<f4"))
    with torch.no_grad():
        net.norm_mean.copy_(torch.from_numpy(np.frombuffer(c["mean"], dtype="<f4").copy()))
        net.norm_std.copy_(torch.from_numpy(np.frombuffer(c["std"], dtype="<f4").copy()))
    net.checkpoint = {"step": c["step"], "data": c["data"]}
    return net
