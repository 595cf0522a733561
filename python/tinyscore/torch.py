"""PyTorch interop (``pip install "tinyscore[torch]"``): train ScoreNet v1 or ScoreNet-conv in
your own PyTorch loop, export a checkpoint that ``tinyscore convert`` takes, and read checkpoints
back.

:class:`ScoreNet` (the MLP) and :class:`ScoreNetConv` (the 1-D U-Net for signals) compute the
engine's functions (``docs/scorenet.md``): the same layers, the same parameter layout
(``nn.Linear``'s (out, in), ``nn.Conv1d``'s (C_out, C_in, K)), the same time features (with the
engine's own frequencies ω_k). :func:`export` writes the checkpoint through the trainer's writer,
so a converted file's ε̂ equals the module's within float rounding.

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

__all__ = ["ScoreNet", "ScoreNetConv", "dsm_loss", "export", "load_checkpoint"]

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


class _Network(nn.Module):
    """What :class:`ScoreNet` and :class:`ScoreNetConv` share: the process, the time features
    φ(t), the normalisation buffers and the weights in the checkpoint's order."""

    #: The network family as checkpoints name it (``mlp`` or ``conv``).
    arch = ""

    def _setup(self, dim: int, freqs: int, process: str, schedule: Optional[str], diffusion_steps: Optional[int]) -> None:
        self.dim, self.freqs = dim, freqs
        self.process_flags = _process_flags(process, schedule, diffusion_steps)
        _native.process_table(self.process_flags)  # validates the process now, not at export
        omega = np.frombuffer(_native.frequencies(freqs), dtype="<f4").copy()
        self.register_buffer("omega", torch.from_numpy(omega), persistent=False)
        self.register_buffer("norm_mean", torch.zeros(dim))
        self.register_buffer("norm_std", torch.ones(dim))

    @property
    def sizes(self) -> Dict[str, int]:
        """The network's sizes by the checkpoint's names."""
        raise NotImplementedError

    def param_shapes(self) -> List[tuple]:
        """(name, shape) of every weight in the checkpoint's order (the engine's)."""
        raise NotImplementedError

    def tensors(self) -> Dict[str, torch.Tensor]:
        """The weights under the checkpoint's names, in its order."""
        raise NotImplementedError

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """φ(t) = [sin(ω_k·1000t), cos(ω_k·1000t)], (batch, F), in the engine's f32 order."""
        s = (t.to(torch.float32) * 1000.0).reshape(-1, 1)
        arg = self.omega.reshape(1, -1) * s
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)

    def _times(self, x: torch.Tensor, t: Union[float, torch.Tensor]) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device)
        return t.expand(x.shape[0]) if t.dim() == 0 else t

    def flat_parameters(self) -> np.ndarray:
        """The weights as one float32 vector in the checkpoint's (the engine's) order."""
        tensors = self.tensors()
        parts = []
        for name, shape in self.param_shapes():
            v = tensors[name].detach().to("cpu", torch.float32)
            if tuple(v.shape) != tuple(shape):
                raise ArgumentError(f"{name} has shape {tuple(v.shape)}, expected {tuple(shape)}", "WrongShape")
            parts.append(v.numpy().reshape(-1))
        return np.ascontiguousarray(np.concatenate(parts).astype("<f4"))

    @torch.no_grad()
    def load_flat_parameters(self, flat: np.ndarray) -> None:
        """Sets the weights from one vector in the checkpoint's order."""
        tensors = self.tensors()
        at = 0
        for name, shape in self.param_shapes():
            size = int(np.prod(shape))
            tensors[name].copy_(torch.from_numpy(np.array(flat[at : at + size], dtype=np.float32).reshape(shape)))
            at += size

    def _set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Population std floored at 1e-6 of the largest, or 1 if all are 0 (``Normalization``)."""
        top = float(std.max()) if std.numel() else 0.0
        std = std.clamp(min=1e-6 * top) if top > 0 else torch.ones_like(std)
        self.norm_mean.copy_(mean.to(torch.float32))
        self.norm_std.copy_(std.to(torch.float32))


class _Block(nn.Module):
    """One residual block: u = W1·silu(h) + b1 + temb; h + W2·silu(u) + b2."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(hidden, hidden)
        self.w2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        u = self.w1(nn.functional.silu(h)) + temb
        return h + self.w2(nn.functional.silu(u))


