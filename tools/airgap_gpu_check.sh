#!/usr/bin/env bash
# The whole GPU check in one command, for a GPU machine without a package index (docs/gpu.md):
#   1. install the carried bundle (.whl/, written by tools/airgap_bundle.sh) into /tmp/site;
#   2. build mmcv with its CUDA ops (tools/install_mmcv.sh from the carried sdist), timed;
#   3. write a synthetic DeepLesion at 512 px (alongside the build) and prepare its annotations;
#   4. train the AlignShift 7-slice detector (paper settings: 512 px, 2 images per GPU; random
#      initialisation, as the machine cannot download ImageNet weights) with --amp for EPOCHS short
#      epochs (about 36 iterations each), then tools/test.py with the FROC on the test split;
#   5. benchmarks/bench_train.py (all variants, 3 and 7 slices, AMP on and off).
#
# Usage, from the repository root:  bash tools/airgap_gpu_check.sh [STEPS]
#   STEPS: comma-separated from build,train,bench (default all three); build is needed once per
#   machine. Settings through the environment: OUT (default ./gpu_check_out), BUNDLE (.whl),
#   EPOCHS (8), NUM_IMAGES (120), SEED (0, of the synthetic data), BENCH_ITERS (20), BENCH_WARMUP (5), BENCH_ARGS (extra options),
#   BUDGET_S (540: later steps are skipped, or the benchmark cut short, to end within it).
#   For a dry run on a CPU (tests/mmdet_plugins/test_bench_train.py does one): BUNDLE=none (use
#   the packages installed), AMP= (no --amp), IMAGE_SIZE, TRAIN_OPTS / TEST_OPTS (more
#   --cfg-options), BENCH_DEVICE=cpu, WORK_DIR and DATA_DIR (default under /tmp).
#
# What it writes to OUT is kept small enough for a transfer system with per-file limits (at most
# 8 files, 16 MiB each, 64 MiB together): gpu_check.log (every step's output and the summary), bench_train.json, e2e.tar.gz
# (the training log, scalars, FROC JSON and plot, predictions) and the CUDA mmcv wheel in parts of
# 15 MiB (mmcv-*.whl.part-aa, -ab, ...; join them with cat, see docs/gpu.md) when it fits.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu_check_out}
BUNDLE=${BUNDLE:-.whl}
EPOCHS=${EPOCHS:-8}
NUM_IMAGES=${NUM_IMAGES:-120}
SEED=${SEED:-0}
BENCH_ITERS=${BENCH_ITERS:-20}
BENCH_WARMUP=${BENCH_WARMUP:-5}
BUDGET_S=${BUDGET_S:-540}
IMAGE_SIZE=${IMAGE_SIZE:-512}
AMP=${AMP---amp}
BENCH_DEVICE=${BENCH_DEVICE:-cuda}
STEPS=${1:-build,train,bench}
PY=${PYTHON:-python3}
CONFIG=configs/deeplesion/fasterrcnn_densenet_alignshift_7slice.py
WORK=${WORK_DIR:-/tmp/alignshift_e2e}  # on the machine's disk, not carried back whole
DATA=${DATA_DIR:-/tmp/alignshift_e2e_data/DeepLesion}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/gpu_check.log
export PYTHONUNBUFFERED=1
START=$SECONDS
SUMMARY=()

log() { echo "[airgap_gpu_check +$((SECONDS - START))s] $*" | tee -a "$LOG"; }
has_step() { case ",$STEPS," in *,"$1",*) return 0;; *) return 1;; esac; }
left() { local s=$((BUDGET_S - (SECONDS - START))); echo $((s > 1 ? s : 1)); }  # timeout 0 = none
# run NAME CMD...: output to the log, status and seconds to the summary
run() {
  local name=$1 t0=$SECONDS rc
  shift
  log "=== $name: $*"
  "$@" >>"$LOG" 2>&1
  rc=$?
  SUMMARY+=("$name: rc=$rc, $((SECONDS - t0)) s")
  log "=== $name: rc=$rc after $((SECONDS - t0)) s"
  return $rc
}
finish() {
  log "=== summary (total $((SECONDS - START)) s)"
  for s in "${SUMMARY[@]}"; do log "  $s"; done
  exit "${1:-0}"
}

log "machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 2)"
log "python: $($PY -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1)"
log "nvcc: $(nvcc --version 2>&1 | tail -n 1)"

