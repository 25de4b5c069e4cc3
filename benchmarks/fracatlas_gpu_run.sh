#!/bin/bash
# On a lent GPU machine: install the wheels packed by fracatlas_gpu_kit.py, train on the packed FracAtlas
# layout with the radseg train options given, and leave the run folder under $OUT, which the run tool
# brings back (7 files, within its 8: model/{weights.pt,manifest.json,model.json}, metrics.csv,
# config.json, train.log, kit.json; checkpoints stay behind, last.pt is too big to come back).
#   TRAIN_SECONDS=420 bash benchmarks/fracatlas_gpu_run.sh --preset fracatlas --holdout 0.15 --holdout-order last \
#       --device cuda [--model-args ... --batch-size ...]
# TRAIN_SECONDS (optional): plan --epochs from a 4-epoch probe so the schedule completes in that many
# seconds (refused together with --epochs or --time-limit). -o is refused: the run goes to $RUN.
set -euo pipefail
KIT=${KIT:-.gpukit}
OUT=${OUT:?set OUT to the folder whose files come back}
RUN=${RUN:-/tmp/radseg-gpu-run}
PROBE=/tmp/radseg-gpu-probe
for arg in "$@"; do  # refused before the machine's time is spent: these would break the plan or the copy back
  case "$arg" in
    -o*|--output|--output=*) echo "do not give $arg: the run goes to \$RUN (default $RUN)" >&2; exit 2 ;;
    --epochs|--epochs=*|--time-limit|--time-limit=*)
      [ -n "${TRAIN_SECONDS:-}" ] && { echo "$arg with TRAIN_SECONDS: the probe plans both; give one or the other" >&2; exit 2; } ;;
  esac
done
[ -f "$KIT/kit.json" ] || { echo "$KIT/kit.json missing: run benchmarks/fracatlas_gpu_kit.py here and carry $KIT" >&2; exit 2; }
rm -rf "$RUN" "$PROBE"  # a rerun on a warm machine starts over (radseg train refuses a used folder)
LOG="$OUT/train.log"
copy_back() {  # whatever the run wrote, also when it stops early
  mkdir -p "$OUT/model"
  cp "$KIT/kit.json" "$OUT/" 2>/dev/null || true
  [ -d "$RUN/model" ] && cp "$RUN"/model/* "$OUT/model/" || true
  for f in metrics.csv config.json; do [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/" || true; done
}
trap copy_back EXIT
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/radseg-site "$KIT"/wheels/*.whl
export PYTHONPATH="/tmp/radseg-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# fail in seconds, not after the data has loaded, if the device lacks something the training imports
python3 -c "import monai, nibabel, radseg.commands.train, radseg.train.session, radseg.models.hardware" 2>&1 | tee "$LOG"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | tee -a "$LOG" || echo "nvidia-smi: not found" | tee -a "$LOG"
if [ -n "${TRAIN_SECONDS:-}" ]; then
  # the cosine schedule follows the planned epochs, so a run stopped by --time-limit alone never anneals:
  # time 4 epochs and one validation with the same options, then plan as many epochs as fit in TRAIN_SECONDS
  python3 -m radseg train --data "$KIT/prepared" -o "$PROBE" -q "$@" --epochs 4 >> "$LOG" 2>&1 \
    || { tail -20 "$LOG"; exit 1; }
  EPOCHS=$(python3 -c "
import csv, json, sys
probe = sys.argv[2]
t = [float(r['time_s']) for r in csv.DictReader(open(probe + '/metrics.csv'))]
per = (t[3] - t[1]) / 2  # an epoch's steps (no validation falls in epochs 3-4 unless --val-every is 1 to 3)
validation = json.load(open(probe + '/model/manifest.json'))['metrics']['train_seconds'] - t[3]
every = json.load(open(probe + '/config.json'))['val_every']
print(max(1, int((0.95 * float(sys.argv[1]) - (t[0] - per) - validation) / (per + validation / every))))  # the last epoch validates too" "$TRAIN_SECONDS" "$PROBE")
  echo "probe: $EPOCHS epochs fit in $TRAIN_SECONDS s" | tee -a "$LOG"
  set -- "$@" --epochs "$EPOCHS" --time-limit "$TRAIN_SECONDS"
fi
python3 -m radseg train --data "$KIT/prepared" -o "$RUN" -q "$@" 2>&1 | tee -a "$LOG"
