"""``tools/reproduce.py`` / ``alignshift-reproduce``: the paper's two tables, reproduced.

Train (or load) each variant, test it, and lay the results beside the published figures.

    python tools/reproduce.py --synthetic [--profile tiny|quick|cpu|gpu] [--variants ...] [--seeds 0 1 2]
        [--cross-seeds 0]
    python tools/reproduce.py --train [--data-root data/DeepLesion] [--gpus N] [--variants ...]
    python tools/reproduce.py --snapshots [--checkpoints checkpoints/] [--data-root data/DeepLesion]

Sources of results:
  --synthetic  the synthetic thickness benchmark (alignshift/data/thickness_benchmark.py,
               docs/reproduce.md): each paper config with configs/synthetic/thickness_benchmark.py
               on top, sized by --profile
  --train      the seven published recipes, configs/deeplesion/*.py, on DeepLesion
  --snapshots  the model zoo: checkpoints/<variant>.pth from tools/download.py, tested on DeepLesion
               with configs/deeplesion/official/<variant>.py

Writes OUT/table1.md, table2.md, results.json and froc_curves.png (OUT defaults to
work_dirs/reproduce/<source>), and each run under OUT/runs/. --synthetic also tests every model on
the thickness sweep (each test volume at 0.625-5 mm) and trains each variant on thin series only and
on thick series only (--cross-seeds): OUT/thickness_sweep.md, thickness_sweep.png and
cross_thickness.md (alignshift/apps/reproduce/sweep.py: paired volume bootstrap, seed spread).
Resumable: a finished run (its result.json exists) is skipped, an interrupted training resumes from
its last checkpoint, and a run folder of another config is refused. The tables are rewritten after
every run, so they always show what has finished.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from alignshift.apps.cli import ArgumentParser, run_cli
from alignshift.apps.outputs import claim_output_dir, record_outputs
from alignshift.apps.paths import config_path, source_root
from alignshift.apps.reproduce.configs import OVERLAY, official_config, paper_config
from alignshift.errors import UsageError, UserError
from alignshift.fileio import atomic_write

__all__ = ["cli", "main", "parse_args", "run_one", "write_tables"]

ROOT = source_root()  # configs/ and the default data and output folders

TOOL = "tools/reproduce.py"
MAIN_VARIANTS = ("2.5d_3slice", "2.5d_7slice", "tsm_3slice", "tsm_7slice", "alignshift_3slice",
                 "alignshift_7slice")
ALL_VARIANTS = MAIN_VARIANTS + ("a3d_7slice",)
OUTPUTS = ("table1.md", "table2.md", "results.json", "froc_curves.png", "thickness_sweep.md",
           "thickness_sweep.png", "cross_thickness.md", "runs")
CROSS_SETS = ("thin", "thick")  # the cross-thickness training subsets (benchmark/deeplesion_train_*.json)

# Sizes of the synthetic runs (docs/reproduce.md has their measured times). `data` names the
# benchmark folder and the runs' folder: quick is the first part of cpu (same data and schedule, so a
# cpu run reuses quick's runs). quick: the paper's headline, the three 7-slice variants x 2 seeds on the
# sweep (<= 60 min); cpu: six variants x seeds 0-2 and one seed of the cross-thickness runs, <= 3 h,
# resumable (`--seeds 3 4 5 --cross-seeds` adds seeds); gpu: bigger images, more data, sized for one
# GPU. `variants` defaults to MAIN_VARIANTS.
PROFILES: Dict[str, dict] = {
    "tiny": dict(data="tiny", num_volumes=10, image_size=64, min_test_lesions=0, epochs=1, batch_size=2,
                 test_batch=4, seeds=(0,), cross_seeds=(0,)),
    "quick": dict(data="cpu", num_volumes=100, image_size=64, min_test_lesions=1000, epochs=24,
                  batch_size=4, test_batch=8, seeds=(0, 1), cross_seeds=(),
                  variants=("2.5d_7slice", "tsm_7slice", "alignshift_7slice")),
    "cpu": dict(data="cpu", num_volumes=100, image_size=64, min_test_lesions=1000, epochs=24, batch_size=4,
                test_batch=8, seeds=(0, 1, 2), cross_seeds=(0,)),
    "gpu": dict(data="gpu", num_volumes=400, image_size=96, min_test_lesions=2000, epochs=16, batch_size=8,
                test_batch=16, seeds=(0, 1, 2, 3, 4), cross_seeds=(0, 1, 2)),
}


def parse_args(argv=None) -> argparse.Namespace:
    ap = ArgumentParser(prog="reproduce.py", description="Reproduce the paper's two tables")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", action="store_true", help="the synthetic thickness benchmark")
    src.add_argument("--train", action="store_true",
                     help="train and test the published recipes on DeepLesion")
    src.add_argument("--snapshots", action="store_true", help="test converted published checkpoints")
    ap.add_argument("--variants", nargs="+", default=None,
                    help=f"subset of {', '.join(ALL_VARIANTS)} or 'all' (default: the six 3/7-slice "
                         "variants, --profile quick: the three 7-slice ones; --train: all seven)")
    ap.add_argument("--seeds", nargs="+", type=int, default=None,
                    help="training seeds (default: the profile's; --train and --snapshots: 0)")
    ap.add_argument("--cross-seeds", nargs="*", type=int, default=None,
                    help="--synthetic: seeds of the cross-thickness runs, each variant trained on thin "
                         "series only and on thick series only (default: the profile's; none: skip them)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu", help="size of --synthetic runs")
    ap.add_argument("--epochs", type=int, default=None,
                    help="--synthetic: train this many epochs instead of the profile's (each schedule "
                         "keeps its runs apart, under runs/<data>-e<epochs>/)")
    ap.add_argument("--gpus", type=int, default=1, help="train on N GPUs via tools/dist_train.sh")
    ap.add_argument("--data-root", default=None,
                    help="DeepLesion folder (--train/--snapshots, default data/DeepLesion) or where the "
                         "benchmark is written (--synthetic, default data/thickness_benchmark/<profile>)")
    ap.add_argument("--checkpoints", default=None,
                    help="--snapshots: folder with <variant>.pth, as tools/download.py writes them "
                         "(default checkpoints/)")
    ap.add_argument("--out", default=None, help="output folder (default work_dirs/reproduce/<source>)")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="mark cells whose |measured - published| exceeds this many points "
                         "(default 2; the tables of --synthetic compare a different task)")
    ap.add_argument("--tables-only", action="store_true",
                    help="rebuild the tables from the finished runs, start nothing")
    ap.add_argument("--force", action="store_true", help="discard the earlier runs and tables in OUT")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    return ap.parse_args(argv)


def _official_variants() -> List[str]:
    """Variants with a published snapshot: an inference config in configs/deeplesion/official/."""
    official = osp.join(ROOT, "configs", "deeplesion", "official")
    return [v for v in ALL_VARIANTS if osp.isfile(osp.join(official, f"{v}.py"))]


def _variants(args) -> List[str]:
    known = _official_variants() if args.snapshots else list(ALL_VARIANTS)
    if not args.variants:
        if args.synthetic:
            return list(PROFILES[args.profile].get("variants", MAIN_VARIANTS))
        return list(known)
    if args.variants == ["all"]:
        return known
    bad = [v for v in args.variants if v not in known]
    if bad:
        raise UsageError(f"--variants: unknown {', '.join(bad)}; expected some of {', '.join(known)} "
                         "or 'all'")
    return list(dict.fromkeys(args.variants))


def machine() -> str:
    """The hardware the runs used, in words (recorded in results.json and the tables)."""
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)} x {names[0]} (CUDA), torch {torch.__version__}"
    threads = torch.get_num_threads()
    return (f"CPU only: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
            f"{threads} torch threads, torch {torch.__version__}")


BENCHMARK_TOOL = "reproduce-benchmark"  # owner named in the benchmark data folder's marker


def prepare_synthetic(profile: str, data_root: str) -> str:
    """Write the benchmark of ``profile`` into ``data_root`` unless an identical one is there.

    ``data_root`` must be new, empty, or an earlier benchmark of this tool (its marker lists every
    file it wrote); an earlier benchmark of another size is replaced, and nothing else there is
    touched.
    """
    from tqdm import tqdm

    from alignshift.apps import prepare_deeplesion
    from alignshift.data.thickness_benchmark import (
        OUTPUTS,
        PARTIAL,
        BenchmarkSpec,
        make_thickness_benchmark,
        plan_volumes,
    )

    p = PROFILES[profile]
    spec = BenchmarkSpec(num_volumes=p["num_volumes"], image_size=p["image_size"], seed=0,
                         min_test_lesions=p["min_test_lesions"], sweep=True)
    want = dict(spec.__dict__, split_fractions=list(spec.split_fractions))
    stamp = osp.join(data_root, "benchmark.json")
    ann = [osp.join(data_root, "annotations", f"deeplesion_{s}.json") for s in ("train", "val", "test")]
    if osp.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == want and all(osp.exists(a) for a in ann):
                print(f"benchmark data: reusing {data_root}", flush=True)
                return data_root
    # a folder of a user's is refused; an earlier benchmark (its marker lists it) is replaced
    claim_output_dir(data_root, BENCHMARK_TOOL, force=True)
    record_outputs(data_root, BENCHMARK_TOOL, ["benchmark.json", *OUTPUTS, PARTIAL, "annotations"])
    total, test_lesions = plan_volumes(spec)
    print(f"benchmark data: writing {total} volumes ({spec.num_volumes} split train/val/test, then "
          f"test-only ones up to {test_lesions} test lesions), thin and thick, every test volume also at "
          f"each sweep interval, {spec.image_size} px, to {data_root}", flush=True)
    make_thickness_benchmark(data_root, spec, progress=lambda it: tqdm(it, total=total, desc="volumes"))
    prepare_deeplesion.main(["--data-root", data_root])
    # every file listed, so that a later replacement removes exactly these
    record_outputs(data_root, BENCHMARK_TOOL,
                   [osp.relpath(osp.join(d, f), data_root).replace(os.sep, "/")
                    for sub in ("Images_png", "annotations", "benchmark")
                    for d, _, fs in os.walk(osp.join(data_root, sub))
                    for f in fs])
    with atomic_write(stamp) as f:
        json.dump(want, f, indent=1)
    return data_root


def _run(cmd: Sequence[str], env: dict, log: str) -> int:
    """Run a child tool, its output on our terminal and in ``log``."""
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(list(cmd), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write("    " + line)
            f.write(line)
        sys.stdout.flush()
        return proc.wait()


def _summarise_predictions(path: str, only: Optional[Sequence[str]] = None) -> dict:
    """Tables 1 and 2's figures of one run: all images of ``path``, or those named in ``only``."""
    import numpy as np

    from alignshift.apps.reproduce.tables import run_summary

    with open(path) as f:
        images = json.load(f)["images"]
    if only is not None:
        keep = set(only)
        images = [r for r in images if r["file_name"] in keep]
        if len(images) != len(keep):
            raise RuntimeError(f"{path} lacks {len(keep) - len(images)} of the test split's images")
    return run_summary([np.asarray(r["pred_boxes"], np.float64).reshape(-1, 5) for r in images],
                       [np.asarray(r["gt_boxes"], np.float64).reshape(-1, 4) for r in images],
                       [float(r["thickness"]) for r in images])


