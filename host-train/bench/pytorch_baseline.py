#!/usr/bin/env python3
"""PyTorch baseline of tinyscore's training step, and a PyTorch path to the device.

The same ScoreNet as docs/scorenet.md, the same DSM step (discrete VP, linear beta 1e-4..0.02,
N = 1000, epsilon-prediction, mean squared error), global-norm clipping at 1.0, Adam
(0.9, 0.999, 1e-8) and an EMA of the weights (0.999), in PyTorch:

  bench   (default) iterations/s over a grid of widths and batch sizes, eager and with the whole
          step captured as a CUDA graph, beside the FLOP count of a step and the fraction of
          the GPU's FP32 peak (the same table as `tinyscore bench-train`):
              python3 host-train/bench/pytorch_baseline.py --widths 128,256,512 \\
                  --batches 256,4096,65536
  train   trains on a CSV file (e.g. `tinyscore data moons --out moons.csv`) and saves the EMA
          weights as .safetensors with tinyscore's tensor names, which `tinyscore convert`
          accepts:
              python3 host-train/bench/pytorch_baseline.py train --data moons.csv \\
                  --steps 8000 --save moons-torch.safetensors
              tinyscore convert moons-torch.safetensors --out moons-torch.tsm
  names   prints the tensor names and shapes `train` writes (no torch needed; the test suite
          checks them against the engine's parameter list).
  bench-conv
          the same timing for the 1-D conv U-Net of `engine/src/graph/unet.rs` (ScoreNet-conv,
          docs/scorenet.md) on (C, L) signals: Conv1d with zero "same" padding d*(K-1)/2,
          stride-2 downsampling, nearest 2x upsampling, residual and skip adds, and per residual
          block a Linear projection of silu(temb) added per channel; the sizes as
          --unet C,L,width,levels,blocks,K,F,T (the default is the GPU test
          `bench_conv_unet_steps_per_second`'s, which times tinyscore's CUDA trainer on it):
              python3 host-train/bench/pytorch_baseline.py bench-conv --batches 256,1024

Needs: pip install torch safetensors numpy (a CUDA build of torch for the GPU numbers).
TF32 is disabled so that both sides run FP32 arithmetic.
"""

import argparse
import math
import sys
import time


def tensor_names(dim, hidden, freqs, blocks):
    """tinyscore's parameter list (engine `Dims::params`, `Role::name`): (name, shape)."""
    out = [("time.w1", (hidden, freqs)), ("time.b1", (hidden,)), ("time.w2", (hidden, hidden)),
           ("time.b2", (hidden,)), ("input.w", (hidden, dim)), ("input.b", (hidden,))]
    for b in range(blocks):
        out += [(f"blocks.{b}.w1", (hidden, hidden)), (f"blocks.{b}.b1", (hidden,)),
                (f"blocks.{b}.w2", (hidden, hidden)), (f"blocks.{b}.b2", (hidden,))]
    out += [("output.w", (dim, hidden)), ("output.b", (dim,))]
    return out


def step_flops(dim, hidden, freqs, blocks, batch):
    """As `tinyscore bench-train`: 3 products per linear layer, less the two input gradients."""
    macs = freqs * hidden + hidden * hidden + dim * hidden + 2 * blocks * hidden * hidden + hidden * dim
    return 2.0 * batch * (3.0 * macs - freqs * hidden - dim * hidden)


def build(torch, dim, hidden, freqs, blocks, device):
    nn = torch.nn
    F = torch.nn.functional

    class ScoreNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.time1 = nn.Linear(freqs, hidden)
            self.time2 = nn.Linear(hidden, hidden)
            self.input = nn.Linear(dim, hidden)
            self.w1 = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(blocks)])
            self.w2 = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(blocks)])
            self.output = nn.Linear(hidden, dim)
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)
            half = freqs // 2
            k = torch.arange(half, dtype=torch.float32)
            self.register_buffer("omega", torch.exp(-math.log(10000.0) * k / half))

        def features(self, t):
            s = 1000.0 * t[:, None] * self.omega[None, :]
            return torch.cat([torch.sin(s), torch.cos(s)], dim=1)

        def forward(self, x, t):
            temb = self.time2(F.silu(self.time1(self.features(t))))
            h = self.input(x)
            for l1, l2 in zip(self.w1, self.w2):
                u = l1(F.silu(h)) + temb
                h = h + l2(F.silu(u))
            return self.output(F.silu(h))

        def tinyscore_state(self):
            """The weights under tinyscore's names (nn.Linear's (out, in) layout is ours)."""
            d = {"time.w1": self.time1.weight, "time.b1": self.time1.bias,
                 "time.w2": self.time2.weight, "time.b2": self.time2.bias,
                 "input.w": self.input.weight, "input.b": self.input.bias,
                 "output.w": self.output.weight, "output.b": self.output.bias}
            for b, (l1, l2) in enumerate(zip(self.w1, self.w2)):
                d[f"blocks.{b}.w1"], d[f"blocks.{b}.b1"] = l1.weight, l1.bias
                d[f"blocks.{b}.w2"], d[f"blocks.{b}.b2"] = l2.weight, l2.bias
            return d

    return ScoreNet().to(device)


