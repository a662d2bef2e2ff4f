"""Loading weight files: ImageNet ResNets, VGGish, official AVSBench checkpoints.

Every file is read with `torch.load(weights_only=True)` (a checkpoint never runs code), and every
way a file can be wrong gets its own message naming the file: missing, unreadable, not a state
dict, another architecture, missing or unexpected keys, wrong shapes.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from avs_lib.data.errors import DataFormatError
from avs_lib.models.crop import CropClassifier
from avs_lib.models.logmel_cnn import LogMelCNN
from avs_lib.models.resnet import ResNetEncoder

NO_WEIGHTS = "no pretrained weights given; using random initialisation"
_WRAPPER_KEYS = ("state_dict", "model")  # common checkpoint layouts: {"state_dict": {...}, ...}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (name -> tensor) from a file, safely.

    Accepts a bare state dict, or a checkpoint dict holding one under "state_dict" or "model";
    a "module." prefix (left by DataParallel/DDP) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError... for damaged files
        if isinstance(err, pickle.UnpicklingError) and "weights only" in str(err).lower():
            raise DataFormatError(
                path,
                "holds Python objects other than tensors and plain containers; refusing to unpickle "
                "them (a weights file should be a state_dict saved with torch.save)",
            ) from err
        raise DataFormatError(
            path,
            f"cannot be read as a torch file (truncated or corrupt?): {type(err).__name__}: {err}",
        ) from err
    if not isinstance(obj, dict):
        raise DataFormatError(
            path,
            f"expected a state_dict (a dict of parameter name -> tensor), found a {type(obj).__name__}",
        )
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    bad = [(k, type(v).__name__) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        k, kind = bad[0]
        raise DataFormatError(path,
                              f"expected a state_dict (parameter name -> tensor); entry {k!r} is a {kind} "
                              f"({len(bad)} non-tensor entries; top-level keys: {_preview(obj)})")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _preview(keys, n: int = 5) -> str:
    keys = list(keys)
    more = f", ... ({len(keys)} in all)" if len(keys) > n else ""
    return ", ".join(map(str, keys[:n])) + more


def _fit_problems(expected: dict[str, torch.Size], found: dict[str, torch.Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches between a module and a file."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [
        f"{k}: file {tuple(found[k].shape)}, model {tuple(shape)}"
        for k, shape in expected.items()
        if k in found and found[k].shape != shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_preview(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches: {_preview(wrong, 3)}")
    return problems


def _with_batch_counters(expected: dict[str, torch.Size], found: dict[str, torch.Tensor]) -> dict:
    """Files saved before PyTorch 0.4 (e.g. resnet50-19c8e357.pth, the file the official code
    uses) lack BatchNorm's `num_batches_tracked`; BatchNorm itself fills it with 0 for such files."""
    filled = dict(found)
    for k in expected:
        if k.endswith(".num_batches_tracked") and k not in filled:
            filled[k] = torch.tensor(0, dtype=torch.long)
    return filled


