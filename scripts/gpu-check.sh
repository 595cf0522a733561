#!/usr/bin/env bash
# Everything issue 5 asks to show on a GPU, in two halves, because the GPU machine has CUDA and
# PyTorch but no Rust:
#
#   bash scripts/gpu-check.sh bundle   # here: builds tinyscore and the GPU test binaries (release)
#                                      # into gpu-bundle/ (git-ignored; carry it to the GPU machine)
#   bash scripts/gpu-check.sh run DIR  # there: runs the kernel and trainer tests against their CPU
#                                      # twins, two GPU runs for bit-identity, bench-train beside the
#                                      # PyTorch baseline (eager and CUDA graphs) for ScoreNet v1 and
#                                      # the conv U-Net, and GPU training of moons and digits; writes
#                                      # DIR/report.txt and DIR/*.csv
#
# Without a GPU `run` reports every GPU test as skipped. The digits set is read from ../shared/data
# or $TINYSCORE_DATA: on the GPU machine carry a copy inside the checkout and point TINYSCORE_DATA at it.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
bundle)
  cargo build --release -p tinyscore-tools
  rm -rf gpu-bundle && mkdir -p gpu-bundle
  cp target/release/tinyscore gpu-bundle/
  # The test executables with GPU tests: kernels' `cuda` and `nvrtc`, and host-train's unit tests
  # (`host-train/src/cuda.rs`).
  cargo test --release --no-run -p tinyscore-kernels -p tinyscore-train --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and m["target"]["name"] in ("cuda", "nvrtc", "tinyscore_train"):
        print(m["executable"])' \
    | while read -r exe; do cp "$exe" gpu-bundle/; done
  cp host-train/bench/pytorch_baseline.py gpu-bundle/
  # Debug info is most of their size; the device call carries 64 MiB at most.
  strip gpu-bundle/tinyscore gpu-bundle/*-*[0-9a-f]
  du -sh gpu-bundle
  ;;
run)
  out="${2:?usage: gpu-check.sh run OUTDIR}"
  set +e  # report every stage, failed ones included
  mkdir -p "$out"
  b=gpu-bundle
  report="$out/report.txt"
  {
    echo "# tinyscore GPU check, $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
    # NVRTC: CUDA's own, or the pip wheel's.
    for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)/cu13/lib; do
      [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    done
    echo "## kernel and trainer tests (GPU vs CPU twin)"
    for t in "$b"/*-*; do
      case "$t" in *.py|*/tinyscore) continue ;; esac
      echo "### $(basename "$t")"
      "$t" --test-threads=1 --nocapture 2>&1 || echo "FAILED: $t"
    done
    echo "## bench-train (ours), plain and CUDA graph"
    "$b/tinyscore" bench-train --device cuda --steps 100 || echo "FAILED: bench-train"
    "$b/tinyscore" bench-train --device cuda --steps 100 --cuda-graph || echo "FAILED: bench-train --cuda-graph"
    echo "## PyTorch baseline, same GPU, same run"
    python3 "$b/pytorch_baseline.py" --steps 100 || echo "FAILED: pytorch baseline"
    # The conv U-Net (ScoreNet-conv, engine/src/graph/unet.rs): ours through the trainer test
    # binary's timing test (the CUDA trainer walking the graph, plain and as a CUDA graph), and
    # through `bench-train --arch conv` once the command has it; PyTorch's Conv1d model of the same
    # shape beside it. UNET/BATCHES set both sides' sizes (C,L,width,levels,blocks,K,F,T).
    unet="${TINYSCORE_BENCH_UNET:-1,256,32,3,1,3,32,64}"
    batches="${TINYSCORE_BENCH_BATCH:-256,1024}"
    echo "## conv U-Net $unet, batches $batches: ours (CUDA trainer), plain and CUDA graph"
    for t in "$b"/tinyscore_train-*; do
      TINYSCORE_BENCH_UNET="$unet" TINYSCORE_BENCH_BATCH="$batches" \
        "$t" --ignored bench_conv_unet --nocapture --test-threads=1 2>&1 | grep -E "conv-unet|skipped|panicked|FAILED" \
        || echo "FAILED: conv U-Net timing ($t)"
    done
    if "$b/tinyscore" bench-train --help 2>&1 | grep -q -- "--arch"; then
      "$b/tinyscore" bench-train --device cuda --arch conv --steps 100 || echo "FAILED: bench-train --arch conv"
      "$b/tinyscore" bench-train --device cuda --arch conv --steps 100 --cuda-graph \
        || echo "FAILED: bench-train --arch conv --cuda-graph"
    else
      echo "skipped: tinyscore bench-train has no --arch conv yet (tools/src/cmd/bench_train.rs); the timing test above stands in"
    fi
    echo "## PyTorch conv U-Net, same GPU, same run"
    python3 "$b/pytorch_baseline.py" bench-conv --unet "$unet" --batches "$batches" --steps 100 \
      || echo "FAILED: pytorch conv baseline"
    echo "## GPU training, bit-identity of two runs, quality"
    for data in moons digits; do
      for k in 1 2; do
        "$b/tinyscore" train --device cuda --data "$data" --steps 8000 --seed 3 --out "$out/$data-$k.safetensors" 2>&1 | tail -n 1 \
          || echo "FAILED: train $data"
      done
      cmp "$out/$data-1.safetensors" "$out/$data-2.safetensors" && echo "$data: two GPU runs are bit-identical"
      "$b/tinyscore" convert "$out/$data-1.safetensors" --out "$out/$data.tsm" 2>&1 | tail -n 1
      n=2000; [ "$data" = digits ] && n=360
      "$b/tinyscore" sample "$out/$data.tsm" --sampler ddpm --steps 200 --n $n --seed 7 --out "$out/$data-samples.csv"
      "$b/tinyscore" eval --samples "$out/$data-samples.csv" --data "$data"
      rm -f "$out/$data-2.safetensors"
    done
  } 2>&1 | tee "$report" || true
  ;;
*)
  echo "usage: bash scripts/gpu-check.sh bundle | run OUTDIR" >&2
  exit 1
  ;;
esac