def run_options(options: Dict[str, object], seed: int, train_ann: Optional[str] = None,
                sweep_ann: Optional[str] = None) -> Dict[str, object]:
    """The config options of one run: the source's, its seed, and its training and test files."""
    options = dict(options, **{"randomness.seed": seed})
    if train_ann:
        options["train_dataloader.dataset.ann_file"] = train_ann
    if sweep_ann:
        options["test_dataloader.dataset.ann_file"] = sweep_ann
    return options


CONFIG_DIGEST = "config.sha1"  # in each run folder: the digest of the config the driver resolved for it


def _config_digest(base: str, overlay: Optional[str], env: Optional[Dict[str, str]],
                   options: Dict[str, object]) -> str:
    import hashlib

    from alignshift.apps.reproduce.configs import load_run_config

    text = load_run_config(base, overlay, env, options).pretty_text
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def check_run_config(run_dir: str, base: str, overlay: Optional[str], env: Optional[Dict[str, str]],
                     options: Dict[str, object], out: str) -> None:
    """Refuse to reuse or resume a run folder whose config differs from the one this command resolves
    (another recipe, data root or schedule): its results would be mistaken for this command's.

    The driver records the digest of each run's resolved config in ``run_dir/config.sha1`` (the
    training tool rewrites ``config.py`` with its runtime keys, so that file is not compared). A run
    folder with a checkpoint or a result but no digest was made by an earlier version: refused too.
    """
    path = osp.join(run_dir, CONFIG_DIGEST)
    if osp.exists(path):
        with open(path) as f:
            if f.read().strip() == _config_digest(base, overlay, env, options):
                return
        why = "a run of another config than this command's (another recipe, data root or schedule)"
    elif osp.exists(osp.join(run_dir, "result.json")) or osp.exists(osp.join(run_dir, "last_checkpoint")):
        why = f"a run without {CONFIG_DIGEST} (an earlier version's), whose config cannot be checked"
    else:
        return
    raise UserError(f"{run_dir} holds {why}; move it away, or choose another output folder, or discard "
                    f"every run in {out} with --force")