# 1. the carried wheels (pure Python, plus cp312 pycocotools/shapely) and our own code on the path
if [ "$BUNDLE" = none ]; then
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
else
  if ! ls "$BUNDLE"/*.whl >/dev/null 2>&1; then
    log "no wheels in $BUNDLE/: run tools/airgap_bundle.sh on a machine with an index, carry $BUNDLE"
    finish 1
  fi
  run install-bundle "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "$BUNDLE"/*.whl || finish 1
  export PYTHONPATH=$ROOT:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# 2. mmcv with CUDA ops (synthetic data written meanwhile: the compiler takes the cores)
if has_step train && [ ! -f "$DATA/annotations/deeplesion_test.json" ]; then
  log "writing $NUM_IMAGES synthetic $IMAGE_SIZE-px images to $DATA in the background"
  ( "$PY" tools/make_synthetic_deeplesion.py --out "$DATA" --num-images "$NUM_IMAGES" \
      --image-size "$IMAGE_SIZE" --seed "$SEED" \
      && "$PY" tools/prepare_deeplesion.py --data-root "$DATA" ) >"$WORK/data.log" 2>&1 &
  DATA_PID=$!
fi
if has_step build || ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  sdist=$(ls "$BUNDLE"/mmcv-*.tar.gz | head -n 1) || finish 1
  # a CUDA wheel brought back from an earlier run and carried in $BUNDLE/cuda/ skips the compiler
  prebuilt=$(ls "$BUNDLE"/cuda/mmcv-*.whl 2>/dev/null | head -n 1)
  MMCV_WHEEL=${prebuilt:+$ROOT/$prebuilt} MMCV_SDIST=$ROOT/$sdist MAX_JOBS=$(nproc) \
    run build-mmcv-cuda bash tools/install_mmcv.sh "$PY" 2.1.0 || finish 1
  wheel=$(ls -t "${XDG_CACHE_HOME:-$HOME/.cache}"/alignshift/mmcv2.1.0-*-cuda-*/mmcv-*.whl 2>/dev/null | head -n 1)
  if [ -n "$wheel" ] && [ -z "$prebuilt" ]; then
    size=$(stat -c %s "$wheel")
    log "CUDA wheel: $wheel ($((size / 1048576)) MiB); sha256 $(sha256sum "$wheel" | cut -d' ' -f1)"
    if [ "$size" -le $((45 * 1048576)) ]; then  # room left for the logs within 64 MiB
      split -b 15M -d -a 2 "$wheel" "$OUT/$(basename "$wheel").part-"
      log "wheel copied back in $(ls "$OUT"/*.part-* | wc -l) parts"
    else
      log "wheel too large to come back with the logs; copy it in a second call (docs/gpu.md)"
    fi
  fi
fi

# 3-4. end-to-end: train with AMP, test, FROC
if has_step train && [ "$(left)" -lt 60 ]; then
  log "skipping training: only $(left) s of the budget left"
  SUMMARY+=("train: skipped, no time left")
elif has_step train; then
  if [ -n "${DATA_PID:-}" ]; then
    wait "$DATA_PID"; rc=$?
    cat "$WORK/data.log" >>"$LOG"
    SUMMARY+=("synthetic-data: rc=$rc")
    [ $rc = 0 ] || finish 1
  fi
  export DEEPLESION_ROOT=$DATA/
  # the paper's settings from the config; a short schedule: EPOCHS epochs, warm-up over 100
  # iterations, validation only after the last epoch (mmengine always runs that one), one
  # checkpoint at the end
  # shellcheck disable=SC2086  # AMP and *_OPTS are word lists
  run train timeout "$(left)" "$PY" tools/train.py "$CONFIG" $AMP --work-dir "$WORK" --cfg-options \
    train_cfg.max_epochs="$EPOCHS" train_cfg.val_interval=1000 param_scheduler.0.end=100 \
    default_hooks.logger.interval=10 default_hooks.checkpoint.interval="$EPOCHS" \
    model.backbone.pretrained=None ${TRAIN_OPTS:-}
  ckpt="$WORK/epoch_$EPOCHS.pth"
  if [ -f "$ckpt" ]; then
    run test timeout "$(left)" "$PY" tools/test.py "$CONFIG" "$ckpt" --work-dir "$WORK/test" \
      --out "$WORK/test/predictions.json" ${TEST_OPTS:+--cfg-options $TEST_OPTS}
    run froc "$PY" tools/eval_froc.py "$WORK/test/predictions.json" --out-dir "$WORK/froc"
  fi
  # the loss curve in the log: first and last logged values
  grep -h '"loss"' "$WORK"/*/vis_data/scalars.json 2>/dev/null | sed -n '1p;$p' | tee -a "$LOG"
  tar -czf "$OUT/e2e.tar.gz" -C "$(dirname "$WORK")" --exclude='*.pth' "$(basename "$WORK")" || true
fi

# 5. throughput, side by side, sized to the time left
if has_step bench; then
  if [ "$(left)" -lt 120 ]; then
    log "skipping bench_train.py: only $(left) s of the budget left (run: bash tools/airgap_gpu_check.sh bench)"
    SUMMARY+=("bench: skipped, no time left")
  else
    # the training data when step 3 wrote them, else bench_train.py writes its own; 4 loader
    # workers (the configs have 2) so that the GPU, not the loader, sets the pace where it can
    data_opt=()
    [ -f "$DATA/annotations/deeplesion_train.json" ] && data_opt=(--data-root "$DATA")
    # shellcheck disable=SC2086  # BENCH_ARGS is a word list; later options win
    run bench timeout "$(left)" "$PY" benchmarks/bench_train.py --device "$BENCH_DEVICE" \
      --image-size "$IMAGE_SIZE" --batch-size 2 --iters "$BENCH_ITERS" --warmup "$BENCH_WARMUP" \
      --workers 4 "${data_opt[@]}" --json "$OUT/bench_train.json" ${BENCH_ARGS:-}
  fi
fi
finish 0
