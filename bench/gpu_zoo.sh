#!/usr/bin/env bash
# Train zoo entries on a lent GPU machine inside one lease (DEVELOPERS.md, "A GPU machine"). The training
# runs are detached (setsid), so they go on between calls for as long as the machine stays warm: issue the
# calls back to back. Every seed of every entry runs at once, one process each.
#
#   call 1:   . .gpu/env.sh && ZOO_COMMIT=<commit> bash bench/gpu_zoo.sh start "dreamer_v2/dmc_cartpole_swingup dreamer_v1/dmc_cartpole_swingup"
#   calls 2+: . .gpu/env.sh && bash bench/gpu_zoo.sh wait 540      # progress of each seed; returns early once all are done
#   last:     . .gpu/env.sh && ZOO_COMMIT=<commit> bash bench/gpu_zoo.sh finish
#
# `finish` builds the card of every entry whose seeds all finished (bench/zoo.py build: held-out evaluation,
# card, weights published if the floor holds) and packs, into $OUT, one tar per entry (its zoo/ folder, its
# weights, zoo/index.json; for an entry with seeds still training, the records of those that finished,
# zoo/NAME/seeds/) and evals.tar (every seed's eval.csv and log, finished or not). Here, unpack them in the
# repository root, `for f in <files_at>/*.tar; do tar xf $f; done`, and commit what lands in zoo/.
# ZOO_COMMIT names the project's commit in the records and cards (the machine's copy has no .git).
#
# Environment: SEEDS (default "0 1 2"), THREADS per run (default 1), OVERRIDES (key=value for every fit).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=/tmp/zoo_runs; logs=/tmp/zoo_logs
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor
seeds=${SEEDS:-0 1 2}

status() {  # one line per run: name, seed, alive or exit code, last evaluation
    local all_done=1
    for pidf in "$logs"/*.pid; do
        [ -e "$pidf" ] || { echo "no runs started"; return 0; }
        local tag; tag=$(basename "$pidf" .pid)
        local state="running"
        if ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
            state="exit $(cat "$logs/$tag.rc" 2>/dev/null || echo '?')"
        else
            all_done=0
        fi
        echo "$tag: $state; $(grep -h '^eval @' "$logs/$tag.log" 2>/dev/null | tail -n 1 || true)"
    done
    return $((1 - all_done))
}

case "${1:-}" in
start)
    names=${2:?"start needs the entries, e.g. start \"dreamer_v2/dmc_cartpole_swingup\""}
    mkdir -p "$logs" "$TORCHINDUCTOR_CACHE_DIR"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    for name in $names; do
        for seed in $seeds; do
            tag="${name//\//__}__seed$seed"
            # shellcheck disable=SC2086
            setsid bash -c "python3 bench/zoo.py build $name --seeds $seed --train-only --root $runs \
                run.threads=${THREADS:-1} ${OVERRIDES:-} > $logs/$tag.log 2>&1; echo \$? > $logs/$tag.rc" &
            echo $! > "$logs/$tag.pid"
            echo "started $tag"
        done
    done
    sleep 20; status || true
    ;;
wait)
    limit=${2:-540}; start=$SECONDS
    while (( SECONDS - start < limit )); do
        if status > /dev/null; then break; fi
        sleep 15
    done
    status || true
    ;;
finish)
    out=${OUT:?"finish writes into \$OUT (the device machine's output folder)"}
    done_names=$(for rc in "$logs"/*.rc; do basename "$rc" .rc; done | sed 's/__seed[0-9]*$//' | sort -u)
    for key in $done_names; do
        name=${key//__//}
        ok=1
        for seed in $seeds; do [ "$(cat "$logs/${key}__seed$seed.rc" 2>/dev/null)" = 0 ] || ok=0; done
        if (( ok )); then
            # shellcheck disable=SC2086
            python3 bench/zoo.py build "$name" --seeds $seeds --root "$runs" run.threads=${THREADS:-1} ${OVERRIDES:-} \
                > "$logs/${key}__card.log" 2>&1 \
                || echo "$name: below its floor or failed (see ${key}__card.log)"
            base=${LIGHTNING_DREAMER_ZOO:-.}
            files="zoo/$name"
            [ -e "$base/zoo/index.json" ] && files="$files zoo/index.json"
            [ -e "$base/checkpoints/$name.safetensors" ] && files="$files checkpoints/$name.safetensors"
            # shellcheck disable=SC2086
            tar cf "$out/$key.tar" -C "$base" $files
            tail -n 25 "$logs/${key}__card.log"
        else
            echo "$name: not every seed finished; its evaluations so far are in evals.tar"
            base=${LIGHTNING_DREAMER_ZOO:-.}
            if [ -d "$base/zoo/$name/seeds" ]; then  # the seeds that did finish are recorded: they count later
                tar cf "$out/$key.seeds.tar" -C "$base" "zoo/$name/seeds"
                echo "$name: the finished seeds' records are in $key.seeds.tar"
            fi
        fi
    done
    (cd / && tar cf "$out/evals.tar" --exclude='*.memmap' --exclude='replay' --exclude='checkpoints' --exclude='*.mp4' --exclude='*.gif' \
        "${runs#/}" "${logs#/}" 2>/dev/null) || true
    status || true
    ;;
*)
    sed -n 2,16p "$0"; exit 2
    ;;
esac