def _finished(res_path: str, sweep_ann: Optional[str]) -> Optional[dict]:
    """The finished run's result (sensitivities as fractions), or None when it must (still) run: no
    result yet, or a sweep is wanted and the run has none (it is then tested again, not retrained)."""
    if not osp.exists(res_path):
        return None
    if sweep_ann and not osp.exists(osp.join(osp.dirname(res_path), "sweep.npz")):
        return None
    from alignshift.apps.reproduce.tables import from_percent

    with open(res_path) as f:
        done = json.load(f)
    done = dict(done, subsets=from_percent(done["subsets"]))
    if sweep_ann:
        done["sweep_file"] = osp.join(osp.dirname(res_path), "sweep.npz")
    return done


def run_one(variant: str, seed: int, run_dir: str, env: dict, base: str, overlay: Optional[str],
            options: Dict[str, object], gpus: int, checkpoint: Optional[str] = None,
            config_env: Optional[Dict[str, str]] = None, train_ann: Optional[str] = None,
            sweep_ann: Optional[str] = None, test_batch: Optional[int] = None) -> dict:
    """Train (or resume) then test one variant with one seed; return its result (also written to
    ``run_dir/result.json``).

    The run's resolved config (``base`` + ``overlay`` + ``options`` + the seed) is written to
    ``run_dir/config.py`` first, and training and testing read it. ``train_ann`` replaces the
    training annotation file (the cross-thickness subsets). With ``sweep_ann`` (the benchmark's
    sweep) the model is tested on the sweep instead of the test split: Tables 1 and 2's figures come
    from its ``standard`` images (the test split), and ``run_dir/sweep.npz`` holds the sweep's
    (:func:`alignshift.apps.reproduce.sweep.summarise_sweep`). ``test_batch`` images per test
    iteration, given to the test tool only (an execution detail, like its workers: not in the run's
    config, whose digest guards what was trained).
    """
    from alignshift.apps.reproduce.configs import write_run_config

    os.makedirs(run_dir, exist_ok=True)
    log = osp.join(run_dir, "reproduce.log")
    opts = run_options(options, seed, train_ann, sweep_ann)
    config = write_run_config(osp.join(run_dir, "config.py"), base, overlay, config_env, opts)
    with atomic_write(osp.join(run_dir, CONFIG_DIGEST)) as f:
        f.write(_config_digest(base, overlay, config_env, opts) + "\n")
    t0 = time.time()
    if checkpoint is None:
        from mmengine.config import Config

        epochs = int(Config.fromfile(config, import_custom_modules=False).train_cfg.max_epochs)
        final = osp.join(run_dir, f"epoch_{epochs}.pth")
        if osp.exists(final):
            print(f"  trained: {final} exists", flush=True)
        else:
            resume = ["--resume"] if osp.exists(osp.join(run_dir, "last_checkpoint")) else []
            if resume:
                print("  resuming the interrupted training from its last checkpoint", flush=True)
            train_opts = ["--work-dir", run_dir, *resume]
            if gpus > 1:
                cmd = ["bash", "tools/dist_train.sh", config, str(gpus), *train_opts]
                env = dict(env, PYTHON=sys.executable)
            else:
                cmd = [sys.executable, "-m", "alignshift.apps.train", config, *train_opts]
            if _run(cmd, env, log) != 0 or not osp.exists(final):
                raise RuntimeError(f"training failed (log: {log})")
        checkpoint = final
    t1 = time.time()
    preds = osp.join(run_dir, "predictions.json")
    cmd = [sys.executable, "-m", "alignshift.apps.test", config, checkpoint, "--work-dir", run_dir,
           "--out", preds, "--cfg-options", f"test_evaluator.out_dir={osp.join(run_dir, 'test')}"]
    if test_batch:
        cmd.append(f"test_dataloader.batch_size={test_batch}")
    if _run(cmd, env, log) != 0 or not osp.exists(preds):
        raise RuntimeError(f"testing failed (log: {log})")
    only = None
    result_extra: Dict[str, object] = {}
    if sweep_ann:
        from alignshift.apps.reproduce.sweep import save_sweep, standard_images, summarise_sweep, sweep_path

        only = standard_images(sweep_ann)
        sw = summarise_sweep(preds, sweep_ann)
        save_sweep(sweep_path(run_dir), sw)
        result_extra["sweep"] = dict(file="sweep.npz", intervals=[float(x) for x in sw["intervals"]],
                                     avg=[float(x) for x in sw["avg"]],
                                     num_lesions=[int(x) for x in sw["num_lesions"]])
    result = dict(variant=variant, seed=seed, config=osp.relpath(base, ROOT),
                  train_ann=train_ann, checkpoint=osp.relpath(checkpoint, run_dir),
                  train_s=round(t1 - t0, 1), test_s=round(time.time() - t1, 1),
                  subsets=_summarise_predictions(preds, only), **result_extra)
    from alignshift.apps.reproduce.tables import to_percent

    with atomic_write(osp.join(run_dir, "result.json")) as f:  # in percent, as the paper's tables
        json.dump(dict(result, subsets=to_percent(result["subsets"]),
                       **({"sweep": to_percent(result["sweep"])} if sweep_ann else {})), f, indent=1)
    return dict(result, sweep_file=osp.join(run_dir, "sweep.npz")) if sweep_ann else result


