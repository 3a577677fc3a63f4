#!/usr/bin/env bash
# The one prepared device call for docs/step-cost.md: the step-cost benchmark at the Sana-Sprint 0.6B
# shape on one GPU. First the eager run (both training steps, the tangent table for every method, a
# profile of each), then the tangent table compiled (forward, processor and finite-difference tangents;
# cut at SECONDS so the call ends in time; rows are printed as they come). Each run's log and tables
# go to $OUT (or ./step-cost-out). Needs diffusers importable: on the project's device machines carry
# its wheel as docs/step-cost.md says and set PYTHONPATH before calling this.
#
#   bash benchmarks/step_cost_device.sh [SECONDS_FOR_THE_EAGER_RUN] [SECONDS_FOR_THE_COMPILED_RUN]
set -uo pipefail
out=${OUT:-step-cost-out}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
eager_budget=${1:-330}
compiled_budget=${2:-300}
start=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, \
'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
timeout "$eager_budget" python3 benchmarks/step_cost.py --device cuda --profile --out "$out/step-cost-eager" 2>&1 \
    | tee "$out/eager.log"
echo "eager run exit status: ${PIPESTATUS[0]} (124: cut at ${eager_budget} s), $((SECONDS - start)) s so far"
timeout "$compiled_budget" python3 benchmarks/step_cost.py --device cuda --compile --table-only \
    --table-methods processor,finite_difference --out "$out/step-cost-compiled" 2>&1 | tee "$out/compiled.log"
echo "compiled run exit status: ${PIPESTATUS[0]} (124: cut at ${compiled_budget} s), $((SECONDS - start)) s in all"
