"""Where finished selection runs live: one folder per run, read back when its fingerprint still matches.

Each run of a method writes one folder (named by :class:`~equal.artifacts.Artifacts`)::

    run.json            the run's content fingerprint and its parts (written first)
    pairs.jsonl         its QA set, one pair per line, with document id, source, domain, cluster, round
                        (refined pairs also with their draft, reference answer, kind and refinement outcome)
    drafts.jsonl        every pair as extracted, before refinement and the quality gate
    ledger.jsonl        every LLM call charged to it (cached calls included: cost is what the method
                        would pay on its own); warm-up calls first for the methods that use the warm-up
    rounds.jsonl        the bandit's checkpoint log (bandit methods)
    pulls.csv           one row per pull: round, cluster, documents, pairs, reward (bandit methods)
    summary.json        counts and costs (:class:`~equal.select.summary.RunSummary`); written last, so its
                        presence means the run is complete
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from equal.artifacts import Artifacts
from equal.fingerprint import reuse_or_reset
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.select.methods import Method, RunRequest, get_method
from equal.select.summary import RunSummary


@dataclass
class MethodRun:
    """A finished run of one method: its QA set, pulls (bandit methods) and summary."""

    method: str
    target: str
    gamma: float
    seed: int
    pairs: list[dict]
    summary: RunSummary
    pulls: pd.DataFrame | None = None
    folder: Path | None = None
    reused: bool = False  # read back from a finished run with the same fingerprint

    def ledger(self) -> list[dict]:
        """Every LLM call charged to this run."""
        return read_jsonl(self.folder / "ledger.jsonl") if self.folder else []


@dataclass
class RunStore:
    """The folders of a profile's selection runs: where a run lives, reading a finished one back, writing one."""

    artifacts: Artifacts
    log: bool = True  # say when a stale run is redone, and why

    def folder(self, method: str, target: str, gamma: float, seed: int) -> Path:
        """Where a run's files live (a shared method such as All does not depend on target, γ or seed)."""
        return self.artifacts.selection_run_dir(method, target, gamma, seed, shared=get_method(method).shared)

    def read_back(self, spec: Method, request: RunRequest) -> MethodRun | None:
        """The finished run in ``request.folder`` when its fingerprint matches (:func:`equal.fingerprint.
        reuse_or_reset`: a stale folder is cleared and said so, an unfinished one kept for the bandit to resume)."""
        folder = request.folder
        label = f"{spec.name} · {request.target} · γ={request.gamma:g} · seed {request.seed}"  # paid calls: cached
        if not reuse_or_reset(folder, request.fingerprint, "summary.json", label, stamp="run.json",
                              log=print if self.log else None):  # fmt: skip
            return None
        done = folder / "summary.json"
        summary = RunSummary.from_json(json.loads(done.read_text(encoding="utf-8")))
        pulls = pd.read_csv(folder / "pulls.csv") if (folder / "pulls.csv").is_file() else None
        if spec.shared:  # one run serves every target/γ/seed: label it for the caller
            summary = summary.for_request(request.target, request.gamma, request.seed)
        return MethodRun(spec.name, request.target, request.gamma, request.seed,
                         read_jsonl(folder / "pairs.jsonl"), summary, pulls, folder, reused=True)  # fmt: skip

    @staticmethod
    def write(folder: Path, pairs: list[dict], drafts: list[dict], pulls: pd.DataFrame | None,
              summary: RunSummary) -> None:  # fmt: skip
        """A finished run's files; ``summary.json`` last (its presence marks the run complete)."""
        write_jsonl_atomic(folder / "pairs.jsonl", pairs)
        write_jsonl_atomic(folder / "drafts.jsonl", drafts)
        if pulls is not None:
            pulls.to_csv(folder / "pulls.csv", index=False)
        write_json_atomic(folder / "summary.json", summary.to_json())