def write_sweep_tables(out: str, status: str, runs: Dict[str, List[dict]],
                       cross: Dict[str, Dict[str, List[dict]]]) -> dict:
    """thickness_sweep.md/.png and cross_thickness.md from the runs' sweep.npz; returns their
    figures (percent) for results.json."""
    from alignshift.apps.reproduce.sweep import check_paired, load_sweep
    from alignshift.apps.reproduce.sweep_report import (
        cross_document,
        percent,
        plot_sweep,
        render_cross,
        render_sweep,
        sweep_document,
    )

    def load(rs: Dict[str, List[dict]]) -> Dict[str, list]:
        return {v: [load_sweep(r["sweep_file"]) for r in lst] for v, lst in rs.items()}

    every = [r["sweep_file"] for rs in [runs, *cross.values()] for lst in rs.values() for r in lst]
    main, by_set = load(runs), {t: load(rs) for t, rs in cross.items()}
    loaded = [x for rs in [main, *by_set.values()] for lst in rs.values() for x in lst]
    if loaded:
        check_paired(loaded, every)
    doc = sweep_document(main)
    cdoc = cross_document(by_set)
    with atomic_write(osp.join(out, "thickness_sweep.md")) as f:
        f.write(render_sweep(doc, status))
    with atomic_write(osp.join(out, "cross_thickness.md")) as f:
        f.write(render_cross(cdoc, status))
    if doc["variants"]:
        plot_sweep(doc, osp.join(out, "thickness_sweep.png"), title=status.split(";")[0])
    return dict(thickness_sweep=percent(doc), cross_thickness=percent(cdoc))


