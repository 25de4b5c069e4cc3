#!/bin/bash
# On a lent GPU machine: install the wheels packed by fracatlas_gpu_kit.py, train on the packed FracAtlas
# layout with the radseg train options given, and leave the bundle (weights, manifest, model.json), its
# metrics.csv, config.json and learning curve directly under $OUT, which the run tool brings back.
#   bash benchmarks/fracatlas_gpu_run.sh --preset fracatlas --holdout 0.15 --holdout-order last --device cuda ...
set -euo pipefail
KIT=${KIT:-.gpukit}
OUT=${OUT:?set OUT to the folder whose files come back}
RUN=${RUN:-/tmp/radseg-gpu-run}  # checkpoints stay on the machine: last.pt is too big to come back
[ -f "$KIT/kit.json" ] || { echo "$KIT/kit.json missing: run benchmarks/fracatlas_gpu_kit.py here and carry $KIT" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/radseg-site "$KIT"/wheels/*.whl
export PYTHONPATH="/tmp/radseg-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
python3 -m radseg train --data "$KIT/prepared" -o "$RUN" -q "$@" 2>&1 | tee "$OUT/train.log"
cp "$RUN"/model/* "$RUN"/metrics.csv "$RUN"/config.json "$RUN"/learning_curve.png "$OUT"/
ls -la "$OUT"
