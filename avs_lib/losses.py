"""Training losses: the AVSBench baseline's and the thesis' three crop losses.

The maths lives in pure functions (`selected_frames_bce`, `avm_loss`, `crop_ce`, ...), and
`TotalLoss` adds the weighted terms of a `LossWeights` into the one scalar that training calls
`backward()` on (the thesis: AVS loss + A + B + C, one backward).

Baseline facts checked against the official AVSBench code (avs_scripts/avs_s4/loss.py,
avs_scripts/avs_ms3/loss.py and the two train.sh):
- S4 segmentation loss: sigmoid then `nn.BCELoss` (mean over all pixels) on frames 0, 5, 10, ...
  of the [B*5] batch, i.e. the first frame of every clip, the only one with a train mask; MS3's
  is the same on every frame. `selected_frames_bce` gives both.
- AVM loss ("audio - masked visual matching"): two recipes exist, see `avm_loss`.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avs_lib.configtools import at_least, check_fields, one_of
from avs_lib.data.categories import FRAMES_PER_CLIP

MASK_POOLINGS = {"avg": F.adaptive_avg_pool2d, "max": F.adaptive_max_pool2d}
AVM_RECIPES: tuple[str, ...] = ("kl", "cosine")
CROP_PAIRS: tuple[str, ...] = ("all", "consecutive")
# Which audio Loss C compares crops with (see `TotalLoss`): "tpavi", TPAVI's trainable aligned audio
# (this project's reading, through which C reaches the segmentation model), or "frozen", the audio
# encoder's own embedding, frozen as VGGish is in AVSBench (the write-up read literally).
COSINE_AUDIO: tuple[str, ...] = ("tpavi", "frozen")


# ---------------------------------------------------------------- segmentation (BCE) losses


def _clips_in(n_frames: int, frames: int, what: str) -> int:
    """Number of clips in a [B*T] batch; a batch that is not whole clips is an error."""
    if frames < 1 or n_frames % frames != 0:
        raise ValueError(f"{what}: batch of {n_frames} frames is not a whole number of clips of {frames} frames")
    return n_frames // frames


def _check_logits(logits: Tensor, what: str) -> None:
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"{what}: expected logits of shape [B*T, 1, H, W], got {tuple(logits.shape)}")


def selected_frames_bce(logits: Tensor, masks: Tensor, mask_frames: Tensor, frames: int = FRAMES_PER_CLIP) -> Tensor:
    """BCE-with-logits on the frames that have a ground-truth mask, mean over their pixels.

    Covers both AVSBench settings: S4 train (one mask per clip, `mask_frames` = [[0], [0], ...])
    and every-frame supervision (`mask_frames` = [[0..4], ...]). The official code takes sigmoid,
    then `nn.BCELoss()`; the logits form gives the same value without BCELoss's clamp of log(0)
    at -100, which only differs once sigmoid saturates in float32 (|logit| > ~17).

    Args:
        logits: [B*T, 1, H, W] mask logits, clip-major (frame t of clip b at row b*T + t).
        masks: [B, M, 1, H, W] binary targets, M masks per clip.
        mask_frames: [B, M] int, which frame (0-based) each mask belongs to.
        frames: T, frames per clip.
    """
    _check_logits(logits, "selected_frames_bce")
    n_clips = _clips_in(logits.shape[0], frames, "selected_frames_bce")
    if masks.dim() != 5 or masks.shape[0] != n_clips or masks.shape[2:] != logits.shape[1:]:
        raise ValueError(f"selected_frames_bce: expected masks [B={n_clips}, M, 1, {logits.shape[2]}, "
                         f"{logits.shape[3]}], got {tuple(masks.shape)}")
    if tuple(mask_frames.shape) != tuple(masks.shape[:2]):
        raise ValueError(f"selected_frames_bce: mask_frames must be [B, M] = {tuple(masks.shape[:2])}, "
                         f"got {tuple(mask_frames.shape)}")
    # Frame indices come from the dataset readers, which check them; no per-step value check here
    # (it would wait for the GPU at every step).
    mask_frames = mask_frames.to(device=logits.device, dtype=torch.long)
    rows = torch.arange(n_clips, device=logits.device)[:, None] * frames + mask_frames  # [B, M]
    picked = logits[rows.reshape(-1)]  # [B*M, 1, H, W]
    target = masks.reshape(picked.shape).to(picked.dtype)  # [B, M, 1, H, W] -> [B*M, 1, H, W]
    return F.binary_cross_entropy_with_logits(picked, target)


def counterfactual_bce(cf_logits: Tensor, cf_masks: Tensor, cf_valid: Tensor) -> Tensor:
    """BCE of the logits predicted with counterfactual (swapped or silent) audio against the
    mask that audio should produce, weighted per frame.

    Each frame's BCE is the mean over its pixels; frames are averaged with weights `cf_valid`
    (sum(w * bce) / sum(w)). A batch whose weights are all zero gives 0 (still attached to the
    graph), because it holds no counterfactual to learn from.

    Args:
        cf_logits: [B*T, 1, H, W].
        cf_masks: [B*T, 1, H, W] or [B, T, 1, H, W] targets (e.g. the swapped-in class's
            object; empty for silence).
        cf_valid: [B*T] or [B, T] float weights (0 drops a frame).
    """
    _check_logits(cf_logits, "counterfactual_bce")
    if cf_masks.dim() == 5:
        cf_masks = cf_masks.flatten(0, 1)  # [B, T, 1, H, W] -> [B*T, 1, H, W]
    if cf_valid.dim() == 2:
        cf_valid = cf_valid.flatten()  # [B, T] -> [B*T]
    if cf_masks.shape != cf_logits.shape:
        raise ValueError(f"counterfactual_bce: cf_masks {tuple(cf_masks.shape)} do not match cf_logits "
                         f"{tuple(cf_logits.shape)}")
    if tuple(cf_valid.shape) != (cf_logits.shape[0],):
        raise ValueError(f"counterfactual_bce: cf_valid must be [{cf_logits.shape[0]}], got {tuple(cf_valid.shape)}")
    per_pixel = F.binary_cross_entropy_with_logits(cf_logits, cf_masks.to(cf_logits.dtype), reduction="none")
    per_frame = per_pixel.flatten(1).mean(1)  # [B*T, 1, H, W] -> [B*T]
    weights = cf_valid.to(per_frame)
    return (weights * per_frame).sum() / weights.sum().clamp_min(1e-12)


# ---------------------------------------------------------------- AVM (audio - masked visual) loss


def _masked_visual_feature(v_map: Tensor, mask: Tensor, threshold: bool) -> Tensor:
    """Pool a [N, C, h, w] map under a [N, 1, h, w] mask to [N, C]."""
    if threshold:
        # hard mask: average over the object's pixels only (no gradient reaches the mask)
        mask = (mask > 0.5).to(v_map.dtype)
        return (v_map * mask).sum((-2, -1)) / (mask.sum((-2, -1)) + 1e-6)
    # soft mask: the official MS3 recipe averages over *all* pixels of the masked map
    return (v_map * mask).mean((-2, -1))


def avm_loss(logits: Tensor, audio_feats: list[Tensor | None] | None, feature_maps: list[Tensor],
             stages: tuple[int, ...] | list[int], *, mask_pooling: str = "avg", recipe: str = "kl",
             threshold: bool | None = None, normalize: bool | None = None) -> Tensor:
    """Audio - masked-visual matching loss (AVSBench's L_AVM), mean over `stages`.

    For each stage the predicted mask is shrunk to the stage's feature size, the stage's visual
    map is pooled under it, and the pooled visual feature is pulled towards the stage's aligned
    audio feature. The official code has two recipes; `recipe` picks one:

    - "kl" (the paper's L_AVM; avs_ms3/loss.py with train.sh's `--kl_flag`, λ₁ = 0.5):
      pool the *logits* (`mask_pooling`), then sigmoid; soft mask, visual map averaged over all
      pixels; features not normalised; loss = KL(softmax(audio) ‖ softmax(visual)) with
      reduction "sum", i.e. summed over the B*T frames and C channels (it grows with batch size).
    - "cosine" (avs_s4/loss.py): sigmoid, then pool; mask thresholded at 0.5 (so no gradient
      reaches the mask head); visual map averaged over object pixels; both features
      L2-normalised; loss = mean over frames of -log(relu(cos) + 1e-6).

    `threshold` and `normalize` override a recipe's default (None keeps it).

    Args:
        logits: [B*T, 1, H, W] mask logits.
        audio_feats: 4 entries of [B, T, C] aligned audio (None where TPAVI is off).
        feature_maps: 4 entries of [B*T, C, h, w].
        stages: which stages (0..3) to use; the result is their mean.
    """
    _check_logits(logits, "avm_loss")
    # name checks cost nothing; `LossWeights` makes them first
    if recipe not in AVM_RECIPES:
        raise ValueError(f"AVM recipe must be one of {AVM_RECIPES}, got {recipe!r}")
    if mask_pooling not in MASK_POOLINGS:
        raise ValueError(f"mask pooling must be one of {tuple(MASK_POOLINGS)}, got {mask_pooling!r}")
    if len(stages) == 0:
        raise ValueError("avm_loss: no stages given; choose some of 0, 1, 2, 3")
    if audio_feats is None:
        raise ValueError("avm_loss needs the aligned audio features, got None (is TPAVI disabled everywhere?)")
    hard = (recipe == "cosine") if threshold is None else threshold
    unit = (recipe == "cosine") if normalize is None else normalize
    probabilities = torch.sigmoid(logits) if recipe == "cosine" else None
    pool = MASK_POOLINGS[mask_pooling]

    total = logits.new_zeros(())
    for stage in stages:
        if not 0 <= stage < len(feature_maps) or stage >= len(audio_feats):
            raise ValueError(f"avm_loss: stage {stage} out of range; the model has {len(feature_maps)} stages")
        audio, v_map = audio_feats[stage], feature_maps[stage]
        if audio is None:
            raise ValueError(f"avm_loss: stage {stage} has no aligned audio (TPAVI is not applied there); "
                             "drop it from the AVM stages")
        audio = audio.reshape(-1, audio.shape[-1])  # [B, T, C] -> [B*T, C]
        if audio.shape != v_map.shape[:2] or v_map.shape[0] != logits.shape[0]:
            raise ValueError(f"avm_loss: stage {stage} audio {tuple(audio.shape)} does not match visual map "
                             f"{tuple(v_map.shape)} (expected [B*T, C] and [B*T, C, h, w] with "
                             f"B*T = {logits.shape[0]})")
        size = (v_map.shape[-2], v_map.shape[-1])
        if recipe == "cosine":
            mask = pool(probabilities, size)  # [B*T, 1, h, w]
        else:
            mask = torch.sigmoid(pool(logits, size))  # [B*T, 1, h, w]
        total = total + _avm_stage_loss(audio, _masked_visual_feature(v_map, mask, hard), recipe, unit)
    return total / len(stages)


def _avm_stage_loss(audio: Tensor, visual: Tensor, recipe: str, unit: bool) -> Tensor:
    """One stage's AVM term between [B*T, C] audio and pooled visual features (`avm_loss`'s recipes)."""
    if unit:
        audio, visual = F.normalize(audio, dim=-1), F.normalize(visual, dim=-1)
    if recipe == "kl":
        return F.kl_div(F.log_softmax(visual, dim=-1), F.softmax(audio, dim=-1), reduction="sum")
    cos = (audio * visual).sum(-1)  # [B*T]
    return -torch.log(F.relu(cos) + 1e-6).mean()


# ---------------------------------------------------------------- the thesis' crop losses


def crop_ce(scores: Tensor, labels: Tensor) -> Tensor:
    """Loss A: cross-entropy of the crop classifier's class scores, mean over crops.

    Args:
        scores: [N, K] class scores (N = B*5 crops; K = 23 for S4).
        labels: [N] int class of each crop (its clip's category).
    """
    if scores.dim() != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"crop_ce: expected scores [N, K] and labels [N], got {tuple(scores.shape)} and "
                         f"{tuple(labels.shape)}")
    # Labels are categories from the S4 metadata; MS3 has none, and a config asking for crop CE
    # on MS3 is refused by `ExperimentConfig.validate` before training starts.
    return F.cross_entropy(scores, labels.long())


def _pair_indices(n: int, pairs: str) -> Tensor:
    """[2, P] indices (i, j) of the crop pairs compared, i < j."""
    if pairs == "all":
        return torch.triu_indices(n, n, offset=1)  # row-major: (0, 1), (0, 2), ..., (n-2, n-1)
    if pairs == "consecutive":
        return torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    raise ValueError(f"crop pairs must be one of {CROP_PAIRS}, got {pairs!r}")


def crop_pairwise_distance(emb: Tensor, pairs: str = "all") -> Tensor:
    """Loss B: Euclidean distance between crop embeddings of the same clip, mean over pairs and clips.

    Uses `torch.nn.PairwiseDistance` as the thesis names it (p = 2; note its eps = 1e-6 is
    added to the difference, so identical crops give sqrt(D)·1e-6, not 0).

    Args:
        emb: [B, T, D] crop embeddings, T crops per clip.
        pairs: "all" (T(T-1)/2 pairs, the reading of record) or "consecutive" (T-1 pairs).
    """
    if emb.dim() != 3 or emb.shape[1] < 2:
        raise ValueError(f"crop_pairwise_distance: expected emb [B, T >= 2, D], got {tuple(emb.shape)}")
    firsts, seconds = _pair_indices(emb.shape[1], pairs).to(emb.device)
    left = emb[:, firsts].reshape(-1, emb.shape[-1])  # [B, P, D] -> [B*P, D]
    right = emb[:, seconds].reshape(-1, emb.shape[-1])  # [B, P, D] -> [B*P, D]
    return nn.PairwiseDistance(p=2)(left, right).mean()


def audio_crop_cosine(audio: Tensor, crop_emb: Tensor) -> Tensor:
    """Loss C: 1 - cos(clip audio, crop), mean over the crops of a clip and over clips.

    Reading chosen for the write-up's "penalise low similarity": the clip's audio is the mean of its
    T per-second embeddings, compared with each of its T crop embeddings by cosine similarity;
    the penalty 1 - cos lies in [0, 2] and is 0 when they point the same way. Both inputs get
    gradients, so the loss trains the audio path and the crop encoder alike.

    Args:
        audio: [B, T, D] per-second audio embeddings in the shared space.
        crop_emb: [B, T, D] crop embeddings in the same space.
    """
    if audio.dim() != 3 or audio.shape != crop_emb.shape:
        raise ValueError(f"audio_crop_cosine: expected audio and crop_emb both [B, T, D], got {tuple(audio.shape)} "
                         f"and {tuple(crop_emb.shape)}")
    clip_audio = audio.mean(1, keepdim=True)  # [B, T, D] -> [B, 1, D]
    cos = F.cosine_similarity(clip_audio, crop_emb, dim=-1)  # [B, T]
    return (1 - cos).mean()


# ---------------------------------------------------------------- the weighted total


# the weighted terms, in the order components are reported
TERMS: tuple[str, ...] = ("avs_bce", "avm", "crop_ce", "crop_pairwise", "audio_crop_cosine", "counterfactual")


@dataclass
class LossWeights:
    """Weights of the loss terms (0 skips a term entirely) and the options of those terms.

    Defaults are the official S4 baseline: first-frame BCE only. The thesis' "as described"
    configuration sets crop_ce = crop_pairwise = audio_crop_cosine = 1. `cosine_audio` picks the
    audio Loss C compares crops with (`COSINE_AUDIO`; see `TotalLoss`).
    """

    avs_bce: float = 1.0
    avm: float = 0.0
    crop_ce: float = 0.0
    crop_pairwise: float = 0.0
    audio_crop_cosine: float = 0.0
    counterfactual: float = 0.0
    avm_stages: tuple[int, ...] = (0, 1, 2, 3)
    avm_pooling: str = "avg"
    avm_recipe: str = "kl"
    avm_threshold: bool | None = None
    avm_normalize: bool | None = None
    pairs: str = "all"
    cosine_audio: str = "tpavi"
    frames: int = FRAMES_PER_CLIP

    @property
    def crop_losses(self) -> bool:
        """Whether any of the thesis' three crop losses is on (they need crop boxes and a crop network)."""
        return any(w > 0 for w in (self.crop_ce, self.crop_pairwise, self.audio_crop_cosine))

    def __post_init__(self) -> None:
        self.avm_stages = tuple(self.avm_stages)
        check_fields(self, {
            **{name: (at_least(0), "a finite number >= 0") for name in TERMS},
            "avm_stages": (lambda stages: all(s in (0, 1, 2, 3) for s in stages), "among 0, 1, 2, 3"),
            "avm_pooling": one_of(tuple(MASK_POOLINGS)), "avm_recipe": one_of(AVM_RECIPES), "pairs": one_of(CROP_PAIRS),
            "cosine_audio": one_of(COSINE_AUDIO), "frames": (at_least(1), ">= 1"),
        })
        if self.avm > 0 and not self.avm_stages:
            raise ValueError("avm weight is > 0 but avm_stages is empty")
        if all(getattr(self, name) == 0 for name in TERMS):
            raise ValueError(f"all loss weights are 0; set at least one of {', '.join(TERMS)}")


def _need(weights: LossWeights, term: str, source: dict, where: str, *keys: str) -> list:
    """`source[key]` for each key `term` reads; a missing one is named with the term's weight."""
    for key in keys:
        if source.get(key) is None:
            raise ValueError(f"loss weight {term}={getattr(weights, term)} needs {where}[{key!r}], which is missing; "
                             f"provide it or set {term} to 0")
    return [source[key] for key in keys]


class TotalLoss(nn.Module):
    """Weighted sum of the loss terms; a term whose weight is 0 is never computed.

    Keys read (only those of terms with a non-zero weight):

    - avs_bce: outputs logits [B*T, 1, H, W]; batch masks [B, M, 1, H, W], mask_frames [B, M]
    - avm: outputs logits, feature_maps 4 × [B*T, C, h, w], aligned_audio 4 × ([B, T, C] | None)
    - crop_ce: outputs crop_scores [B*T, K]; batch category [B] (int class of each clip)
    - crop_pairwise: outputs crop_emb [B*T, D] or [B, T, D]
    - audio_crop_cosine: outputs crop_audio [B, T, D'] and crop_emb_audio_space ([B*T, D'] or
      [B, T, D']) when present, else crop_emb (then D' = D)
    - counterfactual: outputs cf_logits [B*T, 1, H, W]; batch cf_masks [B*T, 1, H, W] or
      [B, T, 1, H, W], cf_valid [B*T] or [B, T]

    `crop_emb_audio_space` is for the reading chosen here (crop embeddings mapped to the 256-d audio
    space while Loss B keeps the 512-d embedding); without it `crop_audio` must already live in
    the crop-embedding space.

    What `crop_audio` is depends on `weights.cosine_audio` (`AVSSystem` makes it to match):
    "tpavi", TPAVI's aligned audio [B, T, channel] averaged over stages, trainable, so C reaches
    TPAVI's `align_channel` (and a trained audio encoder); "frozen", the audio encoder's embedding
    [B, T, 128] (the write-up's "average of the 5 audio features" read literally, VGGish frozen as
    in AVSBench), detached here, so C trains only the crop side.

    Args:
        weights: a LossWeights.
    Returns (forward): (total scalar tensor, components) where components maps each computed
        term's name to its unweighted value and 'total' to the weighted sum, all Python floats.
    """

    def __init__(self, weights: LossWeights | None = None):
        super().__init__()
        self.weights = weights if weights is not None else LossWeights()

    def forward(self, outputs: dict, batch: dict) -> tuple[Tensor, dict[str, float]]:
        w = self.weights
        terms: dict[str, Tensor] = {}
        if w.avs_bce:
            (logits,) = _need(w, "avs_bce", outputs, "outputs", "logits")
            masks, mask_frames = _need(w, "avs_bce", batch, "batch", "masks", "mask_frames")
            terms["avs_bce"] = selected_frames_bce(logits, masks, mask_frames, w.frames)
        if w.avm:
            logits, audio, maps = _need(w, "avm", outputs, "outputs", "logits", "aligned_audio", "feature_maps")
            terms["avm"] = avm_loss(logits, audio, maps, w.avm_stages, mask_pooling=w.avm_pooling,
                                    recipe=w.avm_recipe, threshold=w.avm_threshold, normalize=w.avm_normalize)
        if w.crop_ce:
            (scores,) = _need(w, "crop_ce", outputs, "outputs", "crop_scores")
            (category,) = _need(w, "crop_ce", batch, "batch", "category")
            labels = torch.as_tensor(category, device=scores.device).reshape(-1)  # [B]
            terms["crop_ce"] = crop_ce(scores, labels.repeat_interleave(w.frames))  # [B] -> [B*T]
        if w.crop_pairwise:
            (emb,) = _need(w, "crop_pairwise", outputs, "outputs", "crop_emb")
            terms["crop_pairwise"] = crop_pairwise_distance(self._per_clip(emb, "crop_emb"), w.pairs)
        if w.audio_crop_cosine:
            projected = outputs.get("crop_emb_audio_space") is not None
            key = "crop_emb_audio_space" if projected else "crop_emb"
            audio, crops = _need(w, "audio_crop_cosine", outputs, "outputs", "crop_audio", key)
            if w.cosine_audio == "frozen":  # the literal reading: the audio side never learns from C
                audio = audio.detach()
            terms["audio_crop_cosine"] = audio_crop_cosine(audio, self._per_clip(crops, key))
        if w.counterfactual:
            (cf_logits,) = _need(w, "counterfactual", outputs, "outputs", "cf_logits")
            cf_masks, cf_valid = _need(w, "counterfactual", batch, "batch", "cf_masks", "cf_valid")
            terms["counterfactual"] = counterfactual_bce(cf_logits, cf_masks, cf_valid)
        total = sum(getattr(w, name) * value for name, value in terms.items())
        components = {name: float(value.detach()) for name, value in terms.items()}
        components["total"] = float(total.detach())
        return total, components

    def _per_clip(self, crops: Tensor, key: str) -> Tensor:
        frames = self.weights.frames
        if crops.dim() == 3 and crops.shape[1] == frames:
            return crops
        if crops.dim() != 2:
            raise ValueError(f"outputs[{key!r}] must be [B*T, D] or [B, T={frames}, D], got {tuple(crops.shape)}")
        n_clips = _clips_in(crops.shape[0], frames, f"outputs[{key!r}]")
        return crops.reshape(n_clips, frames, crops.shape[1])  # [B*T, D] -> [B, T, D]
