#!/usr/bin/env python3
"""tinyscore's engine beside ONNX Runtime on the same ScoreNet, one thread, batch 1 and 256.

From a tinyscore checkpoint (.safetensors, the EMA weights, as `tinyscore convert` takes them)
this script builds the network as an ONNX graph. A ScoreNet-conv checkpoint (`train --arch
conv`, the 1-D U-Net) is exported from `tinyscore.torch.load_checkpoint`'s module by
`torch.onnx.export` (opset 17; needs torch and the tinyscore Python package; the time branch
runs once per row there, a negligible part of a convolutional evaluation). A ScoreNet v1 (MLP)
checkpoint is built node by node (opset 13):

  inputs   x (B, D) normalised, t (1, 1): one time for the whole batch, as a sampler calls it
  phi      [sin(w * 1000 t), cos(w * 1000 t)] computed INSIDE the graph (Mul, Sin, Cos, Concat)
  temb     Gemm -> SiLU -> Gemm  (1, H), added to every row of the batch (broadcast)
  blocks   h + Gemm(SiLU(Gemm(SiLU(h)) + b1 + temb)) ...    SiLU(v) = v * Sigmoid(v)
  out      Gemm(SiLU(h))                                                      (B, D)

so ONNX Runtime does the same work per call as `ScoreNet::eps_batch` (the time embedding once
per call, every matrix product in f32). It then

  1. checks ORT's output against `tinyscore bench MODEL --eval-csv` (the engine itself) on 16
     inputs at 4 times: max |ort - engine| <= 1e-4 + 1e-4 |engine| (the two sum in different
     orders, and ORT may fuse multiply-adds, so bits differ; the tolerance is the one
     tools/tests/consistency.rs holds the engine and the trainer to);
  2. times ORT with intra_op_num_threads = inter_op_num_threads = 1, sequential execution, all
     graph optimisations, at batch 1 and 256: the fastest of `--repeats` rounds of ~50 ms (the
     rule `tinyscore bench` uses, so load from other processes affects both alike);
  3. runs `tinyscore bench MODEL --batch 1` and `--batch 256` (one thread, AVX2 build where the
     CPU has it) and prints one table with both, and each one's fraction of the core's peak.

Peak of one core, stated assumptions: f32, 8 lanes per AVX2 register, two 256-bit FMA pipes
(AMD Zen 3 and most AVX2 cores): 16 multiply-accumulates per cycle (32 flop/cycle), times the
clock given by --ghz (default: the "cpu MHz" of /proc/cpuinfo). The engine does not use FMA
(it keeps separate multiplies and adds so its bits match the Cortex-M4); on Zen 3 a separate
multiply and add also issue 16 MACs per cycle (two FMUL and two FADD pipes), so the same peak
applies to both.

Install the dependencies:  pip install onnx onnxruntime numpy safetensors
Usage:
  cargo build --release -p tinyscore-tools
  target/release/tinyscore train --data moons --steps 3000 --out moons.safetensors
  target/release/tinyscore convert moons.safetensors --quant f32 --out moons-f32.tsm
  target/release/tinyscore convert moons.safetensors --quant w8a8 --out moons-w8a8.tsm
  python3 bench/onnx_compare.py --checkpoint moons.safetensors --model moons-f32.tsm \
      [--model-int8 moons-w8a8.tsm] [--tinyscore target/release/tinyscore] [--onnx-out moons.onnx] \
      [--cpu-time]    # time by the measuring thread's CPU time (a loaded machine)
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file
except ImportError as e:  # pragma: no cover - a missing dependency is a user error
    sys.exit(f"error: {e.name} is missing: pip install onnx onnxruntime numpy safetensors")

LN_10000 = 9.2103404


def weights(path):
    """The EMA weights of a checkpoint (or the raw ones where no EMA copy exists)."""
    tensors = load_file(path)
    names = [k for k in tensors if not k.startswith("ema.") and not k.startswith("adam")]
    out = {}
    for k, v in tensors.items():
        if k.startswith("ema."):
            out[k[4:]] = v.astype(np.float32)
    for k in names:
        out.setdefault(k, tensors[k].astype(np.float32))
    return out


def build_graph(w):
    dim = w["input.w"].shape[1]
    hidden = w["input.w"].shape[0]
    freqs = w["time.w1"].shape[1]
    blocks = 0
    while f"blocks.{blocks}.w1" in w:
        blocks += 1
    half = freqs // 2
    # The frequencies exactly as the engine computes them in f32 (net::frequency), times 1000.
    omega = np.array(
        [np.exp(np.float32(-LN_10000) * np.float32(k) / np.float32(half)) for k in range(half)],
        dtype=np.float32,
    )
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def gemm(x, wname, bname, out):
        nodes.append(helper.make_node("Gemm", [x, const(wname, w[wname]), const(bname, w[bname])], [out], transB=1))
        return out

    def silu(x, out):
        nodes.append(helper.make_node("Sigmoid", [x], [out + ".sig"]))
        nodes.append(helper.make_node("Mul", [x, out + ".sig"], [out]))
        return out

    # phi(t) = [sin(omega * 1000 t), cos(omega * 1000 t)]: (1, F)
    nodes.append(helper.make_node("Mul", ["t", const("t_scale", np.float32(1000.0))], ["s"]))
    nodes.append(helper.make_node("Mul", ["s", const("omega", omega.reshape(1, half))], ["arg"]))
    nodes.append(helper.make_node("Sin", ["arg"], ["sin"]))
    nodes.append(helper.make_node("Cos", ["arg"], ["cos"]))
    nodes.append(helper.make_node("Concat", ["sin", "cos"], ["phi"], axis=1))
    silu(gemm("phi", "time.w1", "time.b1", "t1"), "t1a")
    gemm("t1a", "time.w2", "time.b2", "temb")
    h = gemm("x", "input.w", "input.b", "h0")
    for b in range(blocks):
        a = silu(h, f"a{b}")
        u0 = gemm(a, f"blocks.{b}.w1", f"blocks.{b}.b1", f"u{b}.0")
        nodes.append(helper.make_node("Add", [u0, "temb"], [f"u{b}"]))
        v = silu(f"u{b}", f"v{b}")
        r = gemm(v, f"blocks.{b}.w2", f"blocks.{b}.b2", f"r{b}")
        nodes.append(helper.make_node("Add", [h, r], [f"h{b + 1}"]))
        h = f"h{b + 1}"
    gemm(silu(h, "aout"), "output.w", "output.b", "eps")
    graph = helper.make_graph(
        nodes,
        "scorenet",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", dim]),
            helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 1]),
        ],
        [helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["B", dim])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    macs = hidden * freqs + hidden * hidden + hidden * dim + blocks * 2 * hidden * hidden + dim * hidden
    return model, dim, macs


def checkpoint_arch(path):
    """`mlp` or `conv`, as the checkpoint's metadata says (ScoreNet v1 files may predate it)."""
    from safetensors import safe_open

    with safe_open(path, "np") as f:
        return (f.metadata() or {}).get("arch", "mlp")


