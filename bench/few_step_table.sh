#!/usr/bin/env bash
# Few-step samplers against DDPM-1000: sliced Wasserstein distance per data set, sampler and number
# of network evaluations (issue 21; docs/samplers.md §6.1, docs/BENCHMARKS.md "Few-step samplers").
#
# For every data set DATA=MODEL in $SETS, every sampler in $SAMPLERS, every S in $EVALS and every
# seed in $SEEDS it runs
#     tinyscore sample MODEL --sampler SAMPLER --steps S --n $N --seed SEED --out CSV
#     tinyscore eval --samples CSV --data DATA [--projections 256, eval seed 1]
# and prints one markdown table per data set: the mean distance over the seeds (± the spread, half
# the range, when there are several), then DDPM with 1000 steps (the reference) and the ratio of
# each 10-evaluation entry to it. It also prints the noise floor of the comparison: the distance
# between the DDPM-1000 samples of the first two seeds (two independent draws from the same model;
# with three seeds or more) and `eval`'s held-out floor (two draws of the data).
#
# `eval` compares min(n, held-out/2) points: all n for the 2-D toys (fresh draws), but 179 for
# `digits` and 270 for `ecg` (their held-out 20 %), so for those N above that is wasted: use
# N = 179 / 270 and more seeds.
#
# Every sample file is kept in $WORK and reused when it exists, so the expensive DDPM-1000 runs
# can be made once (or in parallel, by running the script with a smaller SAMPLERS/EVALS) and the
# table printed again at no cost.
#
# Environment (defaults in brackets):
#   TINYSCORE  the binary                                  [target/release/tinyscore]
#   SETS       space-separated DATA=MODEL pairs            [moons=firmware-example/models/moons-f32.tsm]
#              MODEL `exact` (moons only): the exact score of the moons distribution instead of a
#              network, sampled by $EXACT (cargo build --release -p tinyscore-engine --example
#              moons_exact): each sampler's own discretisation error
#   EXACT      that example's binary                       [target/release/examples/moons_exact]
#   SAMPLERS   sampler specs; a spec is NAME or NAME:FLAGS with FLAGS comma-separated CLI flags,
#              e.g. dpmpp-sde:--spacing=leading            [ddim dpmpp-2m dpmpp-3m dpmpp-sde unipc]
#   EVALS      network evaluations (= steps)               [5 10 20 50]
#   SEEDS      sample seeds                                [7]
#   N          samples per run (and held-out points)       [10000]
#   REF_STEPS  steps of the DDPM reference                 [1000]
#   WORK       cache directory                             [target/few-step]
#   NICE       prefix for the sampling runs                [nice -n 10]
#   CENTER     1: also subtract every example's own mean (its DC level) from the samples and from
#              the held-out examples (`tinyscore data NAME --heldout`) before the distance: the
#              distance of the shapes alone, for ECG windows                          [0]
#
# Example (the table of docs/samplers.md §6.1):
#   SETS="moons=firmware-example/models/moons-f32.tsm swissroll=swissroll.tsm digits=digits.tsm" \
#     SEEDS="7 8 9" bench/few_step_table.sh
set -euo pipefail

TINYSCORE=${TINYSCORE:-target/release/tinyscore}
EXACT=${EXACT:-target/release/examples/moons_exact}
SETS=${SETS:-moons=firmware-example/models/moons-f32.tsm}
SAMPLERS=${SAMPLERS-ddim dpmpp-2m dpmpp-3m dpmpp-sde unipc}
EVALS=${EVALS-5 10 20 50}
SEEDS=${SEEDS:-7}
N=${N:-10000}
REF_STEPS=${REF_STEPS:-1000}
WORK=${WORK:-target/few-step}
NICE=${NICE:-nice -n 10}
CENTER=${CENTER:-0}
mkdir -p "$WORK"

center() { # in.csv out.csv: every row minus its own mean
    awk -F, '/^#/ {next} {s = 0; for (i = 1; i <= NF; i++) s += $i; m = s / NF;
        for (i = 1; i <= NF; i++) printf "%s%.6g", (i > 1 ? "," : ""), $i - m; print ""}' "$1" >"$2"
}

# `tinyscore eval`'s line ("sliced Wasserstein distance 0.0432  (floor 0.0092, ...").
eval_line() { # samples data
    if [[ $CENTER == 1 && -f $WORK/$2.heldout-centered.csv ]]; then
        center "$1" "${1%.csv}.centered.csv"
        set -- "${1%.csv}.centered.csv" "$WORK/$2.heldout-centered.csv"
    fi
    "$TINYSCORE" eval --samples "$1" --data "$2"
}
distance() { eval_line "$1" "$2" | sed -n 's/^sliced Wasserstein distance \([0-9.eE+-]*\).*/\1/p'; }
floor_of() { eval_line "$1" "$2" | sed -n 's/.*(floor \([0-9.eE+-]*\),.*/\1/p'; }

