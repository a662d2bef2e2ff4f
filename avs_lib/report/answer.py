"""The report's sentences, computed from the tables notebooks 03 and 04 show so that text and
numbers cannot drift apart; the Answer in English and in Korean (the thesis write-up's language)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from avs_lib.datatools.profiles import METHODS
from avs_lib.metrics import MOVED_BELOW_IOU
from avs_lib.report.experiments import REPORTED, THESIS_CLAIMED_GAIN
from avs_lib.report.stats import IDENTICAL, NO_DIFFERENCE

# The methods that carry the thesis' crop losses (a claim of gain is about them).
CROP_METHODS = frozenset(m for m, o in METHODS.items() if o.get("loss", {}).get("crop_ce"))
VERDICT_KO = {"higher": "더 높음", "lower": "더 낮음", NO_DIFFERENCE: "이 예산에서는 검출 가능한 차이 없음"}


def pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.0%}"


def verdict_sentence(row: pd.Series, what: str, margin: float) -> str:
    """One comparison of `stats.compare_to_baseline` in words, with every number that decides it."""
    pair = f"`{row['method']}` − `{row['reference']}`"
    if row["verdict"] == "one seed":
        return f"{pair}: one seed, so no interval and no verdict."
    if row["verdict"] == IDENTICAL:
        return f"{pair}: identical runs at every seed (the same model is trained), so no comparison to make."
    if row["same_as"]:
        return f"{pair}: the same comparison as {row['same_as']} (identical runs); counted there, once."
    clip = f"; clip bootstrap [{row['clip_low']:+.3f}, {row['clip_high']:+.3f}]" if row["n_clips"] else ""
    text = (f"{pair} on {what}: {row['seed_diff']:+.3f} (95 % t-interval over {row['n_seeds']} seeds "
            f"[{row['seed_low']:+.3f}, {row['seed_high']:+.3f}], Holm-adjusted p = {row['p_holm']:.3f}{clip}; "
            f"smallest difference these seeds detect with 80 % power: {row['mde']:.3f}): **{row['verdict']}**, "
            f"decided by the {row['decided_by']}")
    if row["edge"]:
        text += (f"; **on the edge**: an interval bound lies within {margin:.3f} of 0, the shift another CPU "
                 "gave a method's mean, so the verdict may flip on another machine")
    if row["method"] in CROP_METHODS and row["reference"] not in CROP_METHODS and not math.isnan(row["claimed_gain"]):
        excluded = "is excluded" if row["claim_excluded"] else "is not excluded"
        text += (f"; a gain the size of the thesis' claim (+{THESIS_CLAIMED_GAIN:.1%}, +{row['claimed_gain']:.3f} "
                 f"here) {excluded} by the one-sided 95 % bound {row['upper_bound']:+.3f}")
    return text + "."


def lambda_sweep_text(val: pd.DataFrame, trained: pd.DataFrame, last_epoch: int) -> str:
    """The val choice of the crop-loss weight, and whether the budget suits trained encoders."""
    crop = val.drop(index="tpavi_trained", errors="ignore")
    best = crop["val_miou"].idxmax()
    at_end = int((trained["best_epoch"] == last_epoch).sum())
    return (f"On val (seed 0) the best crop-loss weight is `{best}` (val mIoU {crop.loc[best, 'val_miou']:.3f}; weight 1: "
            f"{crop.loc['thesis_trained', 'val_miou']:.3f}; `tpavi_trained`: "
            f"{val['val_miou'].get('tpavi_trained', float('nan')):.3f}); "
            + ("the grid keeps the write-up's weight 1, which val also prefers. " if best == "thesis_trained" else
               "the grid keeps the write-up's weight 1, so the verdict on `thesis_trained` is the write-up's "
               "setting, not the val-best one. ")
            + f"Of the {len(trained)} trained-encoder runs, {at_end} keep their last epoch as the best: "
            + ("the budget is still short for trained encoders." if at_end > len(trained) / 2 else
               "most of them peaked before the end of the budget."))


def shift_summary(table: pd.DataFrame, roots: Sequence[str]) -> dict:
    """Which single factors halve `tpavi`'s following rate, where the deaf `visual_only` wins
    on-screen mIoU, and the hardest split."""
    follow, onscreen = (table[m].unstack("method") for m in ("following_rate", "miou_onscreen"))
    single = [name for name in roots if name.count("_") == 1]  # one factor: shifted_<factor>
    broken = [n for n in single if follow.loc[n, "tpavi"] < follow.loc["clean", "tpavi"] / 2]
    deaf_wins = ([n for n in roots if onscreen.loc[n, "visual_only"] > onscreen.loc[n, "tpavi"]]
                 if "visual_only" in onscreen.columns else [])
    return {"follow": follow, "single": single, "broken": broken, "deaf_wins": deaf_wins,
            "hardest": follow["tpavi"].drop("clean").idxmin()}


def shift_text(shift: dict) -> str:
    follow, hardest = shift["follow"], shift["hardest"]
    broken = ", ".join(f"`{n}` ({follow.loc[n, 'tpavi']:.1%})" for n in shift["broken"]) or "no single factor"
    held = ", ".join(f"`{n}`" for n in shift["single"] if n not in shift["broken"]) or "none"
    deaf = ", ".join(f"`{n}`" for n in shift["deaf_wins"]) or "no shifted split"
    return (f"One factor at a time, `tpavi`'s following rate falls below half of its clean "
            f"{follow.loc['clean', 'tpavi']:.1%} under {broken} and holds under {held}. Its lowest following rate "
            f"is on `{hardest}` ({follow.loc[hardest, 'tpavi']:.1%}). The deaf `visual_only` scores a higher "
            f"on-screen mIoU than `tpavi` on {deaf}.")


def audio_change_text(changes: pd.DataFrame) -> str:
    """Real data: per changed audio, the method whose mask changes most (the lowest IoU to its own-audio
    mask, ties by name) and least, from `viz.plot_audio_change`'s numbers (method, audio, diagnostic, mean)."""
    means, said = changes.pivot_table(index=["audio", "method"], columns="diagnostic", values="mean"), []
    for audio in ("swapped", "silent"):
        rows = means.loc[audio].sort_values("iou_to_true", kind="stable")  # by name within a tie
        most, least = rows.iloc[0], rows.iloc[-1]
        differ = most["iou_to_true"] < least["iou_to_true"]
        who = f"the mask of `{most.name}` changes most" if differ else "every method's mask changes alike"
        said.append(f"With {audio} audio {who}: IoU {most['iou_to_true']:.3f} to the own-audio mask, "
                    f"{most['moved_share']:.0%} of clips moved (IoU < {MOVED_BELOW_IOU:g}), mIoU "
                    f"{most['miou_change']:+.3f}, |area change| {most['abs_area_change']:.1%} of the frame"
                    + (f"; `{least.name}` least (IoU {least['iou_to_true']:.3f})." if differ else "."))
    return " ".join(said)