def write_tables(out: str, header: dict, runs: Dict[str, List[dict]], tolerance: float,
                 note: str, cross: Optional[Dict[str, Dict[str, List[dict]]]] = None) -> str:
    """Aggregate the finished runs; write table1.md, table2.md, results.json, froc_curves.png, and
    with ``cross`` (the synthetic benchmark) the sweep's files (:func:`write_sweep_tables`)."""
    from alignshift.apps.reproduce.tables import (
        build_results,
        plot_froc_panels,
        render_gap_table,
        render_table1,
        render_table2,
        to_percent,
    )

    summaries = {v: [dict(r["subsets"], seed=r["seed"]) for r in rs] for v, rs in runs.items() if rs}
    results = build_results(summaries, tolerance)
    if not results:
        return "no run has finished yet"
    done = sum(len(rs) for rs in runs.values())
    done += sum(len(rs) for c in (cross or {}).values() for rs in c.values())
    status = (f"Source: {header['source']}"
              + (f", profile {header['profile']}" if header.get("profile") else "")
              + f"; {done} of {header['planned_runs']} runs finished; machine: {header['machine']}.")
    preface = f"{status}\n\n{note}\n\n" if note else f"{status}\n\n"
    t1 = preface + render_table1(results, tolerance)
    t2 = preface + render_gap_table(results) + "\n" + render_table2(results, tolerance)
    with atomic_write(osp.join(out, "table1.md")) as f:
        f.write(t1)
    with atomic_write(osp.join(out, "table2.md")) as f:
        f.write(t2)
    doc = dict(header, finished_runs=done, tolerance=tolerance, variants={})
    for v, r in results.items():
        per_seed = [dict({k: rr[k] for k in ("seed", "train_s", "test_s")},
                         **{sub: {k: x for k, x in rr["subsets"][sub].items() if k != "curve"}
                            for sub in rr["subsets"]}) for rr in runs[v]]
        doc["variants"][v] = dict(measured=r["measured"], published=r["published"],
                                  difference=r["difference"], runs=per_seed)
    extra = write_sweep_tables(out, status, runs, cross) if cross is not None else {}
    with atomic_write(osp.join(out, "results.json")) as f:  # in percent, as the paper's tables
        json.dump(dict(to_percent(doc), **extra, unit="percent"), f, indent=1)
    plot_froc_panels(results, osp.join(out, "froc_curves.png"), title=status.split(";")[0])
    return t1 + "\n" + t2


