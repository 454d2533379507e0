"""``tools/demo.py`` / ``alignshift-demo`` (``make demo``): the whole loop on synthetic DeepLesion.

On a CPU, in minutes:

1. write a synthetic DeepLesion release (data/synthetic_deeplesion/),
2. prepare its annotations,
3. evaluate the AlignShift 3-slice detector untrained,
4. train it briefly (tools/train.py),
5. evaluate it (tools/test.py) with overlays,
6. print the All/Thin/Thick FROC table and write work_dirs/demo/froc.json and froc.png.

Every step reuses what an earlier run left complete. Relative --data-root and --work-dir are
relative to the current folder; their defaults lie in the repository. The demo never deletes
anything: the synthetic data goes only into a new or empty folder, or one the generator wrote
earlier (reused, never rewritten), and the overlays of an earlier run are replaced by the test's
overlay hook, which touches nothing it did not write.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import shutil
import sys
import time
from typing import Optional, Sequence

from ..errors import UsageError
from ..fileio import atomic_path, atomic_write, ensure_writable_dir
from . import make_synthetic_deeplesion, prepare_deeplesion
from .cli import ArgumentParser, run_cli
from .paths import config_path, source_root

__all__ = ["cli", "main"]

DEMO_CONFIG = "configs/demo/alignshift_3slice_synthetic.py"


def step(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)


def latest_checkpoint(work_dir: str):
    last = osp.join(work_dir, "last_checkpoint")
    if osp.exists(last):
        with open(last) as f:
            path = f.read().strip()
        return path if osp.exists(path) else None
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = ArgumentParser(prog="demo.py", description="The whole loop on synthetic DeepLesion, on a CPU")
    ap.add_argument("--data-root", default=None,
                    help="synthetic data folder: new, empty or an earlier demo's "
                         "(default: data/synthetic_deeplesion in the repository)")
    ap.add_argument("--work-dir", default=None,
                    help="outputs (default: work_dirs/demo in the repository)")
    ap.add_argument("--num-images", type=int, default=200)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=None, help="default: the demo config's")
    ap.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    root = source_root()
    config = config_path(DEMO_CONFIG)
    data_root = osp.abspath(args.data_root or osp.join(root, "data", "synthetic_deeplesion"))
    wd = osp.abspath(args.work_dir or osp.join(root, "work_dirs", "demo"))
    ensure_writable_dir(wd, "--work-dir")
    os.environ["DEEPLESION_ROOT"] = data_root + "/"
    t0 = time.time()

    step(f"1/5 synthetic DeepLesion in {data_root}")
    # never --force: a folder that is not the generator's own is refused, an own one reused
    make_synthetic_deeplesion.main(["--out", data_root, "--num-images", str(args.num_images),
                                    "--image-size", str(args.image_size)])
    step("2/5 annotations")
    ann_dir = osp.join(data_root, "annotations")
    if all(osp.exists(osp.join(ann_dir, f"deeplesion_{s}.json")) for s in ("train", "val", "test")):
        print(f"{ann_dir} exists: reusing it")
    else:
        prepare_deeplesion.main(["--data-root", data_root])

    from mmengine.config import Config

    from mmdet_plugins.apis import build_runner

    from . import test, train

    epoch_opts = []
    if args.epochs:
        epoch_opts = [f"train_cfg.max_epochs={args.epochs}", f"train_cfg.val_interval={args.epochs}"]
    untrained_dir, trained_dir = osp.join(wd, "untrained"), osp.join(wd, "trained")

    step("3/5 evaluating the untrained detector")
    if osp.exists(osp.join(untrained_dir, "froc.json")):
        print(f"{untrained_dir}/froc.json exists: reusing it")
    else:
        cfg = Config.fromfile(config)
        cfg.work_dir = untrained_dir
        cfg.test_evaluator.out_dir = untrained_dir
        runner = build_runner(cfg)
        runner.model.init_weights()  # the initialisation training starts from
        runner.test()

    step("4/5 training (tools/train.py)")
    cfg = Config.fromfile(config)
    max_epochs = args.epochs or cfg.train_cfg.max_epochs
    final = osp.join(wd, f"epoch_{max_epochs}.pth")
    if osp.exists(final):
        print(f"{final} exists: reusing it")
    else:
        resume = ["--resume"] if latest_checkpoint(wd) else []
        # the validation FROC of training goes to val/, apart from the test results
        train.main([config, "--work-dir", wd, *resume, "--cfg-options", *epoch_opts,
                    f"val_evaluator.out_dir={osp.join(wd, 'val')}"])

    step("5/5 evaluating the trained detector (tools/test.py)")
    if osp.exists(osp.join(trained_dir, "froc.json")) and \
            osp.getmtime(osp.join(trained_dir, "froc.json")) > osp.getmtime(final):
        print(f"{trained_dir}/froc.json is newer than {final}: reusing it")
    else:
        # the overlay hook replaces the overlays it wrote before, and nothing else
        test.main([config, final, "--work-dir", wd, "--out", osp.join(wd, "predictions.json"),
                   "--show-dir", osp.join(wd, "overlays"), "--cfg-options",
                   f"test_evaluator.out_dir={trained_dir}"])

    with open(osp.join(untrained_dir, "froc.json")) as f:
        untrained = json.load(f)
    with open(osp.join(trained_dir, "froc.json")) as f:
        trained = json.load(f)
    keep = ("sens", "avg")
    result = {"trained": {k: {f: v[f] for f in keep} for k, v in trained.items()},
              "untrained": {k: {f: v[f] for f in keep} for k, v in untrained.items()}}
    with atomic_write(osp.join(wd, "froc.json")) as f:
        json.dump(result, f, indent=1)
    with atomic_path(osp.join(wd, "froc.png")) as tmp:
        shutil.copyfile(osp.join(trained_dir, "froc.png"), tmp)

    print()
    with open(osp.join(trained_dir, "froc_table.txt")) as f:
        print("Trained, synthetic test split:\n" + f.read())
    with open(osp.join(untrained_dir, "froc_table.txt")) as f:
        print("Untrained (same model before training):\n" + f.read())
    print(f"avg sensitivity over [0.5, 1, 2, 4] FPs: trained {100 * trained['all']['avg']:.2f}% | "
          f"untrained {100 * untrained['all']['avg']:.2f}%")
    print(f"wrote {wd}/froc.json, {wd}/froc.png, {wd}/predictions.json and overlays in "
          f"{wd}/overlays/ ({(time.time() - t0) / 60:.1f} min)")
    return 0


def cli() -> int:
    """The console script ``alignshift-demo``."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