def longer_text(results: pd.DataFrame, by_miou: pd.DataFrame, longer: Sequence[str]) -> str:
    """Does twice the step budget change the answer (each `*_2x` against its control)?"""
    rows = by_miou.set_index("method")
    moved = "; ".join(f"`{m}` − `{rows.loc[m, 'reference']}` {rows.loc[m, 'seed_diff']:+.3f} "
                      f"[{rows.loc[m, 'seed_low']:+.3f}, {rows.loc[m, 'seed_high']:+.3f}], Holm-adjusted p = "
                      f"{rows.loc[m, 'p_holm']:.3f}: {rows.loc[m, 'verdict']}"
                      for m in longer if m in rows.index)
    per_seed = results.pivot_table(index="seed", columns="method", values="test_miou")
    if not {"tpavi_2x", "thesis_2x", "tpavi", "thesis"} <= set(per_seed.columns):
        return f"Twice the step budget: {moved or 'not run'}."
    both = per_seed[["tpavi_2x", "thesis_2x", "tpavi", "thesis"]].dropna()
    short, long = (both["thesis"] - both["tpavi"]).mean(), (both["thesis_2x"] - both["tpavi_2x"]).mean()
    same = (short < 0) == (long < 0)
    return (f"Twice the step budget ({len(both)} seeds): {moved}. `thesis` − `tpavi` is {long:+.3f} at twice the budget "
            f"against {short:+.3f} at the profile's budget on the same seeds: longer training "
            + ("does not change which of the two scores higher." if same else "reverses which of the two scores higher."))


