#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG GPUS [train.py options]
# (on a CPU-only machine the AlignShiftRunner uses gloo). Relative paths (CONFIG, --work-dir, ...)
# are relative to the current folder, as for tools/train.py.
# Several machines: run it on each with NNODES=N, NODE_RANK=0..N-1, MASTER_ADDR=<address of node
# 0> and the same PORT; with NNODES > 1 the nodes meet through torchrun's c10d rendezvous at
# MASTER_ADDR:PORT (RDZV_ID names the job, default alignshift; give each concurrent job its own).
# c10d numbers the nodes as they join, so global rank 0 (the one that writes checkpoints and
# logs) may run on any node; NODE_RANK is checked but torchrun does not use it then.
set -euo pipefail
usage="usage: $(basename "$0") CONFIG GPUS [tools/train.py options]  (env: NNODES NODE_RANK MASTER_ADDR PORT RDZV_ID PYTHON)"
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
RDZV_ID=${RDZV_ID:-alignshift}
case "$NNODES" in
    ''|*[!0-9]*|0) echo "$(basename "$0"): error: NNODES must be a number >= 1, got '$NNODES'" >&2; exit 2 ;;
esac
case "$NODE_RANK" in
    ''|*[!0-9]*) echo "$(basename "$0"): error: NODE_RANK must be a number from 0 to $((NNODES - 1)), got '$NODE_RANK'" >&2; exit 2 ;;
esac
if [ "$NODE_RANK" -ge "$NNODES" ]; then
    echo "$(basename "$0"): error: NODE_RANK must be a number from 0 to $((NNODES - 1)), got '$NODE_RANK'" >&2
    exit 2
fi
case "$PORT" in
    ''|*[!0-9]*) echo "$(basename "$0"): error: PORT must be a port number, got '$PORT'" >&2; exit 2 ;;
esac
if [ "$NNODES" -gt 1 ]; then  # the nodes meet at MASTER_ADDR:PORT (c10d rendezvous)
    LAUNCH=(--nnodes="$NNODES" --rdzv_backend=c10d
            --rdzv_endpoint="$MASTER_ADDR:$PORT" --rdzv_id="$RDZV_ID")
else
    LAUNCH=(--nnodes=1 --node_rank=0 --master_addr="$MASTER_ADDR" --master_port="$PORT")
fi
# the repository, without changing into it: the caller's relative paths keep their meaning
REPO=$(cd "$(dirname "$0")/.." && pwd)
# the project's venv when there is one (torchrun is `python -m torch.distributed.run`)
PYTHON=${PYTHON:-$([ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python)}
PYTHONPATH="$REPO:${PYTHONPATH:-}" "$PYTHON" -m torch.distributed.run "${LAUNCH[@]}" \
    --nproc_per_node="$GPUS" "$REPO/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"