def unet_step_flops(c, length, width, levels, blocks, k, freqs, temb, batch):
    """FLOPs of one training step of the U-Net: 3 products per layer (forward, weight and input
    gradient), less the input gradients of the two layers that read x_t and phi."""
    ch = lambda i: width * min(i + 1, 2)
    macs, skip = [], []
    conv = lambda l_out, c_in, c_out: macs.append(l_out * c_in * c_out * k)
    macs.append(freqs * temb); skip.append(freqs * temb)
    macs.append(temb * temb)
    block_ch = [ch(i) for i in range(levels) for _ in range(blocks)] + [ch(levels)] * blocks \
        + [ch(i) for i in reversed(range(levels)) for _ in range(blocks)]
    macs.extend(temb * cb for cb in block_ch)
    l = length
    conv(l, c, ch(0)); skip.append(l * c * ch(0) * k)
    for i in range(levels):
        for _ in range(blocks):
            conv(l, ch(i), ch(i)); conv(l, ch(i), ch(i))
        l = (l + 1) // 2
        conv(l, ch(i), ch(i + 1))
    for _ in range(blocks):
        conv(l, ch(levels), ch(levels)); conv(l, ch(levels), ch(levels))
    for i in reversed(range(levels)):
        l *= 2
        conv(l, ch(i + 1), ch(i))
        for _ in range(blocks):
            conv(l, ch(i), ch(i)); conv(l, ch(i), ch(i))
    conv(l, ch(0), c)
    return 2.0 * batch * (3.0 * sum(macs) - sum(skip))


def build_unet(torch, c, length, width, levels, blocks, k, freqs, temb, device):
    """engine/src/graph/unet.rs in PyTorch: the same layers, order and shapes (channel-major
    (batch, C, L) tensors; the trainer's channels-last layout is internal)."""
    nn = torch.nn
    F = torch.nn.functional
    if length % (1 << levels):
        sys.exit(f"error: --unet: L = {length} is not a multiple of 2^levels = {1 << levels}")
    ch = lambda i: width * min(i + 1, 2)
    conv = lambda c_in, c_out, stride=1: nn.Conv1d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2)

    class Block(nn.Module):
        """resblock(c): u = conv(silu(h)) + p (per channel); h = conv(silu(u)) + h."""

        def __init__(self, ch_):
            super().__init__()
            self.proj = nn.Linear(temb, ch_)
            self.c1, self.c2 = conv(ch_, ch_), conv(ch_, ch_)

        def forward(self, h, ts):
            u = self.c1(F.silu(h)) + self.proj(ts)[:, :, None]
            return h + self.c2(F.silu(u))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.time1, self.time2 = nn.Linear(freqs, temb), nn.Linear(temb, temb)
            self.input = conv(c, ch(0))
            self.down = nn.ModuleList([nn.ModuleList([Block(ch(i)) for _ in range(blocks)]) for i in range(levels)])
            self.downsample = nn.ModuleList([conv(ch(i), ch(i + 1), stride=2) for i in range(levels)])
            self.mid = nn.ModuleList([Block(ch(levels)) for _ in range(blocks)])
            self.upconv = nn.ModuleList([conv(ch(i + 1), ch(i)) for i in range(levels)])
            self.up = nn.ModuleList([nn.ModuleList([Block(ch(i)) for _ in range(blocks)]) for i in range(levels)])
            self.output = conv(ch(0), c)
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)
            half = freqs // 2
            kk = torch.arange(half, dtype=torch.float32)
            self.register_buffer("omega", torch.exp(-math.log(10000.0) * kk / half))

        def forward(self, x, t):
            s = 1000.0 * t[:, None] * self.omega[None, :]
            phi = torch.cat([torch.sin(s), torch.cos(s)], dim=1)
            ts = F.silu(self.time2(F.silu(self.time1(phi))))
            h = self.input(x)
            skips = []
            for blocks_, down in zip(self.down, self.downsample):
                for b in blocks_:
                    h = b(h, ts)
                skips.append(h)
                h = down(h)
            for b in self.mid:
                h = b(h, ts)
            for i in reversed(range(levels)):
                h = self.upconv[i](F.interpolate(h, scale_factor=2, mode="nearest")) + skips.pop()
                for b in self.up[i]:
                    h = b(h, ts)
            return self.output(F.silu(h))

    return UNet().to(device)


