"""Re-analyse a finished run with selection seeds as the unit of inference (issue 42), from its committed items.

    .venv/bin/python scripts/seed_level_reanalysis.py [--profile default]

Reads ``results/<profile>/eval_items.csv.gz`` (every model × benchmark × item) and writes to
``results/reanalysis/<profile>/``: ``comparisons_by_seed`` (every comparison of notebook 06's plan: Welch interval and
p, exact permutation p, over selection-seed means), ``calibration_random_splits`` (how often this test and notebook
06's item-and-seed bootstrap call two halves of Random's seeds different) and ``seeds_needed`` (selection seeds per
arm for an MDE of 0.010 bits per byte on each target's benchmark, from the spread of EQUAL's and Random's seed
means). The functions are :func:`equal.report.analysis.seed_level_analysis`; notebook 06 adopts them with the re-run
its analysis plan (docs/experiment.md) describes.
"""

from __future__ import annotations

import argparse

import pandas as pd

from equal.config import load_config
from equal.paths import REPO_ROOT, results_dir
from equal.report.analysis import comparison_plan, seed_level_analysis
from equal.results import save_table
from equal.select.methods import get_method


def main(argv: list[str] | None = None) -> int:
    """Write the three tables for ``--profile`` and print their summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    config = load_config(args.profile)
    source = results_dir(config.profile, config.common.results_dir) / "eval_items.csv.gz"
    items = pd.read_csv(source)
    gamma = min(config.common.gammas)
    benchmarks = sorted(items["benchmark"].unique())
    primary = [b for b in benchmarks if b in config.common.targets]
    bands = [m for m in config.common.methods if get_method(m).kind == "band"]
    plan = comparison_plan(config.common.methods, bands)
    comparisons, calibration, needed = seed_level_analysis(items, plan, benchmarks, primary, gamma,
                                                           seed=config.common.seed)  # fmt: skip
    out = REPO_ROOT / "results" / "reanalysis" / config.profile
    parameters = {"profile": config.profile, "source": str(source.relative_to(REPO_ROOT)), "gamma": gamma,
                  "seed": config.common.seed, "target_mde": 0.010}  # fmt: skip
    save_table(comparisons, out / "comparisons_by_seed", parameters,
               caption=f"Every comparison of notebook 06 at γ = {gamma:g} with selection seeds as the unit: difference "
                       "of means over seed means (first − second; bits per byte, lower is better), Welch 95 % interval "
                       "and p, exact permutation p, Welch's own MDE; the uncorrected p < 0.05 flag is not a call "
                       "(the plan calls on Holm's p over each target's comparisons).")  # fmt: skip
    save_table(calibration, out / "calibration_random_splits", parameters,
               caption="Random against Random: every split of Random's selection seeds into two halves, tested with "
                       "Welch over seed means, the permutation test and notebook 06's item-and-seed bootstrap. A "
                       "calibrated test rejects about 5 % of splits; the permutation test cannot reject below its "
                       "smallest attainable p.")  # fmt: skip
    caption = (
        "Selection seeds per arm for an EQUAL − Random comparison to detect 0.010 bits per byte with 80 % "
        "power (two-sided Welch, α = 0.05), from the spread of the two arms' seed means here."
    )
    save_table(needed, out / "seeds_needed", parameters, caption=caption)
    print(comparisons[comparisons["a"] == "EQUAL"][["benchmark", "b", "difference", "ci_low", "ci_high", "p_welch",
                                                    "p_permutation"]].round(4).to_string(index=False))  # fmt: skip
    rate = calibration[["welch_rejects", "permutation_rejects", "bootstrap_rejects"]].mean().round(3).to_dict()
    print(f"Random-vs-Random splits ({len(calibration)}): rejection rates {rate}")
    print(needed.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
