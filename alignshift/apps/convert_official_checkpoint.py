"""Convert a published mmdet 1.0rc1 AlignShift / TSM / 2.5D checkpoint to this project's detector.

    python tools/convert_official_checkpoint.py IN OUT [--config CFG] [--variant V] [--slices N]

Every tensor of IN is renamed, rearranged (fc_cls: background moved last; fc_reg: lesion rows
kept) or dropped (the mask head: box predictions do not use it), and each change is printed. The
RPN is left as it is. IN's ``meta`` is kept under ``meta['source']``. With --config the converted
weights are loaded into that config's model with strict=True before OUT is written; without it,
the variant comes from --variant or the config text mmdet 1.x stored in IN.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import List, Optional, Tuple

import torch

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.apps.zoo.convert import CheckpointLayoutError, convert_v1_checkpoint
from alignshift.apps.zoo.download import load_checkpoint_file, sha256sum
from alignshift.errors import UsageError, UserError
from alignshift.fileio import atomic_path, ensure_writable_file

__all__ = ["check_loads", "cli", "main", "parse_args", "variant_of_config"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="convert_official_checkpoint.py", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="the published checkpoint (.pth)")
    p.add_argument("output", help="the converted checkpoint to write")
    p.add_argument("--config", help="check OUT loads strictly into this config's model "
                   "(e.g. configs/deeplesion/official/alignshift_7slice.py); also gives the variant")
    p.add_argument("--variant", choices=["alignshift", "tsm", "2.5d"],
                   help="the published model kind (default: from --config or IN's meta)")
    p.add_argument("--slices", type=int, help="number of slices (default: read from the weights)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    return p.parse_args(argv)


def _config_model(path: str):
    from mmengine.config import Config

    try:
        cfg = Config.fromfile(path)
    except Exception as e:
        raise UserError(f"--config {path}: cannot be read ({type(e).__name__}: {e})") from e
    return cfg


def variant_of_config(cfg) -> Tuple[str, int]:
    """``(variant, num_slices)`` of a config's backbone."""
    bb = cfg.model.backbone
    if bb.type == "DenseNet25DBackbone":
        return "2.5d", int(bb.get("num_slices", 3))
    if bb.type == "DenseNet3DBackbone" and bb.get("conv", "alignshift") in ("alignshift", "tsm"):
        return bb.get("conv", "alignshift"), int(bb.get("num_slices", 7))
    raise UserError(f"the config's backbone ({bb.type}, conv={bb.get('conv')}) is not one the published "
                    "snapshots fit (AlignShift / TSM DenseNet3DBackbone or DenseNet25DBackbone)")


def check_loads(cfg, state_dict) -> None:
    """Build ``cfg.model`` and load ``state_dict`` with strict=True (UserError naming the keys)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdet_plugins  # noqa: F401  (registers the project's modules)

    register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        why = " ".join(str(e).split())[:600]
        raise UserError(f"the converted weights do not fit the config's model: {why}") from e


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isfile(args.input):
        raise UserError(f"{args.input}: no such file")
    if osp.abspath(args.input) == osp.abspath(args.output):
        raise UsageError("OUT must differ from IN: the published file is kept as it is")
    ensure_writable_file(args.output, "converted checkpoint")
    cfg, variant, slices = None, args.variant, args.slices
    if args.config:
        if not osp.isfile(args.config):
            raise UserError(f"--config {args.config}: no such file")
        cfg = _config_model(args.config)
        cv, cs = variant_of_config(cfg)
        if variant is not None and variant != cv:
            raise UsageError(f"--variant {variant} contradicts --config {args.config} ({cv})")
        if slices is not None and slices != cs:
            raise UsageError(f"--slices {slices} contradicts --config {args.config} ({cs} slices)")
        variant, slices = cv, cs
    ckpt = load_checkpoint_file(args.input)
    try:
        converted, report = convert_v1_checkpoint(ckpt, variant, slices)
    except CheckpointLayoutError as e:
        raise UserError(f"{args.input}: {e}") from e
    digest = sha256sum(args.input)
    converted["meta"]["source"]["sha256"] = digest
    converted["meta"]["source"]["file"] = osp.basename(args.input)
    print(f"sha256 {digest}  {args.input}")
    for line in report.lines():
        print(line)
    if cfg is not None:
        check_loads(cfg, converted["state_dict"])
        print(f"loads with strict=True into the model of {args.config}")
    with atomic_path(args.output, suffix=".pth") as tmp:
        torch.save(converted, tmp)
    print(f"wrote {args.output}")
    return 0


def cli() -> int:
    """The console script ``alignshift-convert-checkpoint``."""
    return run_cli(main, prog="convert_official_checkpoint.py")


if __name__ == "__main__":
    sys.exit(cli())
