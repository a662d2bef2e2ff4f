"""The cpu report's companion benchmarks (`grids.COMPANIONS`): `cpu_multilook` (three
looks per class, shared colours: a crop's class is not its colour) and `cpu_noisy` (sound under
0-20 dB SNR noise)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avs_lib.datatools.profiles import get_profile
from avs_lib.report import experiments, runs, shifted
from avs_lib.report.grids import COMPANIONS, GRIDS
from avs_lib.report.results import results_long

NOISY, MULTILOOK = "cpu_noisy", "cpu_multilook"
NOISE_SPLITS = ("shifted_snr10db", "shifted_snr0db")


def companion_root(name: str, data_root: str | Path) -> Path:
    """A companion's data root, beside the main profile's."""
    return Path(data_root).parent / Path(get_profile(name).data_root).name


def train_companions(profile: str, data_root: str | Path, runs_dir: str | Path, device: str = "auto",
                     jobs: int = 1, reuse_stale: bool = False) -> pd.DataFrame:
    """Train every companion's grid; one row per run, the companion's name in `profile`."""
    frames = []
    for name in COMPANIONS.get(profile, ()):
        root = runs.prepare_data(name, companion_root(name, data_root))
        weights = runs.starting_weights(name, root, quiet=True)
        done = experiments.train_grid(name, GRIDS[name], root, runs_dir, device=device, jobs=jobs,
                                      weights=weights, reuse_stale=reuse_stale)
        frames.append(done.assign(profile=name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["profile", "method", "seed"])


def companion_runs(name: str, data_root: str | Path, runs_dir: str | Path) -> tuple[Path, Path, list[tuple[str, int]]]:
    """A companion's data root, run folder and tested (method, seed) pairs."""
    root = runs.prepare_data(name, companion_root(name, data_root))
    return root, runs.run_folder(name, root, runs_dir), GRIDS[name].pairs


def noise_scores(cpu_runs: Path, cpu_pairs: list[tuple[str, int]], cpu_root: Path, noisy_runs: Path,
                 noisy_pairs: list[tuple[str, int]], device: str = "auto", jobs: int = 1) -> pd.DataFrame:
    """`tpavi` trained on clean and on mixed-SNR sound, scored on the clean and noisy test splits."""
    roots = {name: root for name, root in shifted.shifted_roots("cpu", cpu_root).items() if name in NOISE_SPLITS}
    tested = {"clean sound": (cpu_runs, [p for p in cpu_pairs if p[0] == "tpavi"], {}),
              "0-20 dB mix": (noisy_runs, [p for p in noisy_pairs if p[0] == "tpavi"], {"clean": cpu_root})}
    rows = []
    for trained_on, (folder, pairs, own) in tested.items():
        scores = shifted.evaluate_on_shifted(folder, pairs, {**own, **roots}, device=device, jobs=jobs)
        if not own:  # the clean-trained runs' clean scores are their own test split
            clean = experiments.collect_results(folder, pairs=pairs).rename(columns=lambda c: c.removeprefix("test_"))
            scores = pd.concat([clean.assign(split="clean", miou_onscreen=clean["miou"]), scores], ignore_index=True)
        rows.append(scores.assign(trained_on=trained_on))
    return pd.concat(rows, ignore_index=True)


def noise_table(scores: pd.DataFrame) -> pd.DataFrame:
    """`noise_scores` as means over seeds, one row per (training sound, test split)."""
    return scores.groupby(["trained_on", "split"], sort=False)[list(shifted.SHOWN)].mean()


def companion_rows(multilook: pd.DataFrame | None, noise: pd.DataFrame | None) -> pd.DataFrame | None:
    """results.csv rows of the companions' runs, each `split` prefixed with the companion's name."""
    frames = []
    if multilook is not None:
        frames.append(results_long(multilook).assign(split=lambda f: f"{MULTILOOK}_" + f["split"]))
    if noise is not None:
        mixed = shifted.long_rows(noise[noise["trained_on"] != "clean sound"])
        frames.append(mixed.assign(split=f"{NOISY}_" + mixed["split"]))
    return pd.concat(frames, ignore_index=True) if frames else None


def multilook_text(looks: pd.DataFrame, deaf_follow_limit: float = 0.1) -> str:
    """Whether the models listen on the multi-look benchmark (else its comparison is of deaf models)."""
    means = looks.groupby("method")[["test_listening_rate", "test_following_rate"]].mean()
    follow, listen = means["test_following_rate"], means["test_listening_rate"]
    heard = [m for m in ("tpavi", "thesis") if m in means.index]
    rates = ", ".join(f"`{m}` {follow[m]:.1%} (listening {listen[m]:.1%})" for m in heard)
    chance = (f"; the deaf `visual_only` lands on the heard object on {listen['visual_only']:.1%}"
              if "visual_only" in means.index else "")
    deaf = all(follow[m] < deaf_follow_limit for m in heard)
    return (f"On this benchmark the models follow the audio on {rates} of the swapped-audio frames{chance}: "
            + (f"neither follows it on {deaf_follow_limit:.0%} of the frames at this budget, so its comparison is "
               "between models that segment without the sound." if deaf else "they listen here too."))


def noise_text(table: pd.DataFrame, listening_goal: float = 0.7, following_goal: float = 0.5) -> str:
    """Whether training on a mix of SNRs keeps listening at 10 dB, against the stated aim."""
    at10 = table.xs("shifted_snr10db", level="split")
    mixed, clean = at10.loc["0-20 dB mix"], at10.loc["clean sound"]
    met = mixed["listening_rate"] >= listening_goal and mixed["following_rate"] >= following_goal
    clean_cost = (table.loc[("0-20 dB mix", "clean"), "miou"] - table.loc[("clean sound", "clean"), "miou"])
    return (f"At 10 dB SNR, `tpavi` trained on a 0-20 dB mix listens on {mixed['listening_rate']:.1%} and follows the "
            f"audio on {mixed['following_rate']:.1%} of the frames, against {clean['listening_rate']:.1%} and "
            f"{clean['following_rate']:.1%} when trained on clean sound: the aim (listening ≥ {listening_goal:.0%}, "
            f"following ≥ {following_goal:.0%}) is {'met' if met else 'not met'}. On clean test clips the mix moves "
            f"mIoU by {clean_cost:+.3f}.")