class ScoreNet(_Network):
    """ScoreNet v1, the engine's MLP (``docs/scorenet.md``), as a ``torch.nn.Module``.

    ``forward(x, t)`` takes normalised inputs ``x`` (batch, D) and times ``t`` in [0, 1]
    (a scalar or (batch,); DDPM step n of N is t = n/N) and predicts the noise ε̂. The
    normalisation (``norm_mean``, ``norm_std``, buffers in data units) is stored in the
    checkpoint; :meth:`normalize_to` sets it from training data. The diffusion process
    (``process``: ``vp`` (discrete DDPM, ``schedule`` ``linear``/``cosine``, ``diffusion_steps``
    N), ``vpsde``, ``subvp`` or ``ve``, with ``tinyscore train``'s parameters) is what
    :func:`dsm_loss` trains and :func:`export` records.

    Sizes: D ≤ 4096, H ≤ 512, F even ≤ 64, B ≤ 8 (the engine's capacities; the converter
    writes a layer-graph file, structural version 3, whose D may exceed version 1's 256).
    """

    arch = "mlp"

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
        self._setup(dim, freqs, process, schedule, diffusion_steps)
        self.hidden, self.n_blocks = hidden, blocks
        self.time_w1 = nn.Linear(freqs, hidden)
        self.time_w2 = nn.Linear(hidden, hidden)
        self.input = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList([_Block(hidden) for _ in range(blocks)])
        self.output = nn.Linear(hidden, dim)

    @property
    def sizes(self) -> Dict[str, int]:
        """``dim``, ``hidden``, ``freqs``, ``blocks``."""
        return {"dim": self.dim, "hidden": self.hidden, "freqs": self.freqs, "blocks": self.n_blocks}

    def param_shapes(self) -> List[tuple]:
        """(name, shape) of every weight in ``Dims::params()`` order."""
        return _native.param_shapes(self.dim, self.hidden, self.freqs, self.n_blocks)

    def forward(self, x: torch.Tensor, t: Union[float, torch.Tensor]) -> torch.Tensor:
        """ε̂ for normalised ``x`` (batch, D) at times ``t`` (scalar or (batch,))."""
        phi = self.time_features(self._times(x, t))
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
        self._set_normalization(x.mean(dim=0), x.std(dim=0, unbiased=False))
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


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv1d:
    """The graph's ``conv1d``: "same" padding p = (K−1)/2, dilation 1; stride 2 gives ⌈L/2⌉."""
    return nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=(kernel - 1) // 2)


