"""What the report compares, defined once: each profile's default grid, its companions, and the
roles methods play in the comparison (baseline, proposal, the deaf floor, controls, ablations)."""

from __future__ import annotations

from dataclasses import dataclass

BASELINE, PROPOSED, CHANCE_METHOD = "tpavi", "thesis", "visual_only"
ABLATIONS = ("thesis_minus_crop_ce", "thesis_minus_pairwise", "thesis_minus_cosine")
MAIN_METHODS = ("visual_only", "tpavi", "tpavi_avm", "thesis", "thesis_shared", "cross_attention",
                "counterfactual", "thesis_counterfactual")
# The cpu report's comparison: the floor, the baseline, the thesis' losses with the AVS encoder
# frozen, the counterfactual objective, and the thesis as written (the AVS encoder trained beside a
# separate crop trunk) with its control, the same training without crop losses.
CPU_METHODS = ("visual_only", "tpavi", "thesis", "counterfactual", "tpavi_trained", "thesis_trained")
# One seed each: the same objectives from the gpu profile's random start, and the frozen shared trunk.
CPU_EXTRAS = ("tpavi_random_closed", "counterfactual_random_closed", "thesis_shared")
# With 3 seeds: the leave-one-out ablations and loss C read literally (frozen audio embedding).
CPU_ABLATIONS = (*ABLATIONS, "thesis_literal_c")
# Read on val only (notebook 03): the rungs of the recipe ladder, and the crop-loss weight of the
# trained-encoder thesis (1, the write-up's, is `thesis_trained` itself).
LADDER_PROBES = ("tpavi_random_open", "tpavi_pretrained_closed")
LAMBDA_PROBES = ("thesis_trained_lambda0.1", "thesis_trained_lambda0.01")
LADDER = ("tpavi_random_closed", "tpavi_random_open", "tpavi_pretrained_closed", "tpavi_trained", "tpavi")
# 10 seeds for the headline comparisons: thesis and counterfactual against tpavi, and the thesis as
# written (thesis_trained) against its control.
CPU_HEADLINE = ("tpavi", "thesis", "counterfactual", "tpavi_trained", "thesis_trained")
# Twice the step budget, with 3 seeds: does more training change the answer?
CPU_LONGER = ("tpavi_2x", "thesis_2x")
# A method judged against its own control rather than the baseline (`report.stats.default_pairs`).
CONTROLS = {"thesis_trained": "tpavi_trained", "thesis_trained_literal_c": "tpavi_trained",
            "tpavi_2x": "tpavi", "thesis_2x": "thesis"}


@dataclass(frozen=True)
class Grid:
    """The runs a profile's report trains: the main methods with every seed, extras with the first
    seed only, the ablations, and the rest below."""

    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    ablations: tuple[str, ...] = ()
    ablation_seeds: tuple[int, ...] | None = None  # None: the same seeds as the methods
    extras: tuple[str, ...] = ()  # in the comparison, with seeds[:1] (a budget cut, said in tables)
    probes: tuple[str, ...] = ()  # val-only runs that chose the recipe, with seeds[:1]; never compared
    # Methods whose comparisons are the headline verdicts, run with these seeds beyond `seeds`:
    # more pairs where a verdict sits near its edge, none where it is already decided.
    headline: tuple[str, ...] = ()
    headline_seeds: tuple[int, ...] = ()
    # The same objectives at a longer budget, with the ablations' seeds, each judged against its
    # own control (`CONTROLS`): is the profile's budget undertrained?
    longer: tuple[str, ...] = ()

    @property
    def compared(self) -> list[str]:
        """The methods of the main comparison: the main ones, then the extras."""
        return [*self.methods, *self.extras]

    @property
    def all_methods(self) -> list[str]:
        return [*self.methods, *self.extras, *self.ablations, *self.longer, *self.probes]

    @property
    def runs(self) -> list[tuple[str, list[str], list[int]]]:
        """(group, methods, seeds) to train: the methods with all seeds, the headline's further seeds,
        the extras, the ablations, the longer budget, the probes."""
        seeds, first = list(self.seeds if self.ablation_seeds is None else self.ablation_seeds), list(self.seeds[:1])
        groups = [("methods", self.methods, list(self.seeds)),
                  ("headline methods (further seeds)", self.headline, list(self.headline_seeds)),
                  ("extra methods", self.extras, first), ("ablations", self.ablations, seeds),
                  ("methods at twice the budget", self.longer, seeds), ("val-only probes", self.probes, first)]
        return [(name, list(methods), group_seeds) for name, methods, group_seeds in groups if methods and group_seeds]

    @property
    def pairs(self) -> list[tuple[str, int]]:
        """Every (method, seed) run of the grid, in training order."""
        return [(m, s) for _, methods, seeds in self.runs for m in methods for s in seeds]

    def describe(self) -> str:
        """The grid in one line: `80 runs: 6 methods x 5 seeds, ...`."""
        return f"{len(self.pairs)} runs: " + ", ".join(
            f"{len(methods)} {name} x {len(seeds)} seed{'s' * (len(seeds) > 1)}" for name, methods, seeds in self.runs)


# Each profile's default grid (`paper` has none: its runs take hours, so METHODS and SEEDS are given).
GRIDS = {
    "smoke": Grid(("visual_only", "tpavi", "thesis", "counterfactual"), (0,)),
    "cpu": Grid(CPU_METHODS, (0, 1, 2, 3, 4), CPU_ABLATIONS, ablation_seeds=(0, 1, 2), extras=CPU_EXTRAS,
                probes=(*LADDER_PROBES, *LAMBDA_PROBES), headline=CPU_HEADLINE, headline_seeds=(5, 6, 7, 8, 9),
                longer=CPU_LONGER),
    "cpu_multilook": Grid(("tpavi", "thesis"), (0, 1, 2, 3, 4), extras=("visual_only",)),
    "cpu_noisy": Grid(("tpavi",), (0, 1, 2), extras=("visual_only",)),
    "gpu": Grid(MAIN_METHODS, (0, 1, 2), ABLATIONS),
}
# Profiles on harder variants of a profile's data whose grids its report also trains and reads (a
# second table beside the first), each in its own data root and run folder (`report.companions`).
COMPANIONS = {"cpu": ("cpu_multilook", "cpu_noisy")}
