#!/usr/bin/env python3
"""Instructions per network evaluation of the aarch64 `tinyscore` under qemu-aarch64, NEON kernels
against the portable ones, and a check that both give the same bits.

Debian's qemu-user ships no TCG plugins, so this counts with QEMU's own logs: `-d in_asm` prints
each translated block (TB) with its guest instructions, `-d exec,nochain` one line per executed
TB (no chaining, so every execution is logged). Executed instructions = Σ over executed TBs of
their instruction count. Each model is run with `tinyscore bench MODEL --eval-csv IN.csv
[--portable]` on N1 and N2 inputs; (count(N2) − count(N1)) / (N2 − N1) is the count of one
evaluation without start-up and file parsing. The ε̂ printed by both kernel choices (and by the
x86-64 build, if given) must be byte-identical, or the script fails.

Usage:
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \\
    cargo build --release -p tinyscore-tools --target aarch64-unknown-linux-gnu
  python3 bench/aarch64_insns.py --tinyscore target/aarch64-unknown-linux-gnu/release/tinyscore \\
      --host target/release/tinyscore firmware-example/models/moons-f32.tsm ...
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile

TRACE = re.compile(rb"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
INSN = re.compile(rb"^0x([0-9a-f]+):")


def dim_of(host_or_qemu, model):
    """D of the model, from `tinyscore inspect` (its 'D =' or shape line)."""
    out = subprocess.run(host_or_qemu + ["inspect", model], capture_output=True, check=True).stdout.decode()
    m = re.search(r"\bD=(\d+)", out) or re.search(r"points in R\^(\d+)", out)
    if not m:
        sys.exit(f"cannot find the model's dimension in `tinyscore inspect {model}`")
    return int(m.group(1))


def write_inputs(path, d, n, seed):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            t = rng.uniform(0.0, 1.0)
            f.write(",".join([f"{t:.6f}"] + [f"{rng.gauss(0, 1):.6f}" for _ in range(d)]) + "\n")


def count(qemu, exe, args, log):
    """Executed guest instructions of `exe args` (and its stdout)."""
    cmd = qemu + ["-d", "in_asm,exec,nochain", "-D", log, exe] + args
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    sizes, execs = {}, {}
    with open(log, "rb") as f:
        cur, n = None, 0
        for line in f:
            if line.startswith(b"IN:"):
                cur, n = None, 0
                continue
            m = INSN.match(line)
            if m:
                if cur is None:
                    cur = int(m.group(1), 16)
                n += 1
                continue
            if cur is not None and not line.strip():
                sizes[cur] = n  # the latest translation of a block at this pc
                cur, n = None, 0
                continue
            m = TRACE.match(line)
            if m:
                pc = int(m.group(1), 16)
                execs[pc] = execs.get(pc, 0) + 1
        if cur is not None:
            sizes[cur] = n
    os.remove(log)
    missing = [pc for pc in execs if pc not in sizes]
    if missing:
        sys.exit(f"{len(missing)} executed blocks were never logged as translated (first {missing[0]:#x})")
    return sum(sizes[pc] * k for pc, k in execs.items()), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help=".tsm files")
    ap.add_argument("--tinyscore", required=True, help="the aarch64 tinyscore binary")
    ap.add_argument("--host", help="the host (x86-64) tinyscore binary: its ε̂ must match too")
    ap.add_argument("--qemu", default="qemu-aarch64 -L /usr/aarch64-linux-gnu", help="the qemu-user command")
    ap.add_argument("--n1", type=int, default=4, help="evaluations of the short run")
    ap.add_argument("--n2", type=int, default=24, help="evaluations of the long run")
    a = ap.parse_args()
    qemu = a.qemu.split()
    tmp = tempfile.mkdtemp(prefix="a64insns-")
    print("| model | MACs/eval | portable instr/eval | NEON instr/eval | NEON / portable | bits |")
    print("| --- | --- | --- | --- | --- | --- |")
    failed = False
    for model in a.models:
        d = dim_of(qemu + [a.tinyscore], model)
        macs = None
        info = subprocess.run(qemu + [a.tinyscore, "inspect", model], capture_output=True).stdout.decode()
        m = re.search(r"(\d+) MACs per evaluation", info)
        if m:
            macs = int(m.group(1))
        per = {}
        outs = {}
        for kind, extra in (("portable", ["--portable"]), ("neon", [])):
            c = []
            for n in (a.n1, a.n2):
                csv = os.path.join(tmp, f"in{n}.csv")
                write_inputs(csv, d, n, seed=n)
                k, out = count(qemu, a.tinyscore, ["bench", model, "--eval-csv", csv] + extra,
                               os.path.join(tmp, "qemu.log"))
                c.append(k)
                outs[(kind, n)] = out
            per[kind] = (c[1] - c[0]) / (a.n2 - a.n1)
        same = all(outs[("portable", n)] == outs[("neon", n)] for n in (a.n1, a.n2))
        if a.host:
            for n in (a.n1, a.n2):
                csv = os.path.join(tmp, f"in{n}.csv")
                host = subprocess.run([a.host, "bench", model, "--eval-csv", csv], capture_output=True, check=True).stdout
                same = same and host == outs[("neon", n)]
        failed = failed or not same
        name = os.path.basename(model)
        print(f"| {name} | {macs if macs else '?'} | {per['portable']:.0f} | {per['neon']:.0f} | "
              f"{per['neon'] / per['portable']:.3f} | {'identical' if same else 'DIFFER'} |")
    if failed:
        sys.exit("the ε̂ of the kernels (or of the host) differ")


if __name__ == "__main__":
    main()
