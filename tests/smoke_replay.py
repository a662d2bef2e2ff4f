"""The first training steps of a smoke run, replayed in float64: numbers that do not depend on the CPU.

Why float64: in float32, another CPU (another SIMD width, another MKL/oneDNN kernel) rounds sums
differently in the last bits, and training amplifies that (Adam's first update is about lr * sign(g),
so a gradient at the rounding level can flip a whole step). In float64 that rounding is ~1e-16 and
stays far below any change of behaviour (a loss weight, a learning rate, a label one pixel off).

The replay starts from random init (the pretrained encoders are themselves float32 training, so
they carry the CPU's rounding) and reads the first batches of the training split in file order,
then runs `avs_lib.engine.train.train_one_epoch` itself over them: the project's loss, optimiser,
scheduler and step, only in another precision.

One more thing differs by CPU: torch's `normal_` draws through a vectorised kernel on CPUs with AVX2
and a scalar one without (ATEN_CPU_CAPABILITY=default), which give other numbers from the same
seed (`uniform_` does not differ). The replay's init therefore draws its normal samples from
uniform ones (the sum of 12 uniforms minus 6: mean 0, variance 1, element-wise float64 adds that
round the same everywhere); the init's layer-wise scales are torch's own.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from avs_lib.data import collate_clips
from avs_lib.engine.datasets import build_dataset
from avs_lib.engine.system import AVSSystem
from avs_lib.engine.train import build_optimizer, build_scheduler, seed_everything, train_one_epoch
from avs_lib.losses import TotalLoss
from avs_lib.report import runs

STEPS = 4


def _portable_normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> torch.Tensor:
    """`Tensor.normal_` for the replay's init, the same numbers on every CPU (see the module doc)."""
    total = torch.zeros(tensor.shape, dtype=torch.float64)
    for _ in range(12):
        total += torch.empty(tensor.shape, dtype=torch.float64).uniform_(generator=generator)
    with torch.no_grad():
        return tensor.copy_((total - 6.0) * std + mean)


def _double(batch: dict) -> dict:
    return {k: v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in batch.items()}


def replay(root: str | Path, method: str, overrides: list[str] | None = None,
           batch_transform: Callable[[dict], dict] | None = None, steps: int = STEPS) -> dict[str, list[float] | float]:
    """Step losses and the trained parameters' L1 norm of `method`'s first `steps` float64 steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no pretrained weights": random init is the point here
            cfg = runs.run_config("smoke", method, 0, root, tmp, device="cpu", weights={},
                                  overrides=list(overrides or []), quiet=True)
            seed_everything(cfg.seed)
            normal_, torch.Tensor.normal_ = torch.Tensor.normal_, _portable_normal_
            try:
                system = AVSSystem(cfg).double()
            finally:
                torch.Tensor.normal_ = normal_
            data = build_dataset(cfg, "train")
            size = cfg.optim.batch_size
            order = [i % len(data) for i in range(steps * size)]  # the split again when it runs out
            batches = [_double(collate_clips([data[i] for i in order[s * size:(s + 1) * size]])) for s in range(steps)]
            if batch_transform is not None:
                batches = [batch_transform(b) for b in batches]
            optimizer = build_optimizer(cfg, system.parameters())
            scheduler = build_scheduler(cfg, optimizer, steps)
            losses: list[float] = []
            train_one_epoch(system, TotalLoss(cfg.loss), optimizer, scheduler, batches, torch.device("cpu"), 0, cfg,
                            step_log=lambda record: losses.append(record["total"]))
            norm = sum(float(p.detach().abs().sum()) for p in system.parameters() if p.requires_grad)
            return {"losses": losses, "param_l1": norm}
    finally:
        torch.set_num_threads(threads)