def load_exact(
    module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str
) -> None:
    """load_state_dict(strict=True), with one clear error for missing/unexpected keys or shapes."""
    problems = _fit_problems({k: v.shape for k, v in module.state_dict().items()}, state)
    if problems:
        raise DataFormatError(path, f"does not fit the {what}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


# --- ImageNet ResNets -------------------------------------------------------------------------

_KNOWN_RESNETS = {
    ("basic", (2, 2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6, 3)): "resnet34",
    ("bottleneck", (3, 4, 6, 3)): "resnet50",
    ("bottleneck", (3, 4, 23, 3)): "resnet101",
    ("bottleneck", (3, 8, 36, 3)): "resnet152",
}


def describe_resnet(shapes: dict[str, torch.Size]) -> str:
    """Name the torchvision ResNet a {name: shape} mapping looks like (by block type and counts)."""
    kind = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
    blocks = []
    for i in range(1, 5):
        ids = {int(m.group(1)) for k in shapes if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    name = _KNOWN_RESNETS.get((kind, tuple(blocks)))
    if name is None:
        return f"a ResNet with {kind} blocks {tuple(blocks)}"
    width = shapes.get("layer1.0.conv1.weight")
    if name == "resnet50" and width is not None and width[0] != 64:
        return "a wide ResNet-50 or ResNeXt-50"
    return name


def _resnet_part(target: nn.Module) -> nn.Module:
    """The ResNet inside an AVSModel, a CropClassifier or an encoder."""
    if isinstance(target, ResNetEncoder):
        return target
    if isinstance(target, CropClassifier):
        return target.trunk
    resnet = getattr(target, "resnet", None)
    if isinstance(resnet, ResNetEncoder):
        return resnet
    raise ValueError(
        f"load_imagenet_resnet expects an AVSModel, a CropClassifier or a ResNetEncoder; got {type(target).__name__}"
    )


def _torchvision_name(key: str) -> str:
    # The official encoder renames layer3/layer4 to layer3_1/layer4_1 (and copies them to _2).
    return re.sub(r"^layer([34])_[12]\.", r"layer\1.", key)


def load_imagenet_resnet(target: nn.Module, path: str | Path | None) -> nn.Module:
    """Load a torchvision ResNet state_dict file (e.g. resnet50-0676ba61.pth) into `target`'s ResNet.

    `target` is an AVSModel (keys `resnet.*`; layer3 -> layer3_1 and layer3_2, layer4 -> layer4_1
    and layer4_2, as the official code does), a CropClassifier (its trunk) or a ResNetEncoder.
    The classifier `fc.*` is dropped. With path None, warns and keeps the random initialisation.
    """
    part = _resnet_part(target)
    if path is None:
        warnings.warn(f"{NO_WEIGHTS} (ResNet of {type(target).__name__})", stacklevel=2)
        return target
    source = read_state_dict(path)
    source = {k: v for k, v in source.items() if not k.startswith("fc.")}
    if not any(k.startswith("layer1.") for k in source):
        avs_checkpoint = any(k.startswith("resnet.") for k in source)
        hint = " (an AVS model checkpoint? use load_avs_checkpoint)" if avs_checkpoint else ""
        raise DataFormatError(
            path,
            f"is not a torchvision ResNet state_dict: no layer1.* keys; keys start: {_preview(source)}{hint}",
        )
    wanted = {k: v.shape for k, v in part.state_dict().items()}
    wanted_tv = {_torchvision_name(k): s for k, s in wanted.items()}
    file_arch = describe_resnet({k: v.shape for k, v in source.items()})
    model_arch = describe_resnet(wanted_tv)
    if file_arch != model_arch:
        raise DataFormatError(path, f"looks like {file_arch}, model is {model_arch}")
    # Compare in the file's (torchvision) names, so a missing key reads as the file would spell it.
    source = _with_batch_counters(wanted_tv, source)
    problems = _fit_problems(wanted_tv, source)
    if problems:
        raise DataFormatError(path, f"does not fit the {model_arch} encoder: " + "; ".join(problems))
    part.load_state_dict({k: source[_torchvision_name(k)] for k in wanted}, strict=True)
    return target


# --- VGGish and whole AVS checkpoints -----------------------------------------------------------


def load_vggish(model: nn.Module, path: str | Path | None) -> nn.Module:
    """Load a VGGish state_dict (`features.*`, `embeddings.*`, e.g. vggish-10086976.pth)."""
    if path is None:
        warnings.warn(f"{NO_WEIGHTS} (VGGish)", stacklevel=2)
        return model
    load_exact(model, read_state_dict(path), path, "VGGish model")
    return model


def load_small_audio(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a LogMelCNN state_dict (e.g. one written by `avs_lib.datatools.pretrain`), strictly."""
    load_exact(model, read_state_dict(path), path, "LogMelCNN audio encoder")
    return model


def load_avs_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a whole AVSModel state_dict, e.g. an official AVSBench `S4_best.pth`, strictly."""
    state = read_state_dict(path)
    state = _with_batch_counters({k: v.shape for k, v in model.state_dict().items()}, state)
    load_exact(model, state, path, type(model).__name__)
    return model


def load_weights_file(part: nn.Module, path: str | Path) -> nn.Module:
    """Load the weight file a frozen part started from, by the part's kind: what a checkpoint names
    instead of storing the part (`engine.checkpoint.restore_weights`)."""
    if isinstance(part, ResNetEncoder):
        return load_imagenet_resnet(part, path)
    if isinstance(part, LogMelCNN):
        return load_small_audio(part, path)
    return load_vggish(part, path)