class Run:
    """Network, optimiser, EMA and one DSM step (`step()`), on static buffers so that the
    step can be captured as a CUDA graph."""

    def __init__(self, torch, data, hidden, freqs, blocks, batch, lr, device, graph, ema=0.999, net=None):
        self.torch = torch
        self.data = data
        self.batch = batch
        dim = data.shape[1]
        self.net = net if net is not None else build(torch, dim, hidden, freqs, blocks, device)
        n_steps = 1000
        betas = torch.linspace(1e-4, 0.02, n_steps, dtype=torch.float64)
        abar = torch.cumprod(1.0 - betas, 0)
        self.alpha = torch.cat([torch.ones(1, dtype=torch.float64), abar.sqrt()]).float().to(device)
        self.sigma = torch.cat([torch.zeros(1, dtype=torch.float64), (1 - abar).sqrt()]).float().to(device)
        self.n_steps = n_steps
        params = list(self.net.parameters())
        # capturable Adam keeps its step count on the GPU (no host synchronisation).
        self.opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                    capturable=graph, foreach=True)
        self.ema = [p.detach().clone() for p in params]
        self.ema_decay = ema
        self.params = params
        self.loss = torch.zeros((), device=device)
        self.graph = None
        if graph:
            self.capture()

    def step_body(self):
        torch = self.torch
        idx = torch.randint(0, self.data.shape[0], (self.batch,), device=self.data.device)
        n = torch.randint(1, self.n_steps + 1, (self.batch,), device=self.data.device)
        x0 = self.data[idx]
        eps = torch.randn_like(x0)
        shape = (-1,) + (1,) * (x0.dim() - 1)  # (batch, D) or (batch, C, L)
        x_t = self.alpha[n].view(shape) * x0 + self.sigma[n].view(shape) * eps
        t = n.float() / self.n_steps
        loss = torch.mean((self.net(x_t, t) - eps) ** 2)
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
        self.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, self.params, 1.0 - self.ema_decay)
            self.loss.copy_(loss.detach())

    def capture(self):
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm up on a side stream, as torch.cuda.graphs asks
                self.step_body()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step_body()

    def step(self):
        if self.graph is not None:
            self.graph.replay()
        else:
            self.step_body()


def bench(args):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    peak = args.peak_tflops
    if peak is None and "H100" in name:
        peak = 51.2 if "PCIe" in name else 66.9
    torch.manual_seed(0)
    data = torch.randn(20000, 2, device=device)
    modes = ["eager"] + (["graph"] if device == "cuda" and not args.no_graph else [])
    print(f"{'mode':>6} {'width':>6} {'batch':>7} {'steps/s':>11} {'examples/s':>14} {'GFLOP/step':>11} "
          f"{'TFLOP/s':>9} {'% peak':>8}")
    for mode in modes:
        for width in args.widths:
            for batch in args.batches:
                run = Run(torch, data, width, args.freqs, args.blocks, batch, 1e-3, device, mode == "graph")
                for _ in range(10):
                    run.step()
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    run.step()
                if device == "cuda":
                    torch.cuda.synchronize()
                secs = time.perf_counter() - t0
                if not math.isfinite(run.loss.item()):
                    sys.exit(f"error: width {width} batch {batch}: the loss is not finite")
                rate = args.steps / secs
                flops = step_flops(2, width, args.freqs, args.blocks, batch)
                tf = flops * rate / 1e12
                pct = f"{100 * tf / peak:.1f}" if peak else "-"
                print(f"{mode:>6} {width:>6} {batch:>7} {rate:>11.1f} {rate * batch:>14.0f} {flops / 1e9:>11.3f} "
                      f"{tf:>9.3f} {pct:>8}", flush=True)
                del run
    print(f"# device: {name}; torch {torch.__version__}; B={args.blocks} F={args.freqs} D=2; "
          f"{args.steps} timed steps after 10 warm-up; TF32 off; peak: {peak} TFLOP/s FP32")