def conv_macs(tinyscore, model_path):
    """MACs per evaluation, as `tinyscore inspect` states them."""
    out = subprocess.run([tinyscore, "inspect", model_path], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "MACs per evaluation" in line:
            return int(line.split("parameters,")[1].split()[0])
    sys.exit(f"error: `tinyscore inspect {model_path}` states no MACs per evaluation")


def export_conv(path):
    """The ScoreNet-conv of checkpoint `path` as an ONNX model with the MLP graph's interface:
    x (B, C·L) normalised, channel-major; t (1, 1); eps (B, C·L)."""
    try:
        import io

        import torch
        from tinyscore.torch import load_checkpoint
    except ImportError as e:  # pragma: no cover - a missing dependency is a user error
        sys.exit(f"error: a conv checkpoint needs torch and the tinyscore Python package ({e.name} is missing)")

    net = load_checkpoint(path).eval()

    class Eps(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, t):
            return self.net(x, t.reshape(-1).expand(x.shape[0]))

    dim = net.channels * net.length
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            Eps(), (torch.zeros(2, dim), torch.full((1, 1), 0.5)), buf, input_names=["x", "t"],
            output_names=["eps"], dynamic_axes={"x": {0: "B"}, "eps": {0: "B"}}, opset_version=17, dynamo=False,
        )
    model = onnx.load_from_string(buf.getvalue())
    onnx.checker.check_model(model)
    return model, dim


