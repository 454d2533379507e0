#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG GPUS [train.py options]
# (on a CPU-only machine the AlignShiftRunner uses gloo). Relative paths (CONFIG, --work-dir, ...)
# are relative to the current folder, as for tools/train.py.
set -euo pipefail
usage="usage: $(basename "$0") CONFIG GPUS [tools/train.py options]  (env: NNODES NODE_RANK PORT MASTER_ADDR PYTHON)"
if [ $# -lt 2 ]; then
    echo "$usage" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
case "$GPUS" in
    ''|*[!0-9]*|0) echo "$(basename "$0"): error: GPUS must be a number >= 1, got '$GPUS'; $usage" >&2; exit 2 ;;
esac
if [ ! -f "$CONFIG" ]; then
    echo "$(basename "$0"): error: config $CONFIG does not exist (relative to $PWD)" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
# the repository, without changing into it: the caller's relative paths keep their meaning
REPO=$(cd "$(dirname "$0")/.." && pwd)
# the project's venv when there is one (torchrun is `python -m torch.distributed.run`)
PYTHON=${PYTHON:-$([ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python)}
PYTHONPATH="$REPO:${PYTHONPATH:-}" "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --nproc_per_node="$GPUS" --master_port="$PORT" \
    "$REPO/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