# samples DATA MODEL SPEC STEPS SEED -> path of the cached CSV (made if missing)
samples() {
    local data=$1 model=$2 spec=$3 steps=$4 seed=$5
    local name=${spec%%:*} flags=""
    [[ $spec == *:* ]] && flags=${spec#*:}
    local tag
    tag=$(printf '%s' "$spec" | tr -c 'A-Za-z0-9.=-' '_')
    local dir
    dir="$WORK/$data-$(basename "$model" .tsm)" # one folder per data set and model file
    local out="$dir/$tag-s$steps-seed$seed-n$N.csv"
    if [[ ! -s $out ]]; then
        mkdir -p "$dir"
        if [[ $model == exact ]]; then
            # The exact score of the moons distribution (engine/examples/moons_exact.rs): its
            # sampler names, with the grid as a `:leading|:linspace|:karras` suffix.
            local grid=""
            case $flags in
                "") ;;
                --spacing=leading | --spacing=linspace) grid=":${flags#--spacing=}" ;;
                --karras) grid=":karras" ;;
                *) echo "error: MODEL=exact takes no sampler flags but --spacing=leading|linspace or --karras ($spec)" >&2 && exit 2 ;;
            esac
            $NICE "$EXACT" "$name$grid" "$steps" "$seed" "$N" "$out.tmp"
        else
            # shellcheck disable=SC2086 # flags are split on purpose
            $NICE "$TINYSCORE" sample "$model" --sampler "$name" --steps "$steps" ${flags//,/ } \
                --n "$N" --seed "$seed" --out "$out.tmp" >/dev/null
        fi
        mv "$out.tmp" "$out"
    fi
    printf '%s\n' "$out"
}

# mean ± half-range of the distances of SPEC at STEPS over $SEEDS
cell() { # data model spec steps
    local ds=()
    for seed in $SEEDS; do
        ds+=("$(distance "$(samples "$1" "$2" "$3" "$4" "$seed")" "$1")")
    done
    printf '%s\n' "${ds[@]}" | awk '{s+=$1; if(NR==1||$1<lo)lo=$1; if(NR==1||$1>hi)hi=$1} END{
        if (NR>1) printf "%.4f ± %.4f", s/NR, (hi-lo)/2; else printf "%.4f", s}'
}

for set in $SETS; do
    data=${set%%=*}
    model=${set#*=}
    if [[ $CENTER == 1 ]]; then
        "$TINYSCORE" data "$data" --heldout --out "$WORK/$data.heldout.csv" >/dev/null
        center "$WORK/$data.heldout.csv" "$WORK/$data.heldout-centered.csv"
    fi
    ref=$(cell "$data" "$model" "ddpm" "$REF_STEPS")
    ref_mean=${ref%% *}
    first_seeds=($SEEDS)
    echo
    echo "### $data ($model; n = $N, seeds $SEEDS$([[ $CENTER == 1 ]] && echo '; every example minus its mean'))"
    echo
    printf '| sampler |'; for s in $EVALS; do printf ' %s |' "$s"; done; echo ' ratio at 10 |'
    printf '| --- |'; for _ in $EVALS; do printf ' --- |'; done; echo ' --- |'
    for spec in $SAMPLERS; do
        printf '| `%s` |' "${spec//:/ }"
        at10=""
        for s in $EVALS; do
            c=$(cell "$data" "$model" "$spec" "$s")
            [[ $s == 10 ]] && at10=${c%% *}
            printf ' %s |' "$c"
        done
        if [[ -n $at10 ]]; then
            awk -v a="$at10" -v r="$ref_mean" 'BEGIN{printf " %.2f× |\n", a/r}'
        else
            echo ' |'
        fi
    done
    echo
    echo "DDPM $REF_STEPS steps: $ref"
    f=$(floor_of "$(samples "$data" "$model" ddpm "$REF_STEPS" "${first_seeds[0]}")" "$data")
    echo "held-out floor (two draws of the data): $f"
    if ((${#first_seeds[@]} > 2)); then
        # `eval` compares the samples with the first half of a data file of 2n rows: the draw of the second seed.
        a=$(samples "$data" "$model" ddpm "$REF_STEPS" "${first_seeds[0]}")
        b=$(samples "$data" "$model" ddpm "$REF_STEPS" "${first_seeds[1]}")
        c=$(samples "$data" "$model" ddpm "$REF_STEPS" "${first_seeds[2]}")
        if [[ $CENTER == 1 ]]; then
            center "$a" "${a%.csv}.centered.csv" && a=${a%.csv}.centered.csv
            cat "$b" "$c" >"$WORK/$data-ref-pair.raw.csv"
            center "$WORK/$data-ref-pair.raw.csv" "$WORK/$data-ref-pair.csv"
        else
            cat "$b" "$c" >"$WORK/$data-ref-pair.csv"
        fi
        echo "DDPM-$REF_STEPS seed ${first_seeds[0]} against seed ${first_seeds[1]} (two draws of the model): $(distance "$a" "$WORK/$data-ref-pair.csv")"
    fi
done