def session(model_bytes):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def check(sess, tinyscore, model_path, dim):
    rng = np.random.default_rng(7)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for t in (0.001, 0.3, 0.7, 1.0):
            x = rng.normal(size=(16, dim)).astype(np.float32)
            got = sess.run(None, {"x": x, "t": np.array([[t]], dtype=np.float32)})[0]
            csv = os.path.join(tmp, "in.csv")
            with open(csv, "w") as f:
                for row in x:
                    f.write(",".join([repr(float(np.float32(t)))] + [repr(float(v)) for v in row]) + "\n")
            out = subprocess.run(
                [tinyscore, "bench", model_path, "--eval-csv", csv], check=True, capture_output=True, text=True
            ).stdout
            want = np.array([[float(v) for v in line.split(",")] for line in out.split()], dtype=np.float64)
            err = np.abs(got - want)
            bound = 1e-4 + 1e-4 * np.abs(want)
            if not np.all(err <= bound):
                sys.exit(f"error: ONNX Runtime and the engine disagree at t={t}: max |diff| {err.max():.3g}")
            worst = max(worst, float(err.max()))
    return worst


def time_ort(sess, dim, batch, seconds, clock=time.perf_counter):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    ts = [np.array([[(i % 1000 + 1) / 1000.0]], dtype=np.float32) for i in range(1000)]
    calls, warm = 0, time.perf_counter()
    while time.perf_counter() - warm < seconds / 10:
        sess.run(None, {"x": x, "t": ts[calls % 1000]})
        calls += 1
    per_round = max(1, int(calls / (seconds / 10) * 0.05))
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        r0 = clock()
        for _ in range(per_round):
            sess.run(None, {"x": x, "t": ts[calls % 1000]})
            calls += 1
        best = min(best, max(clock() - r0, 1e-12) / per_round)
    return batch / best  # evaluations per second


