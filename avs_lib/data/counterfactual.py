"""Audio-counterfactual pairs: the same frames with another clip's audio, and where the mask should go.

*absent*: the other clip's class is not in the frames, so nothing there makes that sound: the target is an
empty mask (works on real AVSBench S4, one category per clip). *present* (synthetic data, from the sidecar):
it is a silent distractor in the frames, so the mask should move onto it. Every choice is a function of
(seed, epoch, clip index), so a resumed run draws the same pairs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


def resize_masks(masks: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [T, H, W] -> float [T, 1, size, size] in {0, 1} (nearest, like the reader's masks)."""
    t = torch.from_numpy((masks > 0).astype(np.float32)).unsqueeze(1)  # [T, 1, H, W]
    return t if t.shape[-2:] == (size, size) else F.interpolate(t, size=(size, size), mode="nearest")


class CounterfactualPairs(Dataset):
    """Wrap a training dataset so each item also carries `cf_audio`, `cf_masks`, `cf_valid`."""

    def __init__(self, base, seed: int, present_fraction: float = 0.5):
        self.base, self.seed, self.present_fraction, self.epoch = base, seed, present_fraction, 0
        self.categories = np.array([c.category_index for c in base.clips])
        self.by_category = {int(c): np.flatnonzero(self.categories == c) for c in np.unique(self.categories)}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def _candidates(self, classes: set[int]) -> np.ndarray:  # clips whose category is in `classes`
        picked = [self.by_category[c] for c in sorted(classes) if c in self.by_category]
        return np.concatenate(picked) if picked else np.empty(0, dtype=np.int64)

    def __getitem__(self, index: int) -> dict:
        item = self.base[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frames, size = item["frames"].shape[0], item["frames"].shape[-1]
        sidecar = self.base.sidecar(item["name"])
        classes = [] if sidecar is None else [int(c) for c in sidecar.classes]  # object 0 sounds
        in_frames, present = {int(item["category"]), *classes}, set(classes[1:])
        present_pool = self._candidates(present)
        absent_pool = self._candidates(set(self.by_category) - in_frames)
        use_present = len(present_pool) > 0 and (len(absent_pool) == 0 or rng.random() < self.present_fraction)
        if use_present:
            partner = int(rng.choice(present_pool))
            k = int(np.flatnonzero(sidecar.classes == self.categories[partner])[0])
            cf_masks = resize_masks(sidecar.masks[k], size)
        elif len(absent_pool) > 0:
            partner = int(rng.choice(absent_pool))
            cf_masks = torch.zeros(frames, 1, size, size)
        else:
            raise ValueError(f"clip {item['name']}: no other clip has a class absent from its frames or present as "
                             "a distractor, so no counterfactual audio exists; the training split needs at least "
                             "two categories")
        # cf_index, whose audio it is, lets a cache of audio embeddings look it up.
        item.update(cf_audio=self.base.load_audio(partner), cf_index=partner, cf_masks=cf_masks,
                    cf_valid=torch.ones(frames), cf_present=torch.tensor(use_present))
        return item
