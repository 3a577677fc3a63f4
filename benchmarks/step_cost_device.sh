#!/usr/bin/env bash
# The prepared device call for docs/step-cost.md: runs of the step-cost benchmark at the Sana-Sprint 0.6B
# shape on one GPU, each under its own time limit (so the call ends in time; every run prints its rows
# as they come), logs and tables into $OUT (or ./step-cost-out). The runs share BUDGET seconds (default 590,
# under the device's 600 s per call): a run's limit is cut to what is left. Needs diffusers importable: on the
# project's device machines carry its wheel as docs/step-cost.md says and set PYTHONPATH first.
#
#   bash benchmarks/step_cost_device.sh [RUN ...]      (default: levers ahead-offload)
#
#   eager             both training steps, every tangent method, profiled (124 s on an H100)
#   steps             both training steps, eager, no table: the baseline of the runs below, on the same GPU
#   ahead             as steps, with one rollout serving 15 steps (distill.rollout_ahead 15: the teacher's
#                     calls at batch 30, sCM's batch) (limit 150 s)
#   ahead-offload     as ahead, with CAME for both and TBCM's text encoder and teacher on the CPU between
#                     rollouts (distill.offload_frozen): the memory configuration; and the eager tangent table
#                     for the processor with and without the zero-tangent products (tbcm.skip_zero_tangents)
#                     (limit 150 s)
#   compiled-steps    both training steps as the project would run them at scale: distill.compile (the
#                     tangent and the student's gradient pass compiled block by block, the teacher's calls
#                     compiled whole with CUDA graphs), rollout ahead 15 (one teacher graph serves both
#                     methods), CAME for both; no table (limit 500 s: the whole compiled JVP took 192 s to
#                     compile at this shape in method-notes §9; block by block it was 4x faster on the CPU)
#   levers            every lever at once, as one distill configuration would run: compile (the tangent, the
#                     student's gradient pass and the offloaded teacher, one block compiled for all 28; the
#                     teacher without CUDA graphs), rollout ahead 15, CAME, TBCM's text encoder and teacher
#                     offloaded; no table (limit 460 s, first, so that ahead-offload keeps 130 s, ~95 needed):
#                     both ratios from one run
#   compiled-table    the tangent table compiled: forward and processor tangent (limit 280 s)
#   compiled-teacher  both training steps, the teacher's calls compiled with CUDA graphs (limit 230 s; if
#                     that fails before its limit, again in inductor's default mode)
#   zero-products     benchmarks/zero_products.py: one block's compiled JVP with and without the products of
#                     zero tangents, against its compiled forward, 15 pairs (limit 150 s)
set -uo pipefail
out=${OUT:-step-cost-out}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
start=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, \
'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
budget=${BUDGET:-590}
run() {  # NAME LIMIT ARGS...
    local name=$1 limit=$2
    shift 2
    local left=$((budget - SECONDS + start))
    if [ "$left" -lt 60 ]; then
        echo "$name: not run, ${left} s of the budget left"
        return 124
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    timeout "$limit" python3 "${SCRIPT:-benchmarks/step_cost.py}" --device cuda "$@" --out "$out/$name" 2>&1 \
        | grep -v "Casting directly" | tee "$out/$name.log"
    local status=${PIPESTATUS[0]}
    echo "$name: exit status $status (124: cut at $limit s), $((SECONDS - start)) s so far"
    return "$status"
}
for r in "${@:-levers ahead-offload}"; do
    for name in $r; do
        case $name in
            eager) run eager 200 --profile ;;
            steps) run steps 120 --no-table --steps 2 ;;
            ahead) run ahead 150 --no-table --rollout-ahead 15 --steps 1 ;;
            ahead-offload)
                run ahead-offload 150 --table-methods processor,processor_pytorch_rules --rollout-ahead 15 \
                    --optimizer came --offload-frozen --steps 1 ;;
            compiled-steps)
                run compiled-steps 500 --compile --compile-teacher reduce-overhead --rollout-ahead 15 --optimizer came \
                    --steps 1 --no-table ;;
            levers)
                run levers 460 --compile --compile-teacher default --rollout-ahead 15 --optimizer came --offload-frozen \
                    --steps 1 --no-table ;;
            compiled-table) run compiled-table 280 --compile --table-only --table-methods processor ;;
            compiled-teacher)
                run compiled-teacher 230 --compile-teacher reduce-overhead --steps 2 --table-methods processor
                status=$?
                if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then
                    run compiled-teacher-default 200 --compile-teacher default --steps 2 --table-methods processor
                fi ;;
            zero-products) SCRIPT=benchmarks/zero_products.py run zero-products 150 ;;
            *) echo "unknown run '$name' (eager, steps, ahead, ahead-offload, compiled-steps, levers, compiled-table, compiled-teacher, zero-products)"; exit 2 ;;
        esac
    done
done