SYNTHETIC_NOTE = ("The published figures are DeepLesion's; the synthetic benchmark is a different, smaller "
                  "task, so its differences show the layout, not a reproduction. What it tests is the "
                  "thin-thick gap of each variant (the summary in table2.md).")


def main(argv=None) -> int:
    args = parse_args(argv)
    variants = _variants(args)
    source = "synthetic" if args.synthetic else ("train" if args.train else "snapshots")
    out = osp.abspath(args.out or osp.join(ROOT, "work_dirs", "reproduce",
                                           "deeplesion" if args.train else source))
    if args.gpus < 1:
        raise UsageError(f"--gpus must be >= 1, got {args.gpus}")
    if args.snapshots:
        args.checkpoints = osp.abspath(args.checkpoints or "checkpoints")
    if args.snapshots and not args.tables_only:
        missing = [osp.join(args.checkpoints, f"{v}.pth") for v in variants
                   if not osp.isfile(osp.join(args.checkpoints, f"{v}.pth"))]
        if missing:
            names = " ".join(osp.basename(m)[:-4] for m in missing)
            raise UserError(f"checkpoint {missing[0]} does not exist ({len(missing)} missing); fetch and "
                            f"convert them with: python tools/download.py download NAME (for {names})")
    cross_seeds: List[int] = []
    if args.cross_seeds is not None and not args.synthetic:
        raise UsageError("--cross-seeds applies to --synthetic (the benchmark's thin-only and thick-only "
                         "training subsets)")
    if args.synthetic:
        prof = PROFILES[args.profile]
        seeds = args.seeds if args.seeds is not None else list(prof["seeds"])
        cross_seeds = list(args.cross_seeds if args.cross_seeds is not None else prof["cross_seeds"])
        epochs = prof["epochs"] if args.epochs is None else args.epochs
        if epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {epochs}")
        data_root = osp.abspath(args.data_root or osp.join(ROOT, "data", "thickness_benchmark", prof["data"]))
        bases = {v: paper_config(v) for v in variants}
        overlay: Optional[str] = config_path(OVERLAY)
        tolerance = 2.0 if args.tolerance is None else args.tolerance
        note = SYNTHETIC_NOTE
    else:
        if args.epochs is not None:
            raise UsageError("--epochs applies to --synthetic; --train uses each config's schedule "
                             "(change it with the config)")
        seeds = args.seeds if args.seeds is not None else [0]
        epochs = None
        data_root = osp.abspath(args.data_root or osp.join(ROOT, "data", "DeepLesion"))
        bases = {v: (official_config(v) if args.snapshots else paper_config(v)) for v in variants}
        overlay = None
        tolerance = 2.0 if args.tolerance is None else args.tolerance
        note = ("Measured on the official DeepLesion test split." if args.train else
                "Converted published checkpoints on the official DeepLesion test split.")
        if not args.tables_only:
            for s in ("train", "test") if args.train else ("test",):
                ann = osp.join(data_root, "annotations", f"deeplesion_{s}.json")
                if not osp.exists(ann):
                    raise UserError(f"{ann} does not exist: download DeepLesion and run "
                                    f"tools/prepare_deeplesion.py --data-root {data_root}")
    if any(s < 0 for s in seeds):
        raise UsageError(f"--seeds must be >= 0, got {seeds}")
    if any(s < 0 for s in cross_seeds):
        raise UsageError(f"--cross-seeds must be >= 0, got {cross_seeds}")

    claim_output_dir(out, TOOL, force=args.force)
    record_outputs(out, TOOL, OUTPUTS)
    header = dict(source=source, profile=args.profile if args.synthetic else None,
                  profile_sizes=dict(PROFILES[args.profile], epochs=epochs) if args.synthetic else None,
                  variants=variants, seeds=seeds, cross_seeds=cross_seeds,
                  planned_runs=len(variants) * len(seeds), machine=machine(), data_root=data_root)
    run_root = osp.join(out, "runs")
    if args.synthetic:  # other data or schedules never mix; quick and cpu share theirs
        run_root = osp.join(run_root, f"{PROFILES[args.profile]['data']}-e{epochs}")

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    options: Dict[str, object] = {}
    if args.synthetic:
        if not args.tables_only:
            prepare_synthetic(args.profile, data_root)
        env["THICKNESS_BENCHMARK_ROOT"] = data_root + "/"
        milestone = max(1, int(round(epochs * 0.75)))
        options = {"train_cfg.max_epochs": epochs, "train_cfg.val_interval": epochs + 1,
                   "param_scheduler.1.end": epochs, "param_scheduler.1.milestones": [milestone],
                   "train_dataloader.batch_size": prof["batch_size"]}
    else:
        env["DEEPLESION_ROOT"] = data_root + "/"
    config_env = {k: env[k] for k in ("THICKNESS_BENCHMARK_ROOT", "DEEPLESION_ROOT") if k in env}

    sweep_ann = (osp.join(data_root, "benchmark", "deeplesion_sweep.json") if args.synthetic else None)
    header["planned_runs"] += len(variants) * len(cross_seeds) * len(CROSS_SETS)
    runs: Dict[str, List[dict]] = {v: [] for v in variants}
    cross: Dict[str, Dict[str, List[dict]]] = {t: {v: [] for v in variants} for t in CROSS_SETS}
    failed: List[str] = []
    # seed-major: every variant early in a partial run; the cross-thickness runs after the main ones
    plan = [(v, s, None) for s in seeds for v in variants]
    plan += [(v, s, t) for s in cross_seeds for t in CROSS_SETS for v in variants]
    t_start = time.time()
    for i, (v, s, train_set) in enumerate(plan, start=1):
        name = f"{v} seed {s}" + (f" trained on {train_set} series only" if train_set else "")
        run_dir = osp.join(run_root, v, f"seed{s}") if train_set is None else osp.join(
            run_root, f"train-{train_set}", v, f"seed{s}")
        train_ann = f"benchmark/deeplesion_train_{train_set}.json" if train_set else None
        collect = runs[v] if train_set is None else cross[train_set][v]
        res_path = osp.join(run_dir, "result.json")
        check_run_config(run_dir, bases[v], overlay, config_env,
                         run_options(options, s, train_ann, sweep_ann), out)
        done = _finished(res_path, sweep_ann)
        if done is not None:
            collect.append(done)
            print(f"[{i}/{len(plan)}] {name}: finished earlier ({res_path})", flush=True)
            continue
        if args.tables_only:
            continue
        elapsed = (time.time() - t_start) / 60
        shown = osp.relpath(bases[v], ROOT) + (f" + {OVERLAY}" if overlay else "")
        print(f"\n[{i}/{len(plan)}] {name}: {shown} -> {run_dir} ({elapsed:.1f} min so far)", flush=True)
        ckpt = osp.join(args.checkpoints, f"{v}.pth") if args.snapshots else None
        try:
            r = run_one(v, s, run_dir, env, bases[v], overlay, options, args.gpus, ckpt, config_env,
                        train_ann=train_ann, sweep_ann=sweep_ann,
                        test_batch=prof["test_batch"] if args.synthetic else None)
        except RuntimeError as err:
            print(f"[{i}/{len(plan)}] {name}: {err}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        collect.append(r)
        a = r["subsets"]
        print(f"[{i}/{len(plan)}] {name}: All {100 * a['all']['avg']:.2f} Thin {100 * a['thin']['avg']:.2f} "
              f"Thick {100 * a['thick']['avg']:.2f} (train {r['train_s'] / 60:.1f} min, test "
              f"{r['test_s']:.0f} s)", flush=True)
        write_tables(out, header, runs, tolerance, note, cross if args.synthetic else None)

    text = write_tables(out, header, runs, tolerance, note, cross if args.synthetic else None)
    print("\n" + text)
    if any(runs.values()):
        written = "table1.md, table2.md, results.json and froc_curves.png"
        if args.synthetic:
            with open(osp.join(out, "thickness_sweep.md"), encoding="utf-8") as f:
                print(f.read())
            written = ("table1.md, table2.md, thickness_sweep.md, thickness_sweep.png, cross_thickness.md, "
                       "results.json and froc_curves.png")
        print(f"wrote {written} in {out} ({(time.time() - t_start) / 60:.1f} min)")
    if failed:
        raise UserError(f"{len(failed)} run(s) failed: {', '.join(failed)}; see reproduce.log in each run "
                        "folder, then rerun the same command to retry them")
    missing = [f"{v} seed {s}" + (f" ({t} only)" if t else "") for v, s, t in plan
               if not any(r["seed"] == s for r in (runs[v] if t is None else cross[t][v]))]
    if missing and args.tables_only:
        print(f"not finished yet: {', '.join(missing)}")
    return 0


def cli() -> int:
    """The console script ``alignshift-reproduce``."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
