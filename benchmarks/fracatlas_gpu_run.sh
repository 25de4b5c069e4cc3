#!/bin/bash
# On a lent GPU machine: install the wheels packed by fracatlas_gpu_kit.py, train on the packed FracAtlas
# layout with the radseg train options given, and leave the bundle (weights, manifest, model.json), its
# metrics.csv, config.json and learning curve directly under $OUT, which the run tool brings back.
#   TRAIN_SECONDS=420 bash benchmarks/fracatlas_gpu_run.sh --preset fracatlas --holdout 0.15 --holdout-order last \
#       --device cuda [--model-args ... --batch-size ...]
# TRAIN_SECONDS (optional): plan --epochs from a 4-epoch probe so the schedule completes in that many seconds.
set -euo pipefail
KIT=${KIT:-.gpukit}
OUT=${OUT:?set OUT to the folder whose files come back}
RUN=${RUN:-/tmp/radseg-gpu-run}  # checkpoints stay on the machine: last.pt is too big to come back
[ -f "$KIT/kit.json" ] || { echo "$KIT/kit.json missing: run benchmarks/fracatlas_gpu_kit.py here and carry $KIT" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/radseg-site "$KIT"/wheels/*.whl
export PYTHONPATH="/tmp/radseg-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi: not found"
if [ -n "${TRAIN_SECONDS:-}" ]; then
  # the cosine schedule follows the planned epochs, so a run stopped by --time-limit alone never anneals:
  # time 4 epochs and one validation with the same options, then plan as many epochs as fit in TRAIN_SECONDS
  python3 -m radseg train --data "$KIT/prepared" -o /tmp/radseg-gpu-probe -q "$@" --epochs 4 \
    > "$OUT/probe.log" 2>&1 || { tail -20 "$OUT/probe.log"; exit 1; }
  EPOCHS=$(python3 -c "
import csv, json, sys
probe = '/tmp/radseg-gpu-probe'
t = [float(r['time_s']) for r in csv.DictReader(open(probe + '/metrics.csv'))]
per = (t[3] - t[1]) / 2  # one epoch's training steps
validation = json.load(open(probe + '/model/manifest.json'))['metrics']['train_seconds'] - t[3]
every = json.load(open(probe + '/config.json'))['val_every']
print(max(1, int((0.95 * float(sys.argv[1]) - (t[0] - per)) / (per + validation / every))))" "$TRAIN_SECONDS")
  echo "probe: $EPOCHS epochs fit in $TRAIN_SECONDS s" | tee -a "$OUT/probe.log"
  set -- "$@" --epochs "$EPOCHS" --time-limit "$TRAIN_SECONDS"
fi
python3 -m radseg train --data "$KIT/prepared" -o "$RUN" -q "$@" 2>&1 | tee "$OUT/train.log"
cp "$RUN"/model/* "$RUN"/metrics.csv "$RUN"/config.json "$RUN"/learning_curve.png "$OUT"/
ls -la "$OUT"
