#!/usr/bin/env bash
# Screen demo-recipe variants over seeds and precisions, all side by side (meant for a machine
# with many cores or a GPU): for each variant, whole `ltprobe run`s with world and training
# seed S in fp32 and bf16, training on the GPU where torch sees one, each checked with
# scripts/check_demo_criteria.py.
#
#   bash scripts/seed_screen.sh DEST SECONDS "SEEDS" NAME "SETS" [NAME "SETS" ...]
#   bash scripts/seed_screen.sh /tmp/screen 300 "0 1 2" base "" people600 "world.people=600"
#
# SETS: space-separated KEY=VALUE settings (`ltprobe run --set`). DEST receives results.txt
# and runs.tar.gz (each run's summary, training record and log). Runs still going after
# SECONDS are stopped and reported as unfinished.
set -u
dest=$(realpath -m "${1:?usage: see the top of this file}")
budget=${2:?}
seeds=${3:?}
shift 3
start=$(date +%s)
work=$(mktemp -d)
mkdir -p "$dest" "$work/runs"
results="$dest/results.txt"
say() { echo "$*" | tee -a "$results"; }
left() { echo $(( budget - ($(date +%s) - start) )); }

names=()
while [ $# -ge 2 ]; do
    variant=$1; read -r -a sets <<<"$2"; shift 2
    for seed in $seeds; do
        for precision in fp32 bf16; do
            name="$variant-s$seed-$precision"; names+=("$name")
            args=(--set world.seed="$seed" --set model.train.seed="$seed" --set model.train.device=auto)
            for s in "${sets[@]}"; do args+=(--set "$s"); done
            [ "$precision" = bf16 ] && args+=(--set model.train.precision=bf16 --set model.options.dtype=bfloat16)
            (
                t0=$(date +%s)
                OMP_NUM_THREADS=1 timeout "$(left)" python3 -m probe.cli run --out "$work/runs/$name" "${args[@]}" \
                    >"$work/runs/$name.out" 2>"$work/runs/$name.log"
                echo "$? $(( $(date +%s) - t0 ))" >"$work/runs/$name.wall"
            ) &
        done
    done
done
say "# seed_screen $(date -u +%FT%TZ): ${#names[@]} runs side by side on $(nproc) cores"
wait
for name in "${names[@]}"; do
    read -r rc wall <"$work/runs/$name.wall"
    if [ "$rc" = 0 ]; then
        say "$(python3 scripts/check_demo_criteria.py "$work/runs/$name" | sed "s|^$work/runs/||") (${wall} s)"
    else
        say "$name: FAILED or unfinished (exit $rc, ${wall} s): $(tail -1 "$work/runs/$name.log")"
    fi
done
say "total $(( $(date +%s) - start )) s"
(cd "$work" && find runs -maxdepth 3 \( -name summary.json -o -name ltprobe_train.json -o -name '*.log' \
    -o -name '*.out' \) -print0 | tar --null -czf "$dest/runs.tar.gz" -T -)
rm -rf "$work"