def limitations(synthetic: bool, pretrain: dict | None, floor: float, deaf_ceiling: float | None,
                at_end: int, runs: int, longer: str | None = None, multilook: str | None = None) -> list[str]:
    """Threats to the validity of the answer, each with its number."""
    items = []
    if synthetic:
        items.append("**One look per class.** In training every object of a class has the same shape, texture and "
                     "colour, so telling the sounding object from a silent one reduces to matching a sound to a look: "
                     "a class lookup. Only the `shifted_looks3` and `shifted_colours` splits above test other looks"
                     + (f", and the multi-look benchmark trains on them: {multilook}" if multilook else "."))
    if pretrain is not None:
        items.append(f"**The encoders' pretraining already does loss A's job.** The ResNet was pretrained to classify "
                     f"object crops by class on the synthetic train split (val accuracy "
                     f"{pretrain['visual']['val_accuracy']:.3f}, chance {pretrain['chance_accuracy']:.3f}), which is "
                     "what the crop cross-entropy asks of a crop trunk.")
    if deaf_ceiling is not None:
        items.append(f"**A weak floor.** The trained deaf `visual_only` scores {floor:.3f} test mIoU, against "
                     f"{deaf_ceiling:.3f} for the best listed strategy that cannot hear (notebook 01): beating the "
                     "trained floor is easier than beating what a good deaf segmenter could reach.")
        items.append("**The deaf ceiling is not a bound on every deaf model.** It scores a list of strategies "
                     "(largest, most central, random, all objects); a cleverer rule that cannot hear could score higher.")
    items.append(f"**Training budget.** {at_end} of {runs} tested runs keep their last epoch as the best one"
                 + (": for most runs validation mIoU was still rising when the budget ended." if at_end > runs / 2
                    else "; most runs peaked before the budget ended.") + (f" {longer}" if longer else ""))
    return items


def _loss_verdict(rows: pd.DataFrame, method: str, label: str, label_ko: str) -> tuple[str, str]:
    r = rows.loc[method]
    pair = f"`{method}` − `{r['reference']}`"
    if r["verdict"] == "one seed":
        return (f"**{label}** {pair} ran one seed: no interval, no answer.",
                f"**{label_ko}** {pair}는 시드 하나뿐이라 구간도 답도 없다.")
    claim, claim_ko = ("is excluded", "배제된다") if r["claim_excluded"] else ("is not excluded", "배제되지 않는다")
    edge, edge_ko = ((" (on the edge: it may flip on another CPU)", " (경계에 있음: 다른 CPU에서는 바뀔 수 있다)")
                     if r["edge"] else ("", ""))
    english = (f"**{label}** {pair} on test mIoU is {r['seed_diff']:+.3f} (95 % t-interval "
               f"[{r['seed_low']:+.3f}, {r['seed_high']:+.3f}] over {r['n_seeds']} seeds): **{r['verdict']}**{edge}; "
               f"these seeds detect {r['mde']:.3f} with 80 % power, and a gain the size of the thesis' claim "
               f"(+{r['claimed_gain']:.3f}) {claim}.")
    korean = (f"**{label_ko}** {pair}의 테스트 mIoU 차이는 {r['seed_diff']:+.3f} (시드 {r['n_seeds']}개의 95 % t-구간 "
              f"[{r['seed_low']:+.3f}, {r['seed_high']:+.3f}])이며 판정은 **{VERDICT_KO.get(r['verdict'], r['verdict'])}**"
              f"{edge_ko}이다. 이 시드 수로 80 % 검정력으로 검출할 수 있는 최소 차이는 {r['mde']:.3f}이고, 논문이 주장한 "
              f"크기의 향상(+{r['claimed_gain']:.3f})은 {claim_ko}.")
    if method == "thesis_trained" and "tpavi_trained" in rows.index and rows.loc["tpavi_trained", "seed_diff"] < 0:
        lag = rows.loc["tpavi_trained", "seed_diff"]
        english = english[:-1] + (f"; but training the encoder already costs `tpavi_trained` {lag:+.3f} against the "
                                   "frozen `tpavi`, so at this budget the write-up's setting is not learnt and this "
                                   "comparison cannot show what the losses would do there.")
        korean = korean[:-1] + (f" 그러나 인코더를 학습시키는 것만으로 `tpavi_trained`가 고정된 `tpavi`보다 {lag:+.3f} "
                                "낮으므로, 이 예산에서는 논문의 설정이 학습되지 않아 이 비교로는 그 설정에서 손실이 "
                                "무엇을 하는지 알 수 없다.")
    return english, korean


