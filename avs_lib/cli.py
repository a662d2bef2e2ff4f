"""`python -m avs_lib {synth, check-data, pretrain, train, evaluate, report}`: thin wrappers over the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _videos(text: str) -> tuple[int, int, int]:
    parts = [int(x) for x in text.split(",")]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or TRAIN,VAL,TEST clip counts >= 1, got {text!r}")
    return tuple(parts)


def cmd_synth(args: argparse.Namespace) -> int:
    from avs_lib.data.synth import make_dataset

    info = make_dataset(args.root, videos_per_split=args.videos, image_size=args.image_size,
                        seed=args.seed, num_classes=args.classes, progress=not args.quiet)
    clips = ", ".join(f"{split} {n}" for split, n in info.clips.items())
    print(f"wrote {args.root}: {clips} clips at {args.image_size} px, "
          f"{info.bytes_on_disk / 1e6:.1f} MB in {info.seconds:.1f} s")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from avs_lib.data import check_dataset

    report = check_dataset(args.root, progress=not args.quiet)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_pretrain(args: argparse.Namespace) -> int:
    from avs_lib.engine.pretrain import (
        PRETRAINED_FOLDER,
        PretrainConfig,
        ensure_pretrained,
        weight_overrides_from,
    )

    cfg = PretrainConfig(backbone=args.backbone, image_size=args.image_size, crop_size=args.crop_size,
                         visual_epochs=args.visual_epochs, audio_epochs=args.audio_epochs, seed=args.seed)
    out = args.out if args.out is not None else args.root / PRETRAINED_FOLDER
    report = ensure_pretrained(args.root, out, cfg, quiet=args.quiet)
    print(f"visual val accuracy {report['visual']['val_accuracy']:.3f}, audio val accuracy "
          f"{report['audio']['val_accuracy']:.3f} (chance {report['chance_accuracy']:.3f}); {out}")
    sets = " ".join(f"--set model.{k}={v}" for k, v in weight_overrides_from(report)["model"].items())
    print(f"train from them with: python -m avs_lib train {sets}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from avs_lib.config import build_config
    from avs_lib.engine.train import fit

    extra = {}
    if args.seed is not None:
        extra["seed"] = args.seed
    if args.output_dir is not None:
        extra["output_dir"] = args.output_dir
    cfg = build_config(args.profile, args.method, yaml_file=args.config, overrides=args.set, **extra)
    result = fit(cfg, resume=args.resume)
    print(json.dumps({"run_dir": str(result.run_dir), "best_epoch": result.best_epoch,
                      "best_val_miou": result.best_val_miou, **result.test_metrics}, indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from avs_lib.engine.evaluate import evaluate

    metrics = evaluate(args.source, split=args.split, device=args.device, out_dir=args.out,
                       diagnostics=not args.no_diagnostics, data_root=args.data_root)
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from avs_lib.report.notebooks import report_destination, run_notebooks

    # Weight files as absolute paths: the notebooks run in another folder. A missing file is an
    # error before any notebook runs, not in the training notebook.
    extra: dict = {}
    for name, value in (("RESNET_WEIGHTS", args.resnet_weights), ("VGGISH_WEIGHTS", args.vggish_weights)):
        if value:
            if not Path(value).is_file():
                raise FileNotFoundError(f"{name.lower().replace('_', ' ')} file {value} does not exist")
            extra[name] = str(Path(value).resolve())
    if args.methods:
        extra["METHODS"] = list(args.methods)
    if args.seeds:
        extra["SEEDS"] = list(args.seeds)
    if args.set:
        extra["OVERRIDES"] = list(args.set)
    if args.keep_stale_runs:
        extra["KEEP_STALE"] = True
    if args.output_dir is not None:  # the low-level form (`make smoke-notebooks`): as given
        output_dir, figures_dir, html = args.output_dir, args.figures_dir, False
    else:
        where = report_destination(args.profile, args.out)
        output_dir, html = where.notebooks, where.html
        figures_dir = args.figures_dir or where.figures
        print(f"[report] profile {args.profile}: notebooks -> {where.notebooks}, figures -> {figures_dir}",
              flush=True)
    run_notebooks(profile=args.profile, data_root=args.data_root, runs_dir=args.runs_dir, device=args.device,
                  notebooks=args.only, output_dir=output_dir, extra_parameters=extra or None,
                  figures_dir=figures_dir, html=html, log=sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m avs_lib", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write the synthetic AVSBench-format dataset")
    p.add_argument("root", type=Path)
    p.add_argument("--videos", type=_videos, default=(240, 60, 60), help="TRAIN,VAL,TEST clips (default 240,60,60)")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", type=int, default=23,
                   help="draw only the first N of the 23 S4 categories (default 23)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("check-data", help="list every problem of an AVSBench-layout dataset; exit 1 if any")
    p.add_argument("root", type=Path)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("pretrain", help="pretrain the ResNet and the small audio encoder on a dataset's "
                       "train split (the cpu report's stand-in for ImageNet/AudioSet weights)")
    p.add_argument("root", type=Path)
    p.add_argument("--out", type=Path, default=None, help="default: ROOT/pretrained (reused when up to date)")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--image-size", type=int, default=64, help="frame size the AVS model reads (default 64)")
    p.add_argument("--crop-size", type=int, default=32)
    p.add_argument("--visual-epochs", type=int, default=6)
    p.add_argument("--audio-epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("train", help="train one experiment (profile + method + overrides)")
    p.add_argument("--profile", default="cpu", help="smoke | cpu | gpu | paper")
    p.add_argument("--method", default=None, help="a named method, e.g. tpavi, thesis, counterfactual")
    p.add_argument("--config", default=None, help="a YAML file of overrides")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. loss.crop_ce=1.0")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--output-dir", default=None)
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run directory or checkpoint")
    p.add_argument("source", type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--data-root", default=None, help="read the data from here instead of the config's root")
    p.add_argument("--no-diagnostics", action="store_true", help="skip silent/swapped-audio runs")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="run the numbered notebooks with papermill")
    p.add_argument("--profile", default="cpu")
    p.add_argument("--data-root", default="data/synth")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", nargs="*", default=None, help="notebook names to run (default: all)")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="write the executed notebooks here (default: in place, notebooks/)")
    p.add_argument("--figures-dir", default=None, help="save figures here (default: figures/)")
    p.add_argument("--resnet-weights", default=None,
                   help="local torchvision ImageNet ResNet file for the training notebook (default: none)")
    p.add_argument("--vggish-weights", default=None, help="local vggish-10086976.pth (default: none)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="methods to train and compare (default: the profile's grid; needed for paper)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default: the profile's grid)")
    p.add_argument("--out", type=Path, default=None,
                   help="write executed notebooks, their HTML and figures here (default: in place for "
                   "the cpu profile, reports/PROFILE/ for any other)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every run and notebook, e.g. data.dataset=ms3")
    p.add_argument("--keep-stale-runs", action="store_true",
                   help="reuse finished runs made by other code (their config must still match)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