class _ResBlockConv(nn.Module):
    """ScoreNet-conv's residual block on c channels:
    u = chan_bias(conv1(silu(h)), p), p = temb_proj(silu(temb)); h + conv2(silu(u))."""

    def __init__(self, channels: int, kernel: int, temb: int) -> None:
        super().__init__()
        self.temb_proj = nn.Linear(temb, channels)
        self.conv1 = _conv(channels, channels, kernel)
        self.conv2 = _conv(channels, channels, kernel)

    def forward(self, h: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        # h (batch, c, L); ts = silu(temb) (batch, T); p (batch, c) added at every position
        u = self.conv1(nn.functional.silu(h)) + self.temb_proj(ts)[:, :, None]
        return h + self.conv2(nn.functional.silu(u))


class _Level(nn.Module):
    """One level of the U-Net: its residual blocks and the convolution that leaves it (down:
    stride 2 to c_{i+1}; up: from upsample2 of level i+1's c_{i+1} channels to c_i)."""

    def __init__(self, blocks: List[_ResBlockConv], conv: nn.Conv1d) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.conv = conv


class ScoreNetConv(_Network):
    """ScoreNet-conv, the engine's 1-D U-Net for signals (``docs/scorenet.md``,
    "ScoreNet-conv"; ``engine/src/graph/unet.rs``), as a ``torch.nn.Module``::

        time    φ = φ(t) (F); temb = time_w2(silu(time_w1(φ))) (T); ts = silu(temb)
        in      h = input(x)                                        C → c_0
        down    level i < levels: blocks × resblock(c_i); skip_i = h; h = down[i].conv(h)  (stride 2)
        middle  blocks × resblock(c_levels)
        up      level i = levels−1 … 0: h = up[i].conv(upsample2(h)) + skip_i; blocks × resblock(c_i)
        out     ε̂ = output(silu(h))                                 c_0 → C
        resblock(c): u = conv1(silu(h)) + temb_proj(ts) at every position; h + conv2(silu(u))

    with c_i = width·min(i + 1, 2) channels at level i and every convolution of kernel K,
    "same" padding (``nn.Conv1d(c_in, c_out, K, padding=(K−1)//2)``; the downsampling ones
    with ``stride=2``), upsample2 the nearest (each sample repeated twice).

    ``forward(x, t)`` takes normalised signals ``x``, (batch, C·L) channel-major as a CSV row
    or ``Model.eps`` takes them (channel c's L samples contiguous), or (batch, C, L) as
    ``nn.Conv1d`` takes them, and times ``t`` in [0, 1] (scalar or (batch,)), and returns ε̂ of
    ``x``'s shape. ``dim`` is D = C·L; the normalisation buffers ``norm_mean``/``norm_std`` hold
    D values (one mean and std per channel, repeated along its samples: :meth:`normalize_to`).

    Sizes (``tinyscore train --arch conv``'s flags and defaults): ``length`` L (a multiple of
    2^levels), ``channels`` C (``--signal-channels``, 1), ``width`` c_0 (10), ``levels`` (3),
    ``blocks`` per level and in the middle (1), ``kernel`` K (odd, 5), ``temb`` T (4·width),
    ``freqs`` F (32); C·L ≤ 4096. The output convolution starts at zero, as the trainer's.
    """

    arch = "conv"

    def __init__(
        self,
        length: int,
        channels: int = 1,
        width: int = 10,
        levels: int = 3,
        blocks: int = 1,
        kernel: int = 5,
        temb: Optional[int] = None,
        freqs: int = 32,
        *,
        process: str = "vp",
        schedule: Optional[str] = None,
        diffusion_steps: Optional[int] = None,
    ) -> None:
        super().__init__()
        temb = 4 * width if temb is None else temb
        sizes = {
            "channels": channels,
            "length": length,
            "width": width,
            "levels": levels,
            "blocks": blocks,
            "kernel": kernel,
            "freqs": freqs,
            "temb": temb,
        }
        # Checks the sizes as the trainer and the engine do (raises ArgumentError).
        self._shapes = [(name, tuple(shape)) for name, shape in _native.conv_param_shapes(sizes)]
        self._setup(channels * length, freqs, process, schedule, diffusion_steps)
        self.channels, self.length, self.width, self.levels = channels, length, width, levels
        self.n_blocks, self.kernel, self.temb = blocks, kernel, temb
        c = [self.level_channels(i) for i in range(levels + 1)]

        def resblocks(ch: int) -> List[_ResBlockConv]:
            return [_ResBlockConv(ch, kernel, temb) for _ in range(blocks)]

        self.time_w1 = nn.Linear(freqs, temb)
        self.time_w2 = nn.Linear(temb, temb)
        self.input = _conv(channels, c[0], kernel)
        self.down = nn.ModuleList([_Level(resblocks(c[i]), _conv(c[i], c[i + 1], kernel, 2)) for i in range(levels)])
        self.middle = nn.ModuleList(resblocks(c[levels]))
        # up[i] is level i (evaluated from levels−1 down to 0).
        self.up = nn.ModuleList([_Level(resblocks(c[i]), _conv(c[i + 1], c[i], kernel)) for i in range(levels)])
        self.output = _conv(c[0], channels, kernel)
        with torch.no_grad():
            self.output.weight.zero_()
            self.output.bias.zero_()
        # The graph's order of its linear and conv layers (docs/scorenet.md): the time branch
        # first (the time MLP, then every block's projection in evaluation order), then the data
        # branch in evaluation order; checked against the engine's names and shapes here.
        self._check_order()

    def level_channels(self, i: int) -> int:
        """c_i = width·min(i + 1, 2), the channels at level i."""
        return self.width * min(i + 1, 2)

    @property
    def sizes(self) -> Dict[str, int]:
        """``channels``, ``length``, ``width``, ``levels``, ``blocks``, ``kernel``, ``freqs``,
        ``temb``: the checkpoint's names (which stores ``dim`` = C·L for ``length``)."""
        return {
            "channels": self.channels,
            "length": self.length,
            "width": self.width,
            "levels": self.levels,
            "blocks": self.n_blocks,
            "kernel": self.kernel,
            "freqs": self.freqs,
            "temb": self.temb,
        }

    def param_shapes(self) -> List[tuple]:
        """(name, shape) of every weight in the graph's tensor order: ``layers.{i}.weight``
        ((C_out, C_in, K) or (out, in)) and ``layers.{i}.bias``, i the graph's layer index."""
        return list(self._shapes)

    def _resblocks_in_order(self) -> List[_ResBlockConv]:
        out: List[_ResBlockConv] = []
        for level in self.down:
            out += list(level.blocks)
        out += list(self.middle)
        for i in reversed(range(self.levels)):
            out += list(self.up[i].blocks)
        return out

    def _layers_in_order(self) -> List[nn.Module]:
        """The linear and conv layers in the graph's order (their weights' order in the file)."""
        layers: List[nn.Module] = [self.time_w1, self.time_w2]
        layers += [b.temb_proj for b in self._resblocks_in_order()]
        layers.append(self.input)
        for level in self.down:
            for b in level.blocks:
                layers += [b.conv1, b.conv2]
            layers.append(level.conv)
        for b in self.middle:
            layers += [b.conv1, b.conv2]
        for i in reversed(range(self.levels)):
            layers.append(self.up[i].conv)
            for b in self.up[i].blocks:
                layers += [b.conv1, b.conv2]
        layers.append(self.output)
        return layers

    def _check_order(self) -> None:
        layers = self._layers_in_order()
        if 2 * len(layers) != len(self._shapes):
            raise AssertionError(f"{len(layers)} layers for {len(self._shapes)} tensors")
        for layer, (wname, wshape), (bname, bshape) in zip(layers, self._shapes[0::2], self._shapes[1::2]):
            if tuple(layer.weight.shape) != wshape or tuple(layer.bias.shape) != bshape:
                raise AssertionError(f"{wname} {wshape} / {bname} {bshape} vs {tuple(layer.weight.shape)}")

    def tensors(self) -> Dict[str, torch.Tensor]:
        """The weights under the checkpoint's names (``layers.{i}.weight``, ``layers.{i}.bias``),
        in the graph's order."""
        out: Dict[str, torch.Tensor] = {}
        names = [name for name, _ in self._shapes]
        for layer, wname, bname in zip(self._layers_in_order(), names[0::2], names[1::2]):
            out[wname] = layer.weight
            out[bname] = layer.bias
        return out

    def forward(self, x: torch.Tensor, t: Union[float, torch.Tensor]) -> torch.Tensor:
        """ε̂ for normalised ``x`` ((batch, C·L) channel-major, or (batch, C, L)) at times ``t``
        (scalar or (batch,)), of ``x``'s shape."""
        flat = x.dim() == 2
        h = x.reshape(x.shape[0], self.channels, self.length) if flat else x
        ts = self.time_features(self._times(x, t))
        ts = nn.functional.silu(self.time_w2(nn.functional.silu(self.time_w1(ts))))
        h = self.input(h)
        skips = []
        for level in self.down:
            for block in level.blocks:
                h = block(h, ts)
            skips.append(h)
            h = level.conv(h)
        for block in self.middle:
            h = block(h, ts)
        for i in reversed(range(self.levels)):
            h = self.up[i].conv(torch.repeat_interleave(h, 2, dim=2)) + skips.pop()
            for block in self.up[i].blocks:
                h = block(h, ts)
        out = self.output(nn.functional.silu(h))
        return out.reshape(x.shape[0], -1) if flat else out

    @torch.no_grad()
    def normalize_to(self, data: Any) -> "ScoreNetConv":
        """Sets the normalisation to one mean and population std per channel of ``data``
        ((n, C·L) channel-major or (n, C, L), data units), over every sample of every row,
        repeated along the channel's samples (std floored at 1e-6 of the largest, or 1 if
        every channel is constant), as the trainer's ``Normalization::fit_channels``. Returns
        the module."""
        x = torch.as_tensor(np.asarray(data, dtype=np.float64))
        x = x.reshape(x.shape[0], self.channels, self.length).transpose(0, 1).reshape(self.channels, -1)
        mean, std = x.mean(dim=1), x.std(dim=1, unbiased=False)
        self._set_normalization(mean.repeat_interleave(self.length), std.repeat_interleave(self.length))
        return self


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


def dsm_loss(
    net: Union[ScoreNet, ScoreNetConv], x0: torch.Tensor, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """The denoising score matching loss of ``tinyscore train`` (the simplified ε-loss of Ho et
    al. 2020, eq. 14) on a batch ``x0`` (batch, D) in data units (for :class:`ScoreNetConv`
    also (batch, C, L)): x₀ normalised by the module's
    buffers, t drawn as the trainer draws it (discrete: n uniform on 1..=N, t = n/N, (α, σ) from
    the engine's table; an SDE: t uniform on [t_ε, 1], (α_t, σ_t) the engine's marginal),
    x_t = α x₀ + σ ε, loss = mean (ε̂(x_t, t) − ε)²."""
    device = net.norm_mean.device
    x = (x0.to(device, torch.float32).reshape(x0.shape[0], -1) - net.norm_mean) / net.norm_std
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
    module: Union[ScoreNet, ScoreNetConv],
    path: Union[str, "os.PathLike[str]"],
    *,
    process: Optional[str] = None,
    schedule: Optional[str] = None,
    diffusion_steps: Optional[int] = None,
    data: str = "",
    ema: Optional[Union[ScoreNet, ScoreNetConv]] = None,
    step: int = 0,
) -> None:
    """Writes ``module`` (a :class:`ScoreNet` or a :class:`ScoreNetConv`) as a
    ``tinyscore-ckpt-v1`` safetensors checkpoint that ``tinyscore convert`` (and
    :func:`tinyscore.convert`) takes: ScoreNet v1's tensors by role (``time.w1``, …), or
    ScoreNet-conv's ``layers.{i}.weight``/``.bias`` with metadata ``arch`` = ``conv`` and its
    sizes, as ``tinyscore train --arch conv`` writes them. A conv network converts to every
    ``quant``: ``f32``, ``f16``, ``w8`` and ``w8a8``.

    ``process`` (and ``schedule``, ``diffusion_steps``) override the module's; ``data`` (a
    built-in data set's name or a CSV/.npy path) is recorded for the converter's calibration
    (``convert --calib`` can name it instead); ``ema``, a second module of the same class and
    sizes, is stored as the EMA weights (the converter's default); without it the EMA is the
    weights. Written atomically by the trainer's own writer.
    """
    if not isinstance(module, (ScoreNet, ScoreNetConv)):
        raise ArgumentError(
            f"export takes a tinyscore.torch.ScoreNet or ScoreNetConv, got {type(module).__name__}"
            " (load a state dict into one of the same sizes first)",
            "Argument",
        )
    flags = module.process_flags if process is None else _process_flags(process, schedule, diffusion_steps)
    if process is None and (schedule is not None or diffusion_steps is not None):
        flags = _process_flags(flags[1], schedule, diffusion_steps)
    params = module.flat_parameters()
    ema_flat = None
    if ema is not None:
        if type(ema) is not type(module) or ema.sizes != module.sizes:
            raise ArgumentError(f"ema must be a {type(module).__name__} of the same sizes", "Argument")
        ema_flat = ema.flat_parameters().tobytes()
    mean = module.norm_mean.detach().to("cpu", torch.float32).numpy().astype("<f4")
    std = module.norm_std.detach().to("cpu", torch.float32).numpy().astype("<f4")
    _native.write_checkpoint(
        os.fspath(path),
        module.arch,
        module.sizes,
        params.tobytes(),
        ema_flat,
        mean.tobytes(),
        std.tobytes(),
        str(data),
        flags,
        int(step),
    )


def load_checkpoint(path: Union[str, "os.PathLike[str]"], *, ema: bool = True) -> Union[ScoreNet, ScoreNetConv]:
    """Reads a checkpoint (``tinyscore train``'s, with ``--arch mlp`` or ``--arch conv``, or
    :func:`export`'s) into a :class:`ScoreNet` or a :class:`ScoreNetConv`, as its ``arch``
    says: the EMA weights (``ema=False``: the raw ones), the normalisation and the process. Its
    ``checkpoint`` attribute holds the rest (``step``, ``data``). Raises
    :class:`tinyscore.CheckpointError` for a file the reader refuses."""
    c = _native.read_checkpoint(os.fspath(path))
    process = c["process"]
    settings: Dict[str, Any] = dict(
        process=process,
        schedule=c["schedule"] if process == "vp" else None,
        diffusion_steps=c["diffusion_steps"],
    )
    sizes = c["sizes"]
    net: Union[ScoreNet, ScoreNetConv]
    if c["arch"] == "conv":
        net = ScoreNetConv(**sizes, **settings)
    else:
        net = ScoreNet(sizes["dim"], sizes["hidden"], sizes["blocks"], sizes["freqs"], **settings)
    net.load_flat_parameters(np.frombuffer(c["ema" if ema else "params"], dtype="<f4"))
    with torch.no_grad():
        net.norm_mean.copy_(torch.from_numpy(np.frombuffer(c["mean"], dtype="<f4").copy()))
        net.norm_std.copy_(torch.from_numpy(np.frombuffer(c["std"], dtype="<f4").copy()))
    net.checkpoint = {"step": c["step"], "data": c["data"]}
    return net
