"""`python -m avs_lib {synth, check-data, crop-labels, pretrain, prepare, train, evaluate, report}`: thin wrappers
over the library."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any


def _videos(text: str) -> tuple[int, int, int]:
    parts = [int(x) for x in text.split(",")]
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or TRAIN,VAL,TEST clip counts >= 1, got {text!r}")
    return tuple(parts)


def _defaults(config: type) -> dict[str, Any]:
    """A config dataclass's field defaults by name: the CLI's defaults are the library's."""
    return {f.name: f.default for f in fields(config) if f.default is not MISSING}


def cmd_synth(args: argparse.Namespace) -> int:
    from avs_lib.datatools.synth import make_dataset

    info = make_dataset(args.root, videos_per_split=args.videos, image_size=args.image_size,
                        seed=args.seed, num_classes=args.classes, progress=not args.quiet)
    clips = ", ".join(f"{split} {n}" for split, n in info.clips.items())
    print(f"wrote {args.root}: {clips} clips at {args.image_size} px, "
          f"{info.bytes_on_disk / 1e6:.1f} MB in {info.seconds:.1f} s")
    return 0


def _reads(profile: str | None, sets: list[str]) -> dict[str, Any]:
    """`check_dataset` arguments for what a profile's runs read (no profile: whatever is there)."""
    if profile is None:
        return {}
    from avs_lib.datatools.profiles import build_config

    data = build_config(profile, overrides=sets).data
    return {"audio": data.audio, "layout": data.dataset}


def cmd_check(args: argparse.Namespace) -> int:
    from avs_lib.datatools.check import check_dataset

    report = check_dataset(args.root, progress=not args.quiet, **_reads(args.profile, args.set))
    print(report.summary())
    return 0 if report.ok else 1


