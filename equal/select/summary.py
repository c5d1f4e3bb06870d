"""What a finished selection run counted and paid, typed: :class:`RunSummary` and each method kind's own figures.

A run's ``summary.json`` is :meth:`RunSummary.to_json` (the same keys, in the same order, as the files written before
the summary was typed, so a finished run is read back unchanged); :meth:`RunSummary.from_json` reads one back. A
method kind adds its own figures as a details dataclass (a bandit's rounds, a distance band's rank window), written
flat beside the common ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BanditDetails:
    """A bandit's loop: rounds played, pulls made, why it stopped and how many rounds a resume replayed."""

    rounds: int
    pulls: int
    stop_reason: str
    resumed_rounds: int


@dataclass(frozen=True)
class RatingDetails:
    """LLM-scoring: ratings the rater wrote in no readable form (scored as the lowest rating)."""

    malformed_ratings: int


@dataclass(frozen=True)
class RewritingDetails:
    """Rewriting: the generation's counts (calls, pairs made, kept)."""

    rewriting: dict[str, int]


@dataclass(frozen=True)
class OracleDetails:
    """The extracted oracle: the clusters it took and their oracle rewards."""

    oracle_clusters: list[int]
    oracle_rewards: list[float]


@dataclass(frozen=True)
class BandDetails:
    """A distance band: its place in the ranking of documents by the OT distance of their pairs."""

    band: int
    bands: int
    band_rank_start: int
    ranked_documents: int
    band_distance_mean: float | None
    band_distance_range: list[float] | None


MethodDetails = BanditDetails | RatingDetails | RewritingDetails | OracleDetails | BandDetails
_DETAILS: tuple[type, ...] = (BanditDetails, RatingDetails, RewritingDetails, OracleDetails, BandDetails)


@dataclass(frozen=True)
class RunSummary:
    """A finished run of one method for one target, budget and seed: its size, its costs and its pairs' fate."""

    fingerprint: str
    method: str
    target: str
    gamma: float
    seed: int
    budget: int  # documents the method may extract (γ·|D_c|)
    warmup_documents: int  # the warm-up's documents charged to this run
    warmup_pairs_included: bool
    pairs: int
    llm_calls: int
    tokens: int
    flops_model: float
    flops_reference: float  # the same tokens charged at the paper's 72B extractor's size
    new_llm_calls: int  # calls paid by this run (not answered from a cache)
    wall_s: float
    loop_documents: int  # documents the method itself extracted
    documents_by_domain: dict[str, int]
    degenerate_pairs_dropped: int
    token_limit_documents: int
    draft_pairs: int  # extracted, before refinement and the quality gate
    refinement: dict[str, int]  # "kind/outcome" per draft
    quality_gate_dropped: dict[str, int]
    details: MethodDetails | None = None
    documents_extracted: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "documents_extracted", self.loop_documents + self.warmup_documents)

    def for_request(self, target: str, gamma: float, seed: int) -> RunSummary:
        """This summary labelled for another request (a shared run, All's, serves every target, γ and seed)."""
        return dataclasses.replace(self, target=target, gamma=gamma, seed=seed)

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` record: the common figures, the method's own, then ``documents_extracted``."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and f.name != "details"}
        if self.details is not None:
            record.update(dataclasses.asdict(self.details))
        record["documents_extracted"] = self.documents_extracted
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> RunSummary:
        """Read a ``summary.json`` record back (its method's figures into the details class whose fields it holds)."""
        common = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "details"}
        rest = {k: v for k, v in record.items() if k not in common and k != "documents_extracted"}
        details = None
        for kind in _DETAILS:
            names = {f.name for f in dataclasses.fields(kind)}
            if rest and names == set(rest):
                details = kind(**rest)
                break
        else:
            if rest:
                raise ValueError(f"summary.json of {record.get('method')!r}: figures of no known method kind: "
                                 f"{sorted(rest)}")  # fmt: skip
        return cls(**{k: record[k] for k in common}, details=details)