def time_tinyscore(tinyscore, model_path, batch, seconds, precision="f32", cpu_time=False):
    out = subprocess.run(
        [tinyscore, "bench", model_path, "--batch", str(batch), "--seconds", str(seconds)]
        + (["--cpu-time"] if cpu_time else []),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    # The row of the file itself (its precision in the second column, no conversion arrow).
    row = next(line for line in out[2:] if line.split()[1:2] == [precision])
    return float(row.split()[-3]), out[0]


def int8_session(model):
    """ONNX Runtime's own int8 version of the graph: dynamic quantization of every Gemm/MatMul
    (int8 weights, activations quantized per call), the usual way to run int8 on a CPU in ORT."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "f32.onnx"), os.path.join(d, "int8.onnx")
        onnx.save(model, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        with open(dst, "rb") as f:
            return session(f.read())


def cpu_ghz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) / 1000.0
    except OSError:
        pass
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="tinyscore checkpoint (.safetensors)")
    p.add_argument("--model", required=True, help="the same checkpoint converted with --quant f32 (.tsm)")
    p.add_argument("--tinyscore", default="target/release/tinyscore")
    p.add_argument("--seconds", type=float, default=2.0, help="measurement time per row")
    p.add_argument("--ghz", type=float, default=None, help="core clock for the peak (default /proc/cpuinfo)")
    p.add_argument("--onnx-out", default=None, help="also write the ONNX model here")
    p.add_argument("--cpu-time", action="store_true", help="time both by the measuring thread's CPU time "
                   "(time.thread_time; `tinyscore bench --cpu-time`) instead of the wall clock, so that "
                   "waiting for a core on a loaded machine does not count (ORT with one intra-op thread "
                   "computes in the calling thread)")
    p.add_argument("--model-int8", default=None, help="the same checkpoint converted with --quant w8a8 (.tsm): adds "
                   "its rows, and ONNX Runtime's dynamically quantized int8 graph beside them")
    p.add_argument("--batches", default="1,256", help="comma-separated batch sizes (default 1,256)")
    a = p.parse_args()
    for path in (a.checkpoint, a.model, a.tinyscore) + ((a.model_int8,) if a.model_int8 else ()):
        if not os.path.exists(path):
            sys.exit(f"error: {path}: no such file")
    try:
        batches = [int(b) for b in a.batches.split(",")]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1 or max(batches) > 4096:
        sys.exit(f"error: --batches {a.batches!r}: give batch sizes from 1 to 4096, comma-separated")

    if checkpoint_arch(a.checkpoint) == "conv":
        model, dim = export_conv(a.checkpoint)
        macs = conv_macs(a.tinyscore, a.model)
    else:
        model, dim, macs = build_graph(weights(a.checkpoint))
    if a.onnx_out:
        onnx.save(model, a.onnx_out)
    sess = session(model.SerializeToString())
    worst = check(sess, a.tinyscore, a.model, dim)
    ghz = a.ghz or cpu_ghz()
    peak = 16 * ghz if ghz else None  # GMAC/s of one core

    sess8 = int8_session(model) if a.model_int8 else None
    rows = []
    clock = time.thread_time if a.cpu_time else time.perf_counter
    for batch in batches:
        ort_rate = time_ort(sess, dim, batch, a.seconds, clock)
        ts_rate, path = time_tinyscore(a.tinyscore, a.model, batch, a.seconds, cpu_time=a.cpu_time)
        row = [batch, ort_rate, ts_rate]
        if a.model_int8:
            row.append(time_ort(sess8, dim, batch, a.seconds, clock))
            row.append(time_tinyscore(a.tinyscore, a.model_int8, batch, a.seconds, "w8a8", a.cpu_time)[0])
        rows.append(row)
    clock_name = "thread CPU time" if a.cpu_time else "wall clock"
    print(f"ONNX Runtime {ort.__version__} vs tinyscore ({path.split(';')[0]}), {macs} MACs per evaluation, "
          f"timed by the {clock_name}")
    print(f"agreement: max |ort - engine| = {worst:.2e} on 64 inputs (bound 1e-4 + 1e-4|engine|)")
    if peak:
        print(f"peak of one core: 16 MAC/cycle x {ghz:.2f} GHz = {peak:.1f} GMAC/s (assumptions in --help)")
    print()
    frac = lambda r: f"{100 * r * macs / 1e9 / peak:.1f}%" if peak else "-"
    head = "| batch | ORT f32 ns/eval | tinyscore f32 ns/eval | tinyscore f32 / ORT f32 speed |"
    if a.model_int8:
        head += " ORT int8 ns/eval | tinyscore w8a8 ns/eval | tinyscore w8a8 / ORT f32 | tinyscore w8a8 / ORT int8 |"
    head += " ORT f32 % of peak | tinyscore f32 % of peak |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for row in rows:
        batch, o, t = row[:3]
        line = f"| {batch} | {1e9 / o:.0f} | {1e9 / t:.0f} | {t / o:.2f}x |"
        if a.model_int8:
            o8, t8 = row[3:]
            line += f" {1e9 / o8:.0f} | {1e9 / t8:.0f} | {t8 / o:.2f}x | {t8 / o8:.2f}x |"
        line += f" {frac(o)} | {frac(t)} |"
        print(line)


if __name__ == "__main__":
    main()