def cmd_crop_labels(args: argparse.Namespace) -> int:
    from avs_lib.datatools.crop_labels import bootstrap_crop_labels

    report = bootstrap_crop_labels(args.root, splits=args.split, subset=args.subset,
                                   overwrite=args.overwrite, progress=not args.quiet)
    print(report.summary())
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from avs_lib.datatools import pretrain

    given = {name: getattr(args, name) for name in _defaults(pretrain.PretrainConfig) if hasattr(args, name)}
    out = args.out if args.out is not None else args.root / pretrain.PRETRAINED_FOLDER
    report = pretrain.ensure_pretrained(args.root, out, pretrain.PretrainConfig(**given), quiet=args.quiet)
    print(f"visual val accuracy {report['visual']['val_accuracy']:.3f}, audio val accuracy "
          f"{report['audio']['val_accuracy']:.3f} (chance {report['chance_accuracy']:.3f}); {out}")
    sets = " ".join(f"--set model.{k}={v}" for k, v in pretrain.weight_overrides_from(report)["model"].items())
    print(f"train from them with: python -m avs_lib train {sets}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """A profile's data (generated when synthetic), checked, and its encoders' starting weights."""
    from avs_lib.datatools.check import check_dataset
    from avs_lib.report.runs import prepare_data, starting_weights

    root = prepare_data(args.profile, args.data_root, progress=not args.quiet, overrides=args.set)
    report = check_dataset(root, progress=not args.quiet, **_reads(args.profile, args.set))
    print(f"data root {root}: {report.summary()}")
    if not report.ok:
        return 1
    weights = starting_weights(args.profile, root, args.resnet_weights, args.vggish_weights, quiet=args.quiet)
    print("starting weights:", json.dumps(weights.get("model")) if weights else "random init (no weight files)")
    return 0


def train_config(args: argparse.Namespace):
    """The run `train` trains: prepared data, starting weights and config as the report resolves them."""
    from avs_lib.datatools.profiles import build_config
    from avs_lib.report import runs

    # The overrides are checked before any data is generated or any encoder pretrained.
    root = str(runs.data_root_of(args.profile, args.data_root).resolve())
    build_config(args.profile, args.method, yaml_file=args.config, overrides=args.set, data={"root": root})
    flags = {"data.root": "--data-root", "output_dir": "--runs-dir", "seed": "--seed", "device": "--device",
             "quiet": "--quiet"}
    placed = [f"{key} (use {flag})" for text in args.set for key, flag in flags.items()
              if text.split("=", 1)[0].strip() == key]
    if placed:  # these are the run's place, set by flags; an override would be silently replaced
        raise ValueError(f"--set cannot change {', '.join(placed)}")
    if args.dry_run:  # generate, pretrain and write nothing: show where it would go
        weights = runs.weight_overrides(args.resnet_weights, args.vggish_weights)
    else:
        root = runs.prepare_data(args.profile, args.data_root, progress=not args.quiet,
                                 overrides=args.set if args.config is None else None)
        weights = runs.starting_weights(args.profile, root, args.resnet_weights, args.vggish_weights, quiet=args.quiet)
    return runs.run_config(args.profile, args.method, args.seed, root, args.runs_dir, device=args.device,
                      weights=weights, overrides=args.set, yaml_file=args.config, quiet=args.quiet)


def cmd_train(args: argparse.Namespace) -> int:
    from avs_lib.config import to_dict

    cfg = train_config(args)
    print(f"profile {args.profile}, method {cfg.name}, seed {cfg.seed}: data root {cfg.data.root}, "
          f"run directory {cfg.run_dir}")
    if args.dry_run:
        print(json.dumps(to_dict(cfg), indent=2, default=str))
        print("dry run: no data generated, no encoder pretrained, nothing written (weights a profile "
              "pretrains are not in the config above)")
        return 0
    from avs_lib.engine.train import fit

    try:
        result = fit(cfg, resume=args.resume or args.resume_changed_config,
                     allow_config_change=args.resume_changed_config)
    except FloatingPointError as err:  # name the run that diverged
        raise FloatingPointError(f"{cfg.run_dir}: {err}") from None
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
    from avs_lib.datatools.profiles import build_config
    from avs_lib.report.experiments import grid_for
    from avs_lib.report.notebooks import report_destination, run_notebooks
    from avs_lib.report.runs import META_FILES, check_reads, data_root_of

    # What would stop the report in a notebook (no grid, data lacking what runs read) is refused first.
    grid_for(args.profile, args.methods, args.seeds)
    root = data_root_of(args.profile, args.data_root).resolve()
    if any((root / name).is_file() for name in META_FILES):
        check_reads(root, build_config(args.profile, overrides=args.set))

    # Weight files as absolute paths: the notebooks run in another folder. A missing file is an
    # error before any notebook runs, not in the training notebook.
    weights = {"RESNET_WEIGHTS": args.resnet_weights, "VGGISH_WEIGHTS": args.vggish_weights}
    for name, value in weights.items():
        if value and not Path(value).is_file():
            raise FileNotFoundError(f"{name.lower().replace('_', ' ')} file {value} does not exist")
    extra = {name: str(Path(value).resolve()) for name, value in weights.items() if value}
    extra.update({name: value for name, value in (("METHODS", args.methods), ("SEEDS", args.seeds),
                                                   ("OVERRIDES", args.set), ("KEEP_STALE", args.keep_stale_runs))
                  if value})
    if args.output_dir is not None:  # the low-level form (`make smoke-notebooks`): as given
        output_dir, figures_dir, html = args.output_dir, args.figures_dir, False
    else:
        where = report_destination(args.profile, args.out, args.data_root)
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
    _add_data_commands(sub)
    _add_run_commands(sub)
    return parser


# Flags several commands share, defined once (a command may change a keyword).
SHARED: dict[str, dict[str, Any]] = {
    "--profile": {"default": "cpu", "help": "smoke | cpu | gpu | paper (default %(default)s)"},
    "--data-root": {"default": None, "help": "dataset root (default: the profile's; a synthetic profile generates it)"},
    "--runs-dir": {"default": "runs", "help": "runs go to RUNS_DIR/PROFILE/DATASET-DIGEST/METHOD_seedSEED"},
    "--device": {"default": "auto", "help": "auto | cpu | cuda | cuda:N"},
    "--resnet-weights": {"default": None, "help": "local torchvision ImageNet ResNet file (default: none)"},
    "--vggish-weights": {"default": None, "help": "local vggish-10086976.pth (default: none)"},
    "--set": {"action": "append", "default": [], "metavar": "KEY=VALUE",
              "help": "config override for every run, e.g. data.dataset=ms3 or data.audio=pkl"},
    "--quiet": {"action": "store_true", "help": "no progress bars"},
}


def _command(sub, name: str, func, summary: str, *shared: str, **changed: dict[str, Any]) -> argparse.ArgumentParser:
    """A subcommand with the `SHARED` flags named; `changed` maps a flag's dest to other keywords."""
    p = sub.add_parser(name, help=summary)
    for flag in shared:
        p.add_argument(flag, **{**SHARED[flag], **changed.get(flag[2:].replace("-", "_"), {})})
    p.set_defaults(func=func)
    return p


def _add_data_commands(sub) -> None:
    """synth, check-data, crop-labels, pretrain: the commands that make or inspect a dataset."""
    from avs_lib.datatools.profiles import PretrainConfig, get_profile
    from avs_lib.datatools.synth import SynthParams

    # The defaults write the cpu profile's dataset (what `make report` reads), with the generator's seed.
    data, seed = asdict(get_profile("cpu").synthetic), _defaults(SynthParams)["seed"]
    p = _command(sub, "synth", cmd_synth, "write the synthetic AVSBench-format dataset", "--quiet")
    p.add_argument("root", type=Path)
    videos = data["videos_per_split"]
    p.add_argument("--videos", type=_videos, default=videos,
                   help=f"TRAIN,VAL,TEST clips (default: the cpu profile's, {','.join(map(str, videos))})")
    p.add_argument("--image-size", type=int, default=data["image_size"],
                   help="default: the cpu profile's, %(default)s")
    p.add_argument("--seed", type=int, default=seed, help="default %(default)s")
    p.add_argument("--classes", type=int, default=data["num_classes"],
                   help="draw only the first N of the 23 S4 categories (default: the cpu profile's, %(default)s)")

    p = _command(sub, "check-data", cmd_check, "list every problem of an AVSBench-layout dataset; exit 1 if any",
                 "--profile", "--set", "--quiet", profile={"default": None, "help": "check what this profile's "
                 "runs read (WAVs or log-mels, S4 or MS3); default: what is there"})
    p.add_argument("root", type=Path)

    p = _command(sub, "crop-labels", cmd_crop_labels, "write labelImg crop labels (boxes) from the ground-truth "
                 "masks; hand-drawn files are kept", "--quiet")
    p.add_argument("root", type=Path)
    p.add_argument("--split", nargs="+", help="splits to label (default: all)")
    p.add_argument("--subset", choices=("s4", "ms3"), help="default: the one whose CSV is in ROOT")
    p.add_argument("--overwrite", action="store_true", help="also replace hand-drawn labels")

    p = _command(sub, "pretrain", cmd_pretrain, "pretrain the ResNet and the small audio encoder on a dataset's "
                 "train split (the cpu report's stand-in for ImageNet/AudioSet weights)", "--quiet")
    p.add_argument("root", type=Path)
    p.add_argument("--out", type=Path, help="default: ROOT/pretrained (reused when up to date)")
    pretrain = _defaults(PretrainConfig)
    for name, kind, text in (("backbone", str, ""), ("image-size", int, "frame size the AVS model reads "),
                             ("crop-size", int, ""), ("visual-epochs", int, ""), ("audio-epochs", int, ""),
                             ("seed", int, ""), ("threads", int, "intra-op threads pretraining runs with, "
                              "whatever the machine has: the weights depend on it ")):
        p.add_argument(f"--{name}", type=kind, default=pretrain[name.replace("-", "_")],
                       help=f"{text}(default %(default)s)")


def _add_run_commands(sub) -> None:
    """prepare, train, evaluate, report: the commands that train, score and report runs."""
    _command(sub, "prepare", cmd_prepare, "generate (synthetic profiles) and check a profile's data, and make its "
             "encoders' starting weights", "--profile", "--data-root", "--resnet-weights", "--vggish-weights",
             "--set", "--quiet")

    p = _command(sub, "train", cmd_train, "train one run of a profile: the config and run directory of the "
                 "report's run", "--profile", "--data-root", "--runs-dir", "--device", "--resnet-weights",
                 "--vggish-weights", "--set", "--quiet",
                 set={"nargs": "+", "action": "extend", "help": "overrides, e.g. --set loss.crop_ce=0.5 optim.lr=2e-3"})
    p.add_argument("--method", default="tpavi", help="a named method, e.g. tpavi, thesis, counterfactual")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="a YAML file of overrides")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last.pt")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config; train nothing")
    p.add_argument("--resume-changed-config", action="store_true",
                   help="resume even though the config differs from the checkpoint's (implies --resume)")

    p = _command(sub, "evaluate", cmd_evaluate, "evaluate a run directory or checkpoint", "--device", "--data-root",
                 data_root={"help": "read the data from here instead of the config's root"})
    p.add_argument("source", type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--out", type=Path)
    p.add_argument("--no-diagnostics", action="store_true", help="skip silent/swapped-audio runs")

    p = _command(sub, "report", cmd_report, "run the numbered notebooks with papermill", "--profile", "--data-root",
                 "--runs-dir", "--device", "--resnet-weights", "--vggish-weights", "--set")
    p.add_argument("--only", nargs="*", help="notebook names to run (default: all)")
    p.add_argument("--output-dir", type=Path, help="write the executed notebooks here (default: in place, notebooks/)")
    p.add_argument("--figures-dir", help="save figures here (default: figures/)")
    p.add_argument("--methods", nargs="+",
                   help="methods to train and compare (default: the profile's grid; needed for paper)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the profile's grid)")
    p.add_argument("--out", type=Path, help="write executed notebooks, their HTML and figures here (default: in "
                   "place for the cpu profile, reports/PROFILE/ for any other)")
    p.add_argument("--keep-stale-runs", action="store_true",
                   help="reuse finished runs made by other code (their config must still match)")


def _one_line(err: BaseException) -> str:
    """An error as one line that names its file: OSError's path first, then what went wrong."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        where = f"{err.filename} -> {err.filename2}" if err.filename2 else str(err.filename)
        text = f"{where}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    import yaml

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    # What a person can fix -- bad data, config, paths, a full disk, a diverged run -- is one line
    # naming the file; anything else is a bug and keeps its traceback.
    except (ValueError, OSError, FloatingPointError, yaml.YAMLError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
