#!/usr/bin/env bash
# Build (once) and install mmcv with its compiled ops into the given interpreter's environment.
#
# No mmcv wheel exists for torch >= 2.10, so we build the PyPI sdist. The built wheel is cached
# under ${XDG_CACHE_HOME:-~/.cache}/alignshift/, keyed by mmcv, torch (incl. CUDA tag) and Python
# versions, so a second clone installs it in seconds without running a compiler.
#
# Usage: tools/install_mmcv.sh PYTHON [MMCV_VERSION]
#
# With a GPU and nvcc the CUDA ops are built too (FORCE_CUDA=1) for the compute capabilities of the
# GPUs found (TORCH_CUDA_ARCH_LIST, e.g. "9.0" on an H100/H200; set it yourself to build for
# others), with MAX_JOBS = the number of cores. The CUDA wheel is cached under a key that names
# those capabilities. MMCV_SDIST=/path/mmcv-VER.tar.gz builds from that file instead of
# downloading it (a machine without a package index: see tools/airgap_bundle.sh);
# MMCV_WHEEL=/path/mmcv-VER-*.whl installs that wheel (built earlier for the same torch, Python and
# GPU) without building.
set -euo pipefail

PY=${1:?usage: install_mmcv.sh PYTHON [MMCV_VERSION]}
PY=$(command -v "$PY" || echo "$PY"); case "$PY" in /*) ;; *) PY="$PWD/$PY";; esac
MMCV_VERSION=${2:-2.1.0}
log() { echo "[install_mmcv] $*"; }

read -r TORCH_VER PY_VER HAS_GPU GPU_ARCHS < <("$PY" - <<'PYEOF'
import sys, torch
gpu = torch.cuda.is_available()
# compute capabilities of the visible GPUs, e.g. "9.0" or "8.0;9.0" (TORCH_CUDA_ARCH_LIST syntax)
archs = sorted({"%d.%d" % torch.cuda.get_device_capability(i)
                for i in range(torch.cuda.device_count())}) if gpu else []
print(torch.__version__.replace('+', '_'), f"{sys.version_info[0]}{sys.version_info[1]}",
      int(gpu), ";".join(archs) or "-")
PYEOF
)
WITH_CUDA=0
if [ "$HAS_GPU" = 1 ] && command -v nvcc >/dev/null 2>&1; then
  WITH_CUDA=1
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$GPU_ARCHS}
fi
if [ $WITH_CUDA = 1 ]; then
  # the wheel holds machine code for these capabilities only: they are part of its key
  VARIANT="cuda-sm$(echo "$TORCH_CUDA_ARCH_LIST" | tr -d '.' | tr ' ;' '__')"
else
  VARIANT=cpu
fi
KEY="mmcv${MMCV_VERSION}-torch${TORCH_VER}-py${PY_VER}-${VARIANT}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/alignshift"
CACHE_DIR="$CACHE_ROOT/$KEY"
mkdir -p "$CACHE_ROOT"

check_ops() {
  "$PY" -c "from mmcv.ops import nms, RoIAlign, batched_nms; import mmcv; print('mmcv', mmcv.__version__, 'with compiled ops: OK')"
  if [ "$WITH_CUDA" = 1 ]; then  # the CUDA kernels run, not only import
    "$PY" - <<'PYEOF'
import torch
from mmcv.ops import RoIAlign, nms
boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.]], device="cuda")
_, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device="cuda"), 0.5)
assert keep.tolist() == [0, 2], keep
feat = torch.randn(1, 4, 16, 16, device="cuda")
out = RoIAlign(7, 1.0, 2)(feat, torch.tensor([[0, 0, 0, 8, 8.]], device="cuda"))
assert out.shape == (1, 4, 7, 7) and out.is_cuda
print("mmcv CUDA ops (nms, RoIAlign) on", torch.cuda.get_device_name(), ": OK")
PYEOF
  fi
}

wheel=$(ls "$CACHE_DIR"/mmcv-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "${MMCV_WHEEL:-}" ]; then  # a wheel built earlier for this torch, Python and GPU
  wheel=$MMCV_WHEEL
  log "using $wheel (MMCV_WHEEL; no compilation)"
elif [ -n "$wheel" ]; then
  log "using cached wheel $wheel (no compilation)"
else
  log "no cached wheel for $KEY: building mmcv $MMCV_VERSION from the sdist."
  log "This compiles the C++ ops and takes about 16 minutes on 2 cores; later set-ups reuse the wheel."
  build=$(mktemp -d "$CACHE_ROOT/build.XXXXXX")
  trap 'rm -rf "$build"' EXIT
  # --no-build-isolation: metadata preparation imports pkg_resources, absent from fresh setuptools.
  if [ -n "${MMCV_SDIST:-}" ]; then
    log "building from $MMCV_SDIST"
    cp "$MMCV_SDIST" "$build/mmcv-$MMCV_VERSION.tar.gz"
  else
    "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation -d "$build" "mmcv==$MMCV_VERSION"
  fi
  tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
  src="$build/mmcv-$MMCV_VERSION"
  # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes c++14/c++17.
  sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$src/setup.py"
  export MMCV_WITH_OPS=1
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if [ "$WITH_CUDA" = 1 ]; then
    log "nvcc $(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') and a GPU found: building" \
        "CUDA ops too (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST)"
    export FORCE_CUDA=1
    # no host debug information (Python's CFLAGS carry -g): a smaller wheel to carry between machines
    export CFLAGS="${CFLAGS:-} -g0"
    # torch's headers include cusparse.h, cublas_v2.h, ...: a CUDA install with only the compiler
    # lacks them, torch's pip wheels bring them in the nvidia-* packages (nvcc and gcc read CPATH)
    nv_inc=$("$PY" -c "import glob, importlib.util, os; s = importlib.util.find_spec('nvidia'); print(':'.join(p for b in (s.submodule_search_locations if s else []) for p in sorted(glob.glob(os.path.join(b, '*', 'include')))))")
    if [ -n "$nv_inc" ]; then
      export CPATH="$nv_inc${CPATH:+:$CPATH}"
      log "CUDA library headers of torch's nvidia-* packages on CPATH"
    fi
  fi
  log "compiling (MAX_JOBS=$MAX_JOBS) ..."
  # --no-build-isolation: build against the torch already installed, not a fresh download.
  t_build=$SECONDS
  (cd "$src" && "$PY" -m pip wheel --no-deps --no-build-isolation -w "$build/dist" . )
  log "compiled in $((SECONDS - t_build)) s"
  built=$(ls "$build"/dist/mmcv-*.whl)
  mkdir -p "$CACHE_DIR.tmp"
  cp "$built" "$CACHE_DIR.tmp/"
  rm -rf "$CACHE_DIR" && mv "$CACHE_DIR.tmp" "$CACHE_DIR"  # publish atomically
  wheel=$(ls "$CACHE_DIR"/mmcv-*.whl)
  log "cached $wheel"
fi

"$PY" -m pip install --no-deps --force-reinstall "$wheel"
if ! check_ops; then
  echo "[install_mmcv] ERROR: mmcv installed but its compiled ops do not import (mmcv._ext missing?)." >&2
  echo "[install_mmcv] Remove $CACHE_DIR and re-run to rebuild." >&2
  exit 1
fi
