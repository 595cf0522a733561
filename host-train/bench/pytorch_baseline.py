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


class Run:
    """Network, optimiser, EMA and one DSM step (`step()`), on static buffers so that the
    step can be captured as a CUDA graph."""

    def __init__(self, torch, data, hidden, freqs, blocks, batch, lr, device, graph, ema=0.999):
        self.torch = torch
        self.data = data
        self.batch = batch
        dim = data.shape[1]
        self.net = build(torch, dim, hidden, freqs, blocks, device)
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
        x_t = self.alpha[n, None] * x0 + self.sigma[n, None] * eps
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
    p.add_argument("mode", nargs="?", default="bench", choices=["bench", "train", "names"])
    ints = lambda s: [int(v) for v in s.split(",")]
    p.add_argument("--widths", type=ints, default=[128, 256, 512])
    p.add_argument("--batches", type=ints, default=[256, 4096, 65536])
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
    else:
        bench(args)


if __name__ == "__main__":
    main()
