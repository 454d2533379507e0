#!/usr/bin/env bash
# A wheelhouse for an air-gapped GPU machine (a hospital cluster without a package index): on a
# machine with an index, download what the GPU machine needs to run the detectors: the mmcv sdist
# (built there with CUDA by tools/install_mmcv.sh) and the wheels of mmengine, mmdet and the packages
# they import that a stock PyTorch container lacks.
#
# Usage: tools/airgap_bundle.sh [DEST]          (default DEST: .whl/, git-ignored)
#
# Targets CPython 3.12 on manylinux x86_64 (e.g. a PyTorch container's python3 with torch 2.11 cu130). Override
# with PY_VERSION=3.11 etc. PYTHON (default python3) runs pip. pip prepares an sdist's metadata
# even when it only downloads it, and mmcv's setup.py imports torch, so the sdist is fetched by
# SDIST_PYTHON (default: PYTHON if it has torch, else the project's .venv/bin/python).
# Carry DEST with the source tree; tools/airgap_gpu_check.sh on the GPU machine installs the wheels
# with --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${1:-.whl}
PY_VERSION=${PY_VERSION:-3.12}
PYTHON=${PYTHON:-python3}
log() { echo "[airgap_bundle] $*"; }

# Pure-Python (or cp312 binary) packages a stock PyTorch container does not carry, pinned to the versions
# this project's own environment uses. Everything else mmengine/mmdet import (numpy, scipy, torch,
# opencv, matplotlib, rich, six, tqdm, pyyaml, pillow, packaging, ninja) is in such a container.
WHEELS=(
  "mmengine==0.10.7" "mmdet==3.3.0"
  "addict==2.4.0" "yapf==0.43.0" "platformdirs==4.14.8" "termcolor==3.3.0"
  "terminaltables==3.1.10" "pycocotools==2.0.11" "shapely==2.2.0"
  # mmcv 2.1.0's setup.py and mmengine import pkg_resources, gone from setuptools >= 82
  "setuptools==81.0.0"
)
MMCV_SDIST="mmcv==2.1.0"

PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done

mkdir -p "$DEST"
log "wheels for CPython $PY_VERSION manylinux x86_64 -> $DEST/"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp "${PLATFORMS[@]}" -d "$DEST" "${WHEELS[@]}"

if ! ls "$DEST"/mmcv-2.1.0.tar.gz >/dev/null 2>&1; then
  SDIST_PY=${SDIST_PYTHON:-$PYTHON}
  if ! "$SDIST_PY" -c "import torch" 2>/dev/null; then
    SDIST_PY=.venv/bin/python
  fi
  log "mmcv sdist (source for the CUDA build) with $SDIST_PY"
  # --no-build-isolation: the metadata step imports torch and pkg_resources from this interpreter
  "$SDIST_PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$DEST" \
    "$MMCV_SDIST"
fi

# every import requirement of the downloaded wheels must be in the image or in the bundle
log "Requires-Dist of the bundled wheels (none may be missing on the GPU machine):"
"$PYTHON" - "$DEST" <<'PYEOF'
import glob, os, sys, zipfile
for w in sorted(glob.glob(os.path.join(sys.argv[1], "*.whl"))):
    with zipfile.ZipFile(w) as z:  # the wheel's own METADATA, not those of vendored packages
        meta = [n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        for line in z.read(meta[0]).decode().splitlines():
            if line.startswith("Requires-Dist:") and "extra ==" not in line:
                print(f"  {os.path.basename(w).split('-')[0]}: {line[len('Requires-Dist:'):].strip()}")
PYEOF
size=$(du -sk "$DEST" | cut -f1)
log "$(ls "$DEST" | wc -l) files, $((size / 1024)) MiB in $DEST (kept under 64 MiB, so that it travels with the source tree)"
if [ "$size" -gt $((48 * 1024)) ]; then
  echo "[airgap_bundle] ERROR: $DEST is over 48 MiB; the working tree must travel with it within 64 MiB" >&2
  exit 1
fi