def _how_they_act(rows: pd.DataFrame) -> tuple[str, str]:
    same = bool(rows.loc["thesis_minus_cosine", "same_as"])
    literal = "thesis_literal_c" in rows.index and rows.loc["thesis_literal_c", "verdict"] == IDENTICAL
    if not same:
        return ("**How do they act?** Without C, `thesis` differs from `tpavi`: A or B reach the segmentation model "
                "in this configuration.",
                "**어떻게 작용하는가?** C를 빼도 `thesis`는 `tpavi`와 다르다: 이 구성에서는 A나 B가 분할 모델에 닿는다.")
    return ("**How do they act?** Without C, `thesis` trains exactly the runs of `tpavi` at every seed: with a separate "
            "crop trunk, losses A and B never reach the segmentation model and C reaches it only through TPAVI's "
            "trainable audio projection, while under the write-up's literal reading of C (the averaged, frozen audio "
            "embedding) none of the three can "
            + ("(`thesis_literal_c` trains exactly `tpavi`'s runs)." if literal else "(notebook 03's gradient-flow table)."),
            "**어떻게 작용하는가?** C를 빼면 `thesis`는 모든 시드에서 `tpavi`와 똑같은 실행이 된다: 별도의 크롭 트렁크에서는 "
            "손실 A와 B가 분할 모델에 닿지 않고 C만 TPAVI의 학습 가능한 오디오 투영을 통해 닿으며, 논문 그대로의 C(평균한 "
            "고정 오디오 임베딩)로는 세 손실 모두 분할 모델을 바꿀 수 없다"
            + ("(`thesis_literal_c`는 `tpavi`와 똑같은 실행이다)." if literal else "(노트북 03의 기울기 흐름 표)."))


def _listening(means: pd.DataFrame) -> tuple[str, str]:
    m, chance = means.loc["tpavi"], means.loc["visual_only", "test_listening_rate"]
    return (f"**Does the model listen?** On clean test clips `tpavi` moves its mask to the object whose sound is "
            f"played on {pct(m['test_listening_rate'])} of swapped-audio frames and follows the audio both ways on "
            f"{pct(m['test_following_rate'])}; the deaf `visual_only` lands there by chance on {pct(chance)}.",
            f"**모델이 소리를 듣는가?** 깨끗한 테스트 클립에서 `tpavi`는 오디오를 바꿨을 때 {pct(m['test_listening_rate'])}의 "
            f"프레임에서 마스크를 소리 나는 물체로 옮기고, {pct(m['test_following_rate'])}에서 양방향으로 소리를 따른다. "
            f"소리를 듣지 않는 `visual_only`는 우연히 {pct(chance)}에서 그 물체를 고른다.")


def _under_shift(shift: dict) -> tuple[str, str]:
    follow, hardest = shift["follow"], shift["hardest"]
    broken = ", ".join(f"`{n}`" for n in shift["broken"])
    deaf = ", ".join(f"`{n}`" for n in shift["deaf_wins"])
    return (f"**Under a shift** `tpavi` follows the audio on {pct(follow.loc[hardest, 'tpavi'])} of the frames of the "
            f"hardest shifted split (`{hardest}`), against {pct(follow.loc['clean', 'tpavi'])} on clean clips; one "
            f"factor at a time, listening breaks under {broken or 'none of them'}, and the deaf `visual_only` beats "
            f"`tpavi` on on-screen mIoU on {deaf or 'no split'}.",
            f"**분포가 바뀌면** `tpavi`는 가장 어려운 분할(`{hardest}`)에서 {pct(follow.loc[hardest, 'tpavi'])}의 프레임에서만 "
            f"소리를 따른다(깨끗한 클립에서는 {pct(follow.loc['clean', 'tpavi'])}). 요인을 하나씩 바꾸면 듣는 능력은 "
            + (f"{broken}에서 무너지고, " if broken else "어느 요인에서도 무너지지 않고, ")
            + f"소리를 듣지 않는 `visual_only`가 화면 안 mIoU에서 `tpavi`를 앞서는 분할은 {deaf or '없다'}.")


def _thesis_numbers() -> tuple[str, str]:
    base, proposed, paper = (REPORTED[k]["miou"] for k in ("thesis_baseline", "thesis_proposed", "avsbench_resnet50"))
    below = proposed <= paper
    return (f"**The thesis' numbers.** Its baseline ({base:.3f}) lies {paper - base:.3f} below the published AVSBench "
            f"result of the same ResNet-50 model ({paper:.4f}), and its improved model ({proposed:.3f}) lies "
            f"{abs(paper - proposed):.3f} {'below' if below else 'above'} that published baseline: the reported gain "
            + ("closes the gap to a well-trained baseline rather than going beyond it." if below else
               "goes beyond a well-trained baseline."),
            f"**논문의 수치.** 논문의 기준선({base:.3f})은 같은 ResNet-50 모델의 AVSBench 공개 결과({paper:.4f})보다 "
            f"{paper - base:.3f} 낮고, 개선된 모델({proposed:.3f})은 그 공개 기준선보다 {abs(paper - proposed):.3f} "
            f"{'낮다' if below else '높다'}: 보고된 향상은 "
            + ("잘 학습된 기준선과의 차이를 메운 것이지 그것을 넘어선 것이 아니다." if below else "잘 학습된 기준선을 넘어선다."))