def bench_conv(args):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    c, length, width, levels, blocks, k, freqs, temb = args.unet
    torch.manual_seed(0)
    data = torch.randn(4000, c, length, device=device)
    modes = ["eager"] + (["graph"] if device == "cuda" and not args.no_graph else [])
    print(f"{'mode':>6} {'batch':>7} {'steps/s':>11} {'examples/s':>14} {'GFLOP/step':>11} {'TFLOP/s':>9}")
    for mode in modes:
        for batch in args.batches or [256, 1024]:
            net = build_unet(torch, c, length, width, levels, blocks, k, freqs, temb, device)
            run = Run(torch, data, 0, freqs, 0, batch, 1e-3, device, mode == "graph", net=net)
            for _ in range(10):
                run.step()
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                run.step()
            if device == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            if not math.isfinite(run.loss.item()):
                sys.exit(f"error: batch {batch}: the loss is not finite")
            rate = args.steps / secs
            flops = unet_step_flops(c, length, width, levels, blocks, k, freqs, temb, batch)
            print(f"{mode:>6} {batch:>7} {rate:>11.1f} {rate * batch:>14.0f} {flops / 1e9:>11.3f} "
                  f"{flops * rate / 1e12:>9.3f}", flush=True)
            del run, net
    print(f"# device: {name}; torch {torch.__version__}; conv U-Net C={c} L={length} width={width} "
          f"levels={levels} blocks={blocks} K={k} F={freqs} T={temb}; {args.steps} timed steps after 10 "
          f"warm-up; TF32 off")


def train(args):
    import numpy as np
    import torch
    from safetensors.torch import save_file
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    raw = np.loadtxt(args.data, delimiter=",", dtype=np.float64, ndmin=2)
    if raw.size == 0 or not np.all(np.isfinite(raw)):
        sys.exit(f"error: {args.data}: no data, or a value that is not a finite number")
    mean, std = raw.mean(0), raw.std(0)
    std = np.where(std > 0, std, 1.0)
    data = torch.tensor((raw - mean) / std, dtype=torch.float32, device=device)
    run = Run(torch, data, args.hidden, args.freqs, args.blocks, args.batch, args.lr, device, graph=False,
              ema=args.ema)
    for i in range(args.steps):
        run.step()
        if (i + 1) % 1000 == 0:
            print(f"step {i + 1}: loss {run.loss.item():.4f}", file=sys.stderr)
    ema_of = {id(p): e for p, e in zip(run.params, run.ema)}
    state = {name: ema_of[id(p)].detach().float().cpu().contiguous()
             for name, p in run.net.tinyscore_state().items()}
    want = dict(tensor_names(data.shape[1], args.hidden, args.freqs, args.blocks))
    got = {name: tuple(t.shape) for name, t in state.items()}
    if got != want:
        sys.exit(f"error: internal: tensor names/shapes {got} differ from tinyscore's {want}")
    state["norm.mean"] = torch.tensor(mean, dtype=torch.float32)
    state["norm.std"] = torch.tensor(std, dtype=torch.float32)
    meta = {"process": "vp", "schedule": "linear:0.0001:0.02", "diffusion_steps": "1000",
            "data": args.data, "step": str(args.steps)}
    save_file(state, args.save, metadata=meta)
    print(f"saved {len(state) - 2} tensors (EMA weights) and the normalisation to {args.save}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="bench", choices=["bench", "bench-conv", "train", "names"])
    ints = lambda s: [int(v) for v in s.split(",")]
    p.add_argument("--widths", type=ints, default=[128, 256, 512])
    p.add_argument("--batches", type=ints, default=None, help="bench: 256,4096,65536; bench-conv: 256,1024")
    p.add_argument("--unet", type=ints, default=[1, 256, 32, 3, 1, 3, 32, 64],
                   help="bench-conv: C,L,width,levels,blocks,K,F,T of the U-Net")
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--freqs", type=int, default=32)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--no-graph", action="store_true", help="bench: eager only")
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--data", help="train: CSV file, one example per line")
    p.add_argument("--save", help="train: output .safetensors")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--dim", type=int, default=2, help="names: data dimension")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ema", type=float, default=0.999, help="train: EMA decay of the saved weights")
    args = p.parse_args()
    if args.freqs <= 0 or args.freqs % 2:
        sys.exit("error: --freqs must be even and positive")
    if args.mode == "names":
        for name, shape in tensor_names(args.dim, args.hidden, args.freqs, args.blocks):
            print(name, *shape)
    elif args.mode == "train":
        if not args.data or not args.save:
            sys.exit("error: train needs --data FILE.csv and --save OUT.safetensors")
        train(args)
    elif args.mode == "bench-conv":
        if len(args.unet) != 8:
            sys.exit("error: --unet takes 8 numbers: C,L,width,levels,blocks,K,F,T")
        bench_conv(args)
    else:
        args.batches = args.batches or [256, 4096, 65536]
        bench(args)


if __name__ == "__main__":
    main()
