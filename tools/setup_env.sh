#!/usr/bin/env bash
# Create .venv with the pinned stack: torch, mmengine, mmcv (compiled ops), mmdet, and this project.
#
# PYTHON=/path/to/python   use that interpreter; if it already has torch, the venv sees its
#                          site-packages and keeps that torch (e.g. your own CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
log() { echo "[setup_env] $*"; }

if "$PYTHON" -c "import torch" 2>/dev/null; then
  log "$PYTHON already has torch $("$PYTHON" -c 'import torch; print(torch.__version__)'): reusing it"
  "$PYTHON" -m venv --system-site-packages "$VENV"
  TORCH_PKGS=()
else
  "$PYTHON" -m venv "$VENV"
  TORCH_PKGS=(torch==2.14.1 torchvision==0.29.1)
fi
PY="$VENV/bin/python"

log "installing build tools (setuptools<82: mmcv's setup.py and mmengine import pkg_resources)"
"$PY" -m pip install -q --upgrade pip "setuptools<82" wheel
if [ ${#TORCH_PKGS[@]} -gt 0 ]; then
  log "installing ${TORCH_PKGS[*]} (about a minute from the local wheel store)"
  "$PY" -m pip install -q "${TORCH_PKGS[@]}"
fi
log "installing mmengine and the runtime dependencies"
"$PY" -m pip install -q "mmengine==0.10.7" numpy opencv-python pycocotools SimpleITK matplotlib \
  tqdm scipy shapely terminaltables pytest ruff "setuptools<82" \
  pooch gdown requests pyyaml highdicom selenium
bash tools/install_mmcv.sh "$PY" 2.1.0
# the HTML report's browser test drives Debian's Chromium (a browser a pip package would download
# cannot be fetched everywhere); installed where apt is available and we may, skipped otherwise
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  log "installing Debian's chromium and chromium-driver (the report's browser test)"
  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || log "chromium could not be installed: the browser test will be skipped with its reason"
fi
log "installing mmdet 3.3.0"
"$PY" -m pip install -q "mmdet==3.3.0"
log "installing alignshift (editable)"
"$PY" -m pip install -q --no-deps --no-build-isolation -e .
"$PY" -c "import mmdet.models; from mmcv.ops import nms, RoIAlign, batched_nms; import alignshift; print('[setup_env] environment OK')"
