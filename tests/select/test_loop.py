import json

import numpy as np
import pytest

from equal.select.loop import ClusterPool, LoopConfig, ResumeMismatch, run_loop
from equal.select.policies import UCB, RoundRobin
from equal.select.reward import OTReward


def world(n_docs=60, n_arms=4, seed=0):
    """Documents in clusters; each document 'extracts' to two embeddings near its cluster's centre,
    and cluster 2 sits next to the reference set."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_docs) % n_arms
    centres = rng.normal(size=(n_arms, 8))
    reference = centres[2] + rng.normal(0, 0.3, size=(30, 8))
    items = centres[labels][:, None, :] + rng.normal(0, 0.3, size=(n_docs, 2, 8))
    return labels, reference, items


class Extractor:
    """A stand-in for the LLM: returns each document's items and counts what it was asked."""

    def __init__(self, items, fail_at_round=None):
        self.items, self.fail_at_round, self.calls = items, fail_at_round, []

    def __call__(self, round_index, assignments):
        if round_index == self.fail_at_round:
            raise KeyboardInterrupt("killed mid-round")
        self.calls.append(round_index)
        return [[(int(d), k) for d in docs for k in range(2)] for _, docs in assignments]


def ot_reward_on(items, reference):
    reward = OTReward(reference)
    return lambda arm, new, cumulative: reward(arm, np.array([items[d, k] for d, k in new]).reshape(-1, 8), cumulative)


def test_budget_is_spent_exactly_and_the_close_cluster_wins():
    labels, reference, items = world()
    config = LoopConfig(budget=25, docs_per_pull=2, arms_per_round=2, seed=0)
    run = run_loop(UCB(), labels, config, Extractor(items), ot_reward_on(items, reference), progress=False)
    assert run.spent == 25 and run.stop_reason == "budget"
    assert len(set(run.documents)) == 25  # never the same document twice
    assert len(run.items) == 50
    frame = run.pulls_frame()
    assert frame["docs"].sum() == 25 and frame["docs"].max() == 2
    assert frame.groupby("arm")["docs"].sum().idxmax() == 2  # most of the budget went to the close cluster
    assert all(labels[d] == p.arm for p in run.pulls for d in p.docs)


def test_exhausted_clusters_drop_out_and_excluded_documents_are_never_drawn():
    labels, reference, items = world(n_docs=12, n_arms=3)
    excluded = np.zeros(12, bool)
    excluded[[0, 3]] = True
    run = run_loop(
        RoundRobin(),
        labels,
        LoopConfig(budget=100, docs_per_pull=3),
        Extractor(items),
        ot_reward_on(items, reference),
        excluded=excluded,
        progress=False,
    )
    assert run.stop_reason == "exhausted" and run.spent == 10
    assert not {0, 3} & set(run.documents)
    pool = ClusterPool(labels, 3, 0, excluded)
    assert pool.sizes().tolist() == [2, 4, 4]


def test_an_interrupted_run_resumes_to_identical_results(tmp_path):
    labels, reference, items = world()
    config = LoopConfig(budget=30, docs_per_pull=1, arms_per_round=3, seed=4)
    straight = run_loop(UCB(), labels, config, Extractor(items), ot_reward_on(items, reference), progress=False)

    log = tmp_path / "rounds.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_loop(
            UCB(),
            labels,
            config,
            Extractor(items, fail_at_round=5),
            ot_reward_on(items, reference),
            log_path=log,
            progress=False,
        )
    assert len(log.read_text().splitlines()) == 1 + 5  # header + five finished rounds
    with open(log, "a") as handle:
        handle.write('{"round": 5, "pul')  # a torn line from the crash
    resumed = run_loop(
        UCB(), labels, config, Extractor(items), ot_reward_on(items, reference), log_path=log, progress=False
    )
    assert resumed.resumed_rounds == 5
    assert [vars(p) for p in resumed.pulls] == [vars(p) for p in straight.pulls]
    assert resumed.items == straight.items
    rounds = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    assert [r["round"] for r in rounds] == list(range(10))


def test_a_log_from_other_parameters_is_refused(tmp_path):
    labels, reference, items = world()
    log = tmp_path / "rounds.jsonl"
    run_loop(
        UCB(),
        labels,
        LoopConfig(budget=6),
        Extractor(items),
        ot_reward_on(items, reference),
        log_path=log,
        progress=False,
    )
    with pytest.raises(ResumeMismatch, match="other parameters"):
        run_loop(
            UCB(),
            labels,
            LoopConfig(budget=8),
            Extractor(items),
            ot_reward_on(items, reference),
            log_path=log,
            progress=False,
        )


def test_the_seed_changes_the_draws_and_fixes_them():
    labels, reference, items = world()
    runs = [run_loop(UCB(), labels, LoopConfig(budget=12, seed=s), Extractor(items), ot_reward_on(items, reference),
                     progress=False).documents for s in (0, 0, 1)]  # fmt: skip
    assert runs[0] == runs[1] and runs[0] != runs[2]
