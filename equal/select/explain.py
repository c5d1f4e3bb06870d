"""Why the bandit pulled what it pulled: one round of a finished run, replayed from its log.

The selection loop is a pure function of its seed and the rewards it observed, so the state of
the policy before any round can be rebuilt from the run's ``pulls.csv`` alone — no LLM call, no
embedding. :func:`explain_round` shows, for every cluster, what the policy knew (pulls T_j, value
R_j), the score it ranked by (DS_j = R_j + exploration bonus for UCB) and which clusters it chose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from equal.select.policies import make_policy


def explain_round(
    policy_config: dict,
    pulls: pd.DataFrame,
    pool_sizes: np.ndarray,
    round_index: int,
    seed: int,
    arms_per_round: int,
    distances: np.ndarray | None = None,
) -> pd.DataFrame:
    """The policy's view of every cluster just before ``round_index``, and the clusters it chose then.

    ``pulls``: a finished run's pulls (round, arm, docs, reward); ``pool_sizes``: candidate documents
    per cluster at the start. Rows are sorted by score, best first; ``chosen`` marks the round's pulls,
    which match the run's log (checked by ``logged``).
    """
    n_arms = len(pool_sizes)
    policy = make_policy(policy_config).start(n_arms, distances)
    remaining = np.asarray(pool_sizes, dtype=np.int64).copy()
    for pull in pulls[pulls["round"] < round_index].itertuples(index=False):
        policy.update(int(pull.arm), float(pull.reward))
        remaining[int(pull.arm)] -= int(pull.docs)
    available = remaining > 0
    rng = np.random.default_rng([seed, round_index])
    scores = np.asarray(policy.scores(available, rng), dtype=np.float64)
    chosen = policy.select(available, arms_per_round, np.random.default_rng([seed, round_index]))
    logged = set(pulls.loc[pulls["round"] == round_index, "arm"].astype(int))
    table = pd.DataFrame(
        {
            "cluster": np.arange(n_arms),
            "pulls T_j": policy.pulls_,
            "value R_j": policy.values_,
            "score": np.where(policy.pulls_ == 0, np.inf, scores),
            "bonus": np.where(policy.pulls_ == 0, np.inf, scores - policy.values_),
            "documents left": remaining,
            "chosen": np.isin(np.arange(n_arms), chosen),
            "logged": np.isin(np.arange(n_arms), sorted(logged)),
        }
    )
    return table.sort_values(["chosen", "score"], ascending=False).reset_index(drop=True)