def _cannot_tell(trained: bool, multilook: bool) -> tuple[str, str]:
    looks = ("" if multilook else ", with several looks per class (here each class has one, so a crop's class can be "
             "read from its colour)")
    looks_ko = ("" if multilook else ", 클래스마다 여러 외형이 있을 때(여기서는 클래스마다 외형이 하나라 크롭의 "
                "클래스를 색으로 알 수 있다)")
    return ("**What this benchmark cannot tell**: whether the losses help on real AVSBench with ImageNet and VGGish "
            "weights (neither is available here)" + looks
            + ("" if trained else ", or in the thesis' own setup (a trainable AVS encoder beside a separate "
               "trainable crop trunk), which this grid does not run yet") + ".",
            "**이 벤치마크로 알 수 없는 것**: ImageNet과 VGGish 가중치를 쓴 실제 AVSBench에서 손실이 도움이 되는지"
            "(여기서는 둘 다 쓸 수 없다)" + looks_ko
            + ("" if trained else ", 그리고 논문 그대로의 설정(학습 가능한 AVS 인코더와 별도의 학습 가능한 크롭 트렁크)"
               "—이 그리드는 아직 이를 실행하지 않는다") + ".")


def answer(by_miou: pd.DataFrame, means: pd.DataFrame, shift: dict | None, trained: bool,
           multilook: pd.DataFrame | None = None, multilook_following: pd.Series | None = None,
           ) -> tuple[list[str], list[str]]:
    """The Answer: at most eight sentences (English, Korean) from the verdicts and rates shown
    (`shift` and `multilook` None when they did not run)."""
    rows = by_miou.set_index("method") if not by_miou.empty else pd.DataFrame()
    looks = multilook.set_index("method") if multilook is not None and not multilook.empty else pd.DataFrame()
    parts = []
    for method, label, label_ko in (
            ("thesis", "Do the crop losses help, AVS encoder frozen?", "AVS 인코더를 고정했을 때 크롭 손실이 도움이 되는가?"),
            ("thesis_trained", "And in the thesis' own setup (AVS encoder trained beside a separate crop trunk)?",
             "논문 그대로의 설정(AVS 인코더를 별도의 크롭 트렁크와 함께 학습)에서는?")):
        if method in rows.index:
            parts.append(_loss_verdict(rows, method, label, label_ko))
    if "thesis" in looks.index:
        english, korean = _loss_verdict(looks, "thesis", "And where a crop's class is not its colour (three looks per "
                                        "class, colours shared by all classes)?", "크롭의 클래스가 색으로 드러나지 않을 때"
                                        "(클래스마다 외형 셋, 모든 클래스가 색을 공유)는?")
        follow = multilook_following if multilook_following is not None else pd.Series(dtype=float)
        if {"tpavi", "thesis"} <= set(follow.index):
            english = english[:-1] + (f"; there `tpavi` follows the audio on {pct(follow['tpavi'])} of the frames and "
                                      f"`thesis` on {pct(follow['thesis'])}.")
            korean = korean[:-1] + (f" 이 벤치마크에서 `tpavi`는 {pct(follow['tpavi'])}, `thesis`는 {pct(follow['thesis'])}의 "
                                    "프레임에서 소리를 따른다.")
        parts.append((english, korean))
    if "thesis_minus_cosine" in rows.index:
        parts.append(_how_they_act(rows))
    if {"tpavi", "visual_only"} <= set(means.index) and not math.isnan(means.loc["tpavi", "test_listening_rate"]):
        parts.append(_listening(means))
    if shift is not None and "tpavi" in shift["follow"].columns:
        parts.append(_under_shift(shift))
    parts += [_thesis_numbers(), _cannot_tell(trained, "thesis" in looks.index)]
    return [en for en, _ in parts], [ko for _, ko in parts]


def answer_markdown(english: list[str], korean: list[str]) -> str:
    """answer.md: "## Answer" and "## 답", one bullet per sentence (the README shows both)."""
    return ("## Answer\n\n" + "\n".join(f"- {s}" for s in english) + "\n\n## 답\n\n"
            + "\n".join(f"- {s}" for s in korean) + "\n")
