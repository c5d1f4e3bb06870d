"""The selection stage's plan of runs and the scorers its methods declare (no notebook decides either)."""

from equal.select.methods import scorers_needed, selection_plan


def test_the_plan_runs_a_shared_method_once_per_target_and_budget():
    plan = selection_plan(["gsm8k", "mbpp"], [0.05], [0, 1], ["EQUAL", "All", "Random"])
    assert plan == [("EQUAL", "gsm8k", 0.05, 0), ("All", "gsm8k", 0.05, 0), ("Random", "gsm8k", 0.05, 0),
                    ("EQUAL", "gsm8k", 0.05, 1), ("Random", "gsm8k", 0.05, 1),
                    ("EQUAL", "mbpp", 0.05, 0), ("All", "mbpp", 0.05, 0), ("Random", "mbpp", 0.05, 0),
                    ("EQUAL", "mbpp", 0.05, 1), ("Random", "mbpp", 0.05, 1)]  # fmt: skip


def test_methods_declare_the_scorers_they_need():
    assert scorers_needed(["EQUAL", "Random", "All", "Avg-sim", "LLM-scoring"]) == frozenset()
    assert scorers_needed(["Perplexity-MAB"]) == scorers_needed(["Perplexity"]) == {"perplexity"}
    assert scorers_needed(["Influence", "Influence-MAB", "EQUAL"]) == {"influence"}
