"""Two torchrun "nodes" on one machine: ``NNODES=2 NODE_RANK=0/1 tools/dist_train.sh``.

Each node is one CPU process (gloo); they meet through the c10d rendezvous on 127.0.0.1 and train
the demo config for two iterations each (2 images per iteration and rank), from separate work
dirs as separate machines would. A
small hook (written here, loaded through the config's ``custom_imports``) saves every rank's
state dict before and after training; the parameters of both ranks end identical. BatchNorm
statistics are each rank's own (torch's SyncBatchNorm runs on GPUs only).
"""

import os
import signal
import socket
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 600

pytestmark = pytest.mark.e2e

HOOK = '''
import os

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankState(Hook):
    """Saves this rank's state dict at the start and the end of training."""

    def _save(self, runner, tag):
        model = getattr(runner.model, "module", runner.model)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.save(state, os.path.join(runner.work_dir, f"rank{dist.get_rank()}_{tag}.pth"))

    def before_train(self, runner):
        self._save(runner, "start")

    def after_train(self, runner):
        self._save(runner, "end")
'''

CONFIG = '''
_base_ = [{demo!r}]
custom_imports = dict(imports=["mmdet_plugins", "rank_state_hook"], allow_failed_imports=False)
custom_hooks = [dict(type="SaveRankState")]
train_dataloader = dict(dataset=dict(indices=8))  # 4 images per rank: 2 iterations of 2
train_cfg = dict(max_epochs=1, val_interval=1)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=1), visualization=dict(max_images=0))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_train_to_identical_weights(prepared_root, tmp_path):
    (tmp_path / "rank_state_hook.py").write_text(HOOK)
    cfg = tmp_path / "two_nodes.py"
    cfg.write_text(CONFIG.format(demo=os.path.join(ROOT, "configs/demo/alignshift_3slice_synthetic.py")))
    port = _free_port()
    procs = []
    try:
        for rank in (0, 1):
            env = dict(os.environ, NNODES="2", NODE_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       PORT=str(port), RDZV_ID=f"test{port}", PYTHON=sys.executable,
                       PYTHONPATH=str(tmp_path), DEEPLESION_ROOT=str(prepared_root) + "/",
                       OMP_NUM_THREADS="1")
            log = open(tmp_path / f"node{rank}.log", "w")
            procs.append(subprocess.Popen(
                ["bash", os.path.join(ROOT, "tools", "dist_train.sh"), str(cfg), "1",
                 "--work-dir", str(tmp_path / f"node{rank}")],
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))  # its own process group: killed whole on timeout
            log.close()
        for p in procs:
            p.wait(timeout=TIMEOUT_S)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    logs = [(tmp_path / f"node{r}.log").read_text() for r in (0, 1)]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-4000:]
    # rank 0 logs the iterations (c10d numbers the nodes as they join: it may be either node)
    assert sum("Epoch(train) [1][2/2]" in log for log in logs) == 1, logs[0][-3000:]
    states = {}
    for node in (0, 1):
        for f in (tmp_path / f"node{node}").glob("rank*_*.pth"):
            states[f.stem] = torch.load(f, weights_only=True)
    assert sorted(states) == ["rank0_end", "rank0_start", "rank1_end", "rank1_start"]
    params = [k for k in states["rank0_end"] if not k.endswith(
        ("running_mean", "running_var", "num_batches_tracked"))]
    assert len(params) > 100
    differ = [k for k in params if not torch.equal(states["rank0_end"][k], states["rank1_end"][k])]
    assert not differ, f"{len(differ)} parameters differ between the ranks, e.g. {differ[:3]}"
    moved = [k for k in params if not torch.equal(states["rank0_start"][k], states["rank0_end"][k])]
    assert len(moved) > len(params) // 2  # it trained
    # rank 0's checkpoint, on the node that got rank 0, holds the same weights
    ckpts = sorted(tmp_path.glob("node*/epoch_1.pth"))
    assert len(ckpts) == 1 and (ckpts[0].parent / "rank0_end.pth").exists()
    from mmdet_plugins.runner import checkpoint_safe_globals

    with checkpoint_safe_globals():
        ckpt = torch.load(ckpts[0], map_location="cpu", weights_only=True)
    assert all(torch.equal(ckpt["state_dict"][k], states["rank0_end"][k]) for k in params)
