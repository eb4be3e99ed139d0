#!/usr/bin/env bash
# The demo on a GPU machine (issue 21): how fast the demo recipe trains on CUDA in fp32 and bf16,
# one whole `ltprobe run` timed alone, then the other seed/precision pairs run side by side,
# each checked against the demo's science criteria (scripts/check_demo_criteria.py).
#
#   bash scripts/gpu_check.sh DEST [SECONDS]      # from the repository root
#
# DEST receives results.txt (the figures) and runs.tar.gz (each run's summary, training record
# and log). SECONDS (default 420) bounds the whole script: runs still going then are stopped and
# reported as unfinished. Runs with `python3 -m probe.cli` from this checkout, so it needs the
# project's dependencies importable (no vLLM needed: evaluation falls back to transformers).
# LTPROBE_GPU_CHECK_CONFIG=configs/smoke.yaml makes every run the smoke job (a test of the script
# on any machine).
set -u
dest=$(realpath -m "${1:?usage: bash scripts/gpu_check.sh DEST [SECONDS]}")
budget=${2:-420}
config=${LTPROBE_GPU_CHECK_CONFIG:-}
start=$(date +%s)
work=$(mktemp -d)
mkdir -p "$dest"
results="$dest/results.txt"
ltprobe() { python3 -m probe.cli "$@"; }
say() { echo "$*" | tee -a "$results"; }
left() { echo $(( budget - ($(date +%s) - start) )); }

say "# gpu_check $(date -u +%FT%TZ) on $(hostname)"
say "$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
say "$(python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' 2>&1 | tail -1)"
say "cores $(nproc); vllm: $(python3 -c 'import vllm; print(vllm.__version__)' 2>/dev/null || echo 'not installed (evaluation falls back to transformers)')"

# 1. Training speed alone: the demo world, the demo recipe, fp32 then bf16 (with the smoke
# config: a small world and 20 steps).
small=(); [ -n "$config" ] && small=(--people 60 --reading-docs 300)
steps=(); [ -n "$config" ] && steps=(--steps 20 --hidden-size 128 --layers 2)
{
    ltprobe world --quiet --out "$work/world" --seed 0 "${small[@]}" >/dev/null 2>"$work/world.log" || { say "world FAILED"; tail -5 "$work/world.log" | tee -a "$results"; }
    for precision in fp32 bf16; do
        t0=$(date +%s.%N)
        if ltprobe train --quiet --world "$work/world" --out "$work/model-$precision" --precision "$precision" --seed 0 "${steps[@]}" \
                >/dev/null 2>"$work/train-$precision.log"; then
            t1=$(date +%s.%N)
            say "train $precision: $(python3 -c "
import json, sys
m = json.load(open('$work/model-$precision/ltprobe_train.json'))
print(f\"device {m['device']}, precision {m['precision']}: {m['steps_per_second']} steps/s, training {m['seconds']} s, \"
      f\"loss {m['final_loss']}; the process {float(sys.argv[2]) - float(sys.argv[1]):.1f} s (tokenizer, start)\")" "$t0" "$t1")"
        else
            say "train $precision FAILED"; tail -5 "$work/train-$precision.log" | tee -a "$results"
        fi
    done
}

# 2. A whole run alone (what `make demo` runs after its install, with the training on the GPU:
# the demo config itself trains on the CPU), then the rest side by side.
run() {  # NAME SEED PRECISION: a whole run into $work/runs/NAME, its wall time into NAME.wall
    local name=$1 seed=$2 precision=$3 extra=()
    [ "$precision" = bf16 ] && extra=(--set model.train.precision=bf16 --set model.options.dtype=bfloat16)
    local t0; t0=$(date +%s.%N)
    timeout "$(left)" python3 -m probe.cli run ${config:+"$config"} --out "$work/runs/$name" \
        --set world.seed="$seed" --set model.train.seed="$seed" --set model.train.device=auto "${extra[@]}" \
        >"$work/runs/$name.out" 2>"$work/runs/$name.log"
    local rc=$?
    echo "$rc $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")" >"$work/runs/$name.wall"
}
report() {  # NAME: its criteria line, wall time and stage times
    local name=$1 rc wall
    read -r rc wall <"$work/runs/$name.wall"
    if [ "$rc" = 0 ]; then
        say "$(python3 scripts/check_demo_criteria.py "$work/runs/$name" | sed "s|^$work/runs/||")"
    else
        say "$name: FAILED or unfinished (exit $rc)"; tail -3 "$work/runs/$name.log" | tee -a "$results"
    fi
    say "  wall ${wall} s; $(grep -h -o '^\[[a-z_-]*\] finished in [0-9.]* s' "$work/runs/$name.log" "$work/runs/$name.out" 2>/dev/null | sed 's/ finished in /=/' | tr '\n' ' ')"
    [ -f "$work/runs/$name/model/ltprobe_train.json" ] && say "  training: $(python3 -c "
import json; m = json.load(open('$work/runs/$name/model/ltprobe_train.json'))
print(m['device'], m['precision'], m['steps_per_second'], 'steps/s', m['seconds'], 's, loss', m['final_loss'])")"
}
mkdir -p "$work/runs"
run s0-fp32 0 fp32
report s0-fp32
say "side by side: s1-fp32 s2-fp32 s0-bf16 s1-bf16 s2-bf16 ($(left) s left)"
for pair in "s1-fp32 1 fp32" "s2-fp32 2 fp32" "s0-bf16 0 bf16" "s1-bf16 1 bf16" "s2-bf16 2 bf16"; do
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=2 run $pair &
done
wait
for name in s1-fp32 s2-fp32 s0-bf16 s1-bf16 s2-bf16; do report "$name"; done

# 3. While time is left: seeds 3-7 in both precisions side by side (how often the recipe passes).
if [ "$(left)" -gt 150 ]; then
    say "seeds 3-7, fp32 and bf16, side by side ($(left) s left)"
    for seed in 3 4 5 6 7; do
        for precision in fp32 bf16; do OMP_NUM_THREADS=1 run "s$seed-$precision" "$seed" "$precision" & done
    done
    wait
    for seed in 3 4 5 6 7; do for precision in fp32 bf16; do report "s$seed-$precision"; done; done
fi
say "total $(( $(date +%s) - start )) s"

# What comes back: the figures and a small archive (no models, no corpora).
(cd "$work" && find runs -maxdepth 3 \( -name summary.json -o -name ltprobe_train.json -o -name '*.log' \
    -o -name '*.out' -o -name '*.wall' \) -print0 | tar --null -czf "$dest/runs.tar.gz" -T - ./*.log)
rm -rf "$work"
