#!/usr/bin/env bash
# The one prepared device call for docs/step-cost.md: the step-cost benchmark at the Sana-Sprint 0.6B
# shape on one GPU, eager first (its result is kept even if the compiled run is cut short), then with
# torch.compile. Writes into $OUT (or ./step-cost-out). Needs diffusers importable: on the project's
# device machines carry its wheel as docs/step-cost.md says and set PYTHONPATH before calling this.
#
#   bash benchmarks/step_cost_device.sh [SECONDS_FOR_THE_COMPILED_RUN]
set -uo pipefail
out=${OUT:-step-cost-out}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
budget=${1:-300}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 benchmarks/step_cost.py --device cuda --out "$out/step-cost-eager" 2>&1 | tee "$out/eager.log"
# compiled: the training steps' tangent and the tangent table (processor only; the math reference is eager)
timeout "$budget" python3 benchmarks/step_cost.py --device cuda --compile --steps 2 --table-methods processor \
    --out "$out/step-cost-compiled" 2>&1 | tee "$out/compiled.log"
echo "compiled run exit status: ${PIPESTATUS[0]} (124: cut at ${budget} s)"
