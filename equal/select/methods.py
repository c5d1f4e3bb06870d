"""Every selection method of the paper — EQUAL, its ablations and the baselines — as one registry.

A method is a small object: how it chooses documents (:meth:`Method.select`), which inputs its
result depends on beyond the common ones (:meth:`Method.fingerprint_parts`); how it is shown (its plot colour)
lives in :mod:`equal.report.style`. :class:`~equal.select.runner.MethodRunner` runs any of them the same way —
same budget, extractor, cache, ledger, read-back and resume. Adding a method is one entry in
:data:`METHODS` (and a class if no existing kind fits); no notebook changes.

=========================  ===========================================================================
EQUAL                      bandit over warm-up-tuned clusters, OT reward, the configured policy
EQUAL (authors' code)      same, with the authors' code's policy (fixed α, count + 1, per-pull
                           reward, reward sharing)
EQUAL w/o warm-up          EQUAL over clusters of the untuned embeddings, no warm-up cost or pairs
EQUAL w/o MAB              one-shot OT ranking of the clusters (each pulled once, then fixed order)
EQUAL w/o exploration      greedy on R (no exploration term)
Thompson sampling          an extra policy: Gaussian Thompson sampling on R
ε-greedy                   an extra policy
Uniform                    round-robin over the (tuned) clusters, no reward
Perplexity-MAB             EQUAL's bandit with the mean perplexity of the pairs under the base model as
                           reward (lower perplexity = higher reward)
Random                     γ·|D_c| documents drawn at random
All                        every document (its cost does not depend on γ or the seed)
Avg-sim                    All's pairs, keeping the ones most similar to D_r (mean cosine), as many
                           as EQUAL extracted at the same γ and seed; costs what All costs
Perplexity                 All's pairs, keeping those of lowest perplexity under the base model, as many as
                           EQUAL's; costs All plus a base-model forward pass per pair
LLM-scoring                All's pairs, keeping the best rated (1–5) by the extractor LLM for the target, as
                           many as EQUAL's; costs All plus one LLM call per pair
Influence                  All's pairs, keeping those of highest LESS-style gradient influence on D_r, as many
                           as EQUAL's; costs All plus a LoRA warm-up and a gradient per pair and per D_r item
Influence-MAB              EQUAL's bandit with the mean gradient influence of a pull's pairs as reward
Rewriting                  no documents: the extractor LLM writes new problems like the D_r items, as many pairs
                           as EQUAL's, new and decontaminated; costs its generation calls
Oracle (extracted)         a control: the budget's documents from the clusters with the best oracle
                           reward (All's pairs of each cluster against D_r), best cluster first
Distance band 1 … 5        a control: the corpus ranked by the OT distance of each document's (refined) pairs to
                           held-out target items, known from All's extraction; band 1 holds the budget's nearest
                           documents, the others are spread evenly down to the farthest (the distance-band test)
=========================  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from equal.embed.warmup import qa_text
from equal.errors import ConfigError
from equal.fingerprint import Fingerprint, fingerprint
from equal.llm.ledger import CallRecord, CostLedger
from equal.llm.rating import RATING_VERSION, rate_pairs
from equal.registry import Registry
from equal.select.context import SelectionContext
from equal.select.domain import CONTROL_VERSION
from equal.select.loop import LoopConfig, run_loop
from equal.select.policies import make_policy
from equal.select.reward import OTReward
from equal.select.rewriting import REWRITE_PAIRS_VERSION, REWRITE_VERSION, rewrite_from_seeds
from equal.select.summary import (
    BandDetails,
    BanditDetails,
    MethodDetails,
    OracleDetails,
    RatingDetails,
    RewritingDetails,
)


@dataclass
class RunRequest:
    """One run to make: which target, budget and seed, where, under which fingerprint."""

    target: str
    gamma: float
    seed: int
    folder: Path
    fingerprint: Fingerprint


RATING_EXAMPLES = 2  # D_r items shown to the rater as examples of the target task
EMPTY_INFLUENCE = -1.0  # the reward of an Influence-MAB pull with no pair: the lowest cosine
EMPTY_NLL = 10.0  # nats/token charged to a Perplexity-MAB pull with no pair: worse than any real text


def _influence_scorer(runner: SelectionContext, name: str):
    if runner.influence is None:
        raise ConfigError(f"{name} needs a gradient scorer (parameter influence_model)")
    return runner.influence


def _charge_influence_setup(scorer, ledger: CostLedger, name: str, targets: list[dict]) -> None:
    """What every Influence run pays before scoring a candidate: the LoRA warm-up and the target's gradients."""
    scorer.charge_warmup(ledger, name)
    reference = [{"question": t["question"], "answer": t.get("solution") or t["answer"]} for t in targets]
    scorer.charge(ledger, name, reference, stage="score-influence-target")


def gamma_label(gamma: float) -> str:
    """``0.05`` → ``"5%"`` (for tables and folder names)."""
    return f"{gamma * 100:g}%"


@dataclass
class Selection:
    """What a method chose: the loop's documents (corpus indices), their pairs, and its own figures."""

    indices: list[int]
    pairs: list[dict]
    pulls: pd.DataFrame | None = None
    details: MethodDetails | None = None


#: Every input a run's result can depend on beyond the runner's common ones (corpus, extractor, prompts, answers),
#: by the name its fingerprint gives it: one getter each, called with the method (or a filter's pair score), the
#: runner and the request. A method names the inputs it reads (``inputs``); nothing else builds fingerprint parts.
RUN_INPUTS: dict[str, Callable[[Any, SelectionContext, RunRequest], Any]] = {
    # D_r (None for a method that does not read it but always named it: the perplexity bandit)
    "reference": lambda m, r, q: r.reference_digest(q.target) if getattr(m, "reads_reference", True) else None,
    "heldout": lambda m, r, q: r.heldout_digest(q.target),  # the target's held-out items
    "clustering": lambda m, r, q: r.clustering_digest(m.clustering),
    "embedder": lambda m, r, q: getattr(r.stores[m.embedder], "identity", ""),
    "policy": lambda m, r, q: r.policy_config(m.name),
    "reward": lambda m, r, q: m.reward_identity(r),
    "docs_per_pull": lambda m, r, q: r.docs_per_pull,
    "arms_per_round": lambda m, r, q: r.arms_per_round,
    "source": lambda m, r, q: r.fingerprint(m.source, q.target, q.gamma, q.seed).digest,  # the run it reads
    "matched": lambda m, r, q: r.fingerprint(m.matched, q.target, q.gamma, q.seed).digest,  # the run it matches
    "score": lambda m, r, q: m.score,
    "scorer": lambda m, r, q: m.scorer_identity(r),  # a filter's scoring model
    "protected": lambda m, r, q: fingerprint(items=r.protected_items()).digest,  # every evaluation item
    "band": lambda m, r, q: m.band,
    "bands": lambda m, r, q: m.bands,
    "rating_prompt": lambda m, r, q: RATING_VERSION,
    "prompt": lambda m, r, q: m.prompt_version,  # Rewriting's generation prompt
    "pairs": lambda m, r, q: m.pairs_version,  # and how its pairs are post-processed
    "rule": lambda m, r, q: m.rule,
    "target_domain": lambda m, r, q: r.target_domain(q.target),
    "quantile_design": lambda m, r, q: {"quantile": m.quantile, "quantiles": m.quantiles, "share": m.share},
    "control_version": lambda m, r, q: CONTROL_VERSION,  # the domain controls' fixed settings (equal.select.domain)
}


def run_inputs(owner: Any, runner: SelectionContext, request: RunRequest) -> dict[str, Any]:
    """The fingerprint parts of ``owner`` (a method or a pair score): each input it declares, from
    :data:`RUN_INPUTS`."""
    unknown = [name for name in owner.inputs if name not in RUN_INPUTS]
    if unknown:
        raise ConfigError(f"{type(owner).__name__} declares unknown run inputs {unknown} (known: {sorted(RUN_INPUTS)})")
    return {name: RUN_INPUTS[name](owner, runner, request) for name in owner.inputs}


@dataclass(frozen=True)
class Method:
    """A selection method: its name (the paper's) and what it builds on."""

    name: str
    uses_warmup: bool = True  # the warm-up's documents are charged (and its pairs may join the set)
    clustering: str = "tuned"  # which clustering (and embedder for the reward): tuned | untuned
    shared: bool = False  # one run serves every target, γ and seed (All)
    kind: ClassVar[str] = "method"
    #: whether it reads embeddings or clusters (False: `equal select` skips the warm-up, training and clustering)
    uses_embeddings: ClassVar[bool] = True
    #: the inputs its result depends on beyond the runner's common ones, named in :data:`RUN_INPUTS`
    inputs: ClassVar[tuple[str, ...]] = ()
    #: whether it reads the corpus's source domain labels (a user's corpus in `equal select` has none)
    needs_domain_labels: ClassVar[bool] = False

    @property
    def embedder(self) -> str:
        """The embedder (by clustering key) its reward or score reads."""
        return self.clustering

    def reward_identity(self, runner: SelectionContext):
        """What its reward depends on (the OT reward's configuration)."""
        return runner.reward_config

    def fingerprint_parts(self, runner: SelectionContext, request: RunRequest) -> dict:
        """Its declared :attr:`inputs`, each read from :data:`RUN_INPUTS`."""
        return run_inputs(self, runner, request)

    def scorers(self) -> frozenset[str]:
        """The scoring models this method needs loaded besides the extractor (``perplexity``, ``influence``)."""
        return frozenset()

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        """Choose and extract documents within the budget; charge every call to ``ledger``."""
        raise NotImplementedError


@dataclass(frozen=True)
class BanditMethod(Method):
    """A bandit over clusters: the configured policy (``policies[name]``) and reward (OT or perplexity)."""

    reward: str = "ot"  # ot | perplexity | influence
    kind: ClassVar[str] = "bandit"

    def scorers(self) -> frozenset[str]:
        return frozenset({self.reward} & {"perplexity", "influence"})

    inputs: ClassVar[tuple[str, ...]] = ("reference", "policy", "reward", "docs_per_pull", "arms_per_round",
                                         "clustering", "embedder")  # fmt: skip

    @property
    def reads_reference(self) -> bool:
        """Whether its reward reads D_r (not the perplexity reward)."""
        return self.reward in ("ot", "influence")

    def reward_identity(self, runner: SelectionContext):
        """What the reward depends on (perplexity: ":charged" since its scoring is charged as forward passes)."""
        if self.reward == "ot":
            return runner.reward_config
        if self.reward == "perplexity":
            return f"perplexity:{runner.perplexity_identity()}:charged"
        return f"influence:{runner.influence_identity()}"

    def _reward_function(self, runner: SelectionContext, target: str, ledger: CostLedger):
        store = runner.stores[self.clustering]
        if self.reward == "ot":
            ot_reward = OTReward(store.get(runner.reference_texts(target)), runner.reward_config)

            def reward(arm: int, items: list[dict], cumulative: bool) -> float:
                return ot_reward(arm, store.get([qa_text(p) for p in items]), cumulative)

            return reward
        history: dict[int, list[float]] = {}
        if self.reward == "influence":
            scorer = _influence_scorer(runner, self.name)
            targets = runner.references[target]
            _charge_influence_setup(scorer, ledger, self.name, targets)

            def influence_reward(arm: int, items: list[dict], cumulative: bool) -> float:
                scorer.charge(ledger, self.name, items)  # each pull's pairs get a gradient once
                scores = list(scorer.influence(items, targets))
                if cumulative:
                    scores = history.setdefault(arm, []) + scores
                    history[arm] = scores
                return float(np.mean(scores)) if scores else EMPTY_INFLUENCE

            return influence_reward
        if runner.perplexity is None:
            raise ConfigError(f"{self.name} needs a perplexity scorer (parameter perplexity_model)")

        def reward(arm: int, items: list[dict], cumulative: bool) -> float:
            texts = [qa_text(p) for p in items]
            runner.perplexity.charge(ledger, self.name, items, texts)  # each pull's pairs are scored once
            scores = list(runner.perplexity.score(texts))
            if cumulative:
                scores = history.setdefault(arm, []) + scores
                history[arm] = scores
            return -float(np.mean(scores)) if scores else -EMPTY_NLL

        return reward

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        labels = runner.labels[self.clustering]
        corpus = runner.corpus

        def pull(round_index: int, assignments: list[tuple[int, np.ndarray]]) -> list[list[dict]]:
            flat = [int(i) for _, docs in assignments for i in docs]
            records = runner.extract(self.name, flat, ledger, progress=False)
            by_doc: dict[str, list[dict]] = {}
            for record in records:
                by_doc.setdefault(record["doc_id"], []).append(record)
            return [
                [{**r, "cluster": arm, "round": round_index} for i in docs for r in by_doc.get(corpus[i]["id"], [])]
                for arm, docs in assignments
            ]

        config = LoopConfig(runner.budget(request.gamma), runner.docs_per_pull, runner.arms_per_round, request.seed)
        run = run_loop(
            make_policy(runner.policy_config(self.name)), labels, config, pull,
            self._reward_function(runner, request.target, ledger),
            n_arms=int(labels.max()) + 1,
            distances=runner.distances[self.clustering],
            excluded=runner.warmup_mask() if self.uses_warmup else None,
            log_path=request.folder / "rounds.jsonl",
            fingerprint={"run": request.fingerprint.digest},
            progress=runner.progress,
            description=f"{self.name} · {request.target} · γ={gamma_label(request.gamma)} · seed {request.seed}",
        )  # fmt: skip
        details = BanditDetails(rounds=int(run.pulls[-1].round + 1) if run.pulls else 0, pulls=len(run.pulls),
                                stop_reason=run.stop_reason, resumed_rounds=run.resumed_rounds)  # fmt: skip
        return Selection(run.documents, [item for _, _, item in run.items], run.pulls_frame(), details)


@dataclass(frozen=True)
class RandomMethod(Method):
    """γ·|D_c| documents drawn uniformly at random (seeded)."""

    uses_warmup: bool = False
    kind: ClassVar[str] = "random"
    uses_embeddings: ClassVar[bool] = False

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        rng = np.random.default_rng([request.seed, 0xDA7A])
        n = len(runner.corpus)
        indices = sorted(int(i) for i in rng.choice(n, size=min(runner.budget(request.gamma), n), replace=False))
        return Selection(indices, runner.extract(self.name, indices, ledger))


@dataclass(frozen=True)
class AllMethod(Method):
    """Every document extracted once (the expensive reference point)."""

    uses_warmup: bool = False
    shared: bool = True
    kind: ClassVar[str] = "all"
    uses_embeddings: ClassVar[bool] = False

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        everything = list(range(len(runner.corpus)))
        return Selection(everything, runner.extract(self.name, everything, ledger))


class PairScore:
    """How a filter scores every pair of All's (higher: kept first): what the score depends on (its fingerprint
    parts), the scoring models it needs loaded, and the scoring itself, its compute charged to the ledger."""

    needs: frozenset[str] = frozenset()
    inputs: tuple[str, ...] = ()  # what the scores depend on beyond the pairs, named in RUN_INPUTS
    embedder: str = "tuned"

    def score(self, runner: SelectionContext, request: RunRequest, pairs: list[dict], ledger: CostLedger, method: str
              ) -> tuple[np.ndarray, RatingDetails | None]:  # fmt: skip
        """One score per pair and what to report; compute charged to ``ledger`` under ``method``."""
        raise NotImplementedError


class AverageSimilarity(PairScore):
    """Avg-sim: the mean cosine of a pair to D_r's items with the tuned embedder."""

    inputs = ("reference", "embedder")

    def score(self, runner, request, pairs, ledger, method):
        store = runner.stores[self.embedder]
        reference = store.get(runner.reference_texts(request.target))
        return (store.get([qa_text(p) for p in pairs]) @ reference.T).mean(axis=1), None


class LowPerplexity(PairScore):
    """Perplexity: the lowest mean token NLL under the base model first, charged as its forward passes."""

    needs = frozenset({"perplexity"})

    inputs = ("scorer",)

    @staticmethod
    def scorer_identity(runner: SelectionContext) -> str:
        return runner.perplexity_identity()

    def score(self, runner, request, pairs, ledger, method):
        if runner.perplexity is None:
            raise ConfigError(f"{method} needs a perplexity scorer (parameter perplexity_model)")
        texts = [qa_text(p) for p in pairs]
        runner.perplexity.charge(ledger, method, pairs, texts)
        return -runner.perplexity.score(texts), None


class GradientInfluence(PairScore):
    """Influence: LESS-style gradient influence on D_r, charged as forward and backward passes."""

    needs = frozenset({"influence"})

    inputs = ("reference", "scorer")

    @staticmethod
    def scorer_identity(runner: SelectionContext) -> str:
        return runner.influence_identity()

    def score(self, runner, request, pairs, ledger, method):
        scorer = _influence_scorer(runner, method)
        targets = runner.references[request.target]
        _charge_influence_setup(scorer, ledger, method, targets)
        scorer.charge(ledger, method, pairs)
        return scorer.influence(pairs, targets), None


class LLMRating(PairScore):
    """LLM-scoring: the extractor LLM's 1-5 rating of each pair's usefulness for the target, charged as LLM calls."""

    inputs = ("reference", "rating_prompt")

    def score(self, runner, request, pairs, ledger, method):
        examples = runner.references[request.target][:RATING_EXAMPLES]
        ratings, malformed = rate_pairs(runner.extractor, pairs, examples, method, ledger)
        return np.asarray(ratings, dtype=float), RatingDetails(malformed_ratings=malformed)


#: The filters' pair scores by the name a FilterMethod gives (``score``).
PAIR_SCORES: Registry = Registry("pair score")
for _name, _score in (("avg_sim", AverageSimilarity()), ("perplexity", LowPerplexity()),
                      ("influence", GradientInfluence()), ("llm", LLMRating())):  # fmt: skip
    PAIR_SCORES.register(_name, _score)


@dataclass(frozen=True)
class FilterMethod(Method):
    """Extract everything, score every pair, keep the best-scored ones — as many as ``matched`` extracted at the
    same γ and seed. It pays All's extraction and its own scoring compute.

    ``score``: ``avg_sim`` — mean cosine to D_r with the tuned embedder (Avg-sim); ``perplexity`` — the lowest mean
    token NLL under the base model first (the pairs it finds most predictable), charged as base-model forward
    passes; ``influence`` — LESS-style gradient influence on D_r (:mod:`equal.select.influence`), charged as
    forward and backward passes; ``llm`` — the extractor LLM's 1–5 rating of each pair's usefulness for the target
    (LLM-scoring, :mod:`equal.llm.rating`), charged as LLM calls. Ties are broken in a seeded random order.
    Per-sample scores like these are what the paper argues against: they treat pairs as independent.
    """

    uses_warmup: bool = False
    source: str = "All"
    matched: str = "EQUAL"
    score: str = "avg_sim"
    kind: ClassVar[str] = "filter"

    def scorers(self) -> frozenset[str]:
        return PAIR_SCORES.get(self.score).needs

    inputs: ClassVar[tuple[str, ...]] = ("source", "matched", "score")

    def fingerprint_parts(self, runner: SelectionContext, request: RunRequest) -> dict:
        """Its own inputs and its score's."""
        return run_inputs(self, runner, request) | run_inputs(PAIR_SCORES.get(self.score), runner, request)

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        everything = runner.run(self.source, request.target, request.gamma, request.seed)
        keep = runner.run(self.matched, request.target, request.gamma, request.seed).summary.pairs
        for row in everything.ledger():  # it costs what extracting everything costs
            ledger.add(CallRecord(**{**row, "method": self.name, "cached": True}))
        indices = list(range(len(runner.corpus)))
        pairs = everything.pairs
        if not pairs:
            return Selection(indices, [])
        score, details = PAIR_SCORES.get(self.score).score(runner, request, pairs, ledger, self.name)
        tie_break = np.random.default_rng([request.seed, 0x7AB1E]).random(len(pairs))
        order = np.lexsort((tie_break, -score))[:keep]  # best score first; equal scores in a seeded order
        column = self.score
        chosen = [{**pairs[i], "method": self.name, column: round(float(score[i]), 6)} for i in sorted(order)]
        return Selection(indices, chosen, details=details)


@dataclass(frozen=True)
class RewritingMethod(Method):
    """Synthetic data instead of documents: the extractor LLM writes new problems like the D_r items
    (:mod:`equal.select.rewriting`), as many pairs as ``matched`` extracted at the same γ and seed, new and
    decontaminated against every evaluation item, refined and gated like every extracted pair (what ``matched``
    holds is counted after refinement too). It reads no document and pays its generation and refinement calls."""

    uses_warmup: bool = False
    matched: str = "EQUAL"
    kind: ClassVar[str] = "rewrite"

    inputs: ClassVar[tuple[str, ...]] = ("matched", "reference", "prompt", "pairs", "protected")
    prompt_version: ClassVar[str] = REWRITE_VERSION
    pairs_version: ClassVar[str] = REWRITE_PAIRS_VERSION

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        wanted = runner.run(self.matched, request.target, request.gamma, request.seed).summary.pairs
        pairs, counts = rewrite_from_seeds(
            runner.extractor, runner.references[request.target], wanted, runner.protected_items(),
            self.name, ledger, seed=request.seed, pairs_per_call=runner.extractor.config.max_pairs,
            finish=lambda made: runner.refine_generated(self.name, made, ledger),
        )  # fmt: skip
        domain = runner.target_domain(request.target)
        chosen = [{**p, "method": self.name, "domain": domain, "source": "rewriting", "pair_index": i}
                  for i, p in enumerate(pairs)]  # fmt: skip
        return Selection([], chosen, details=RewritingDetails(rewriting=counts))


@dataclass(frozen=True)
class OracleMethod(Method):
    """A control, not a method: the budget's documents from the clusters with the best *oracle* reward — each
    cluster's OT reward against D_r when all its documents are extracted, known because ``source`` (All) extracted
    everything. Clusters are taken best first, their documents in a seeded order. It tests the link the method
    relies on: if these documents do not make a better model than Random's, no bandit over the clusters can."""

    uses_warmup: bool = False
    source: str = "All"
    kind: ClassVar[str] = "oracle"

    inputs: ClassVar[tuple[str, ...]] = ("source", "reference", "reward", "clustering", "embedder")

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        everything = runner.run(self.source, request.target, request.gamma, request.seed)
        oracle = runner.cluster_oracles(everything.pairs, [request.target])[request.target, self.clustering]
        labels = runner.labels[self.clustering]
        rng = np.random.default_rng([request.seed, 0x0AC1E])
        order: list[int] = []
        for cluster in np.argsort(-oracle, kind="stable"):  # best oracle reward first
            members = np.flatnonzero(labels == cluster)
            order += [int(i) for i in rng.permutation(members)]
        indices = sorted(order[: runner.budget(request.gamma)])
        # its calls were made by All: answered from the cache, charged like any extraction of these documents
        pairs = runner.extract(self.name, indices, ledger)
        cluster_of = {runner.corpus[i]["id"]: int(labels[i]) for i in indices}
        chosen = sorted({cluster_of[runner.corpus[i]["id"]] for i in indices})
        details = OracleDetails(oracle_clusters=chosen, oracle_rewards=[round(float(oracle[c]), 6) for c in chosen])
        return Selection(indices, pairs, details=details)


@dataclass(frozen=True)
class DomainControlMethod(Method):
    """A domain-matched control (:mod:`equal.select.domain`): γ·|D_c| documents aimed at the target's domain without
    OT or a bandit, extracted like every method's. ``rule``: ``classifier`` — the documents a logistic regression on
    the base embedder's vectors finds most like D_r's items (Domain filter, DCLM-style; negatives a seeded sample of
    the corpus); ``dsir`` — DSIR's hashed n-gram importance resampling toward D_r (the authors' ``data-selection``
    package, drawn with the selection seed); ``in_domain`` — random documents of the target's declared domain
    (source labels: a reference, a web corpus has none)."""

    uses_warmup: bool = False
    clustering: str = "untuned"  # the domain filter reads the base embedder, as the quality signals do
    rule: str = "classifier"
    kind: ClassVar[str] = "domain"

    RULES: ClassVar[dict[str, tuple[str, ...]]] = {
        "classifier": ("reference", "embedder", "rule", "control_version"),
        "dsir": ("reference", "rule", "control_version"),
        "in_domain": ("target_domain", "rule", "control_version"),
    }

    def __post_init__(self) -> None:
        if self.rule not in self.RULES:
            raise ConfigError(f"{self.name}: unknown rule {self.rule!r} (known: {', '.join(self.RULES)})")

    @property
    def uses_embeddings(self) -> bool:  # type: ignore[override]  # only the classifier reads vectors
        return self.rule == "classifier"

    @property
    def needs_domain_labels(self) -> bool:  # type: ignore[override]
        return self.rule == "in_domain"

    @property
    def inputs(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.RULES[self.rule]

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        from equal.select import domain as controls

        k = runner.budget(request.gamma)
        if self.rule == "classifier":
            store = runner.stores[self.embedder]
            documents = store.get([d["text"] for d in runner.corpus])
            scores = controls.domain_filter_scores(documents, store.get(runner.reference_texts(request.target)),
                                                   request.seed)  # fmt: skip
            tie_break = np.random.default_rng([request.seed, 0xF17]).random(len(scores))
            indices = sorted(int(i) for i in np.lexsort((tie_break, -scores))[:k])
        elif self.rule == "dsir":
            weights = controls.dsir_log_weights([d["text"] for d in runner.corpus],
                                                runner.reference_texts(request.target))  # fmt: skip
            indices = controls.gumbel_top_k(weights, k, request.seed)
        else:  # in_domain
            domains = [d["domain"] for d in runner.corpus]
            indices = controls.in_domain_sample(domains, runner.target_domain(request.target), k, request.seed)
        return Selection(indices, runner.extract(self.name, indices, ledger))


BANDS = 5  # distance bands over the whole ranking (the distance-band test; issue 25 asks for at least 5)


@dataclass(frozen=True)
class BandMethod(Method):
    """A control, not a method: one band of γ·|D_c| documents from the corpus ranked by the OT distance of each
    document's pairs (from ``source``, All, refined like every method's) to the target's *held-out* items, with the
    base embedder. Band 1 holds the nearest documents (a document-level extracted oracle), band ``bands`` the
    farthest, the others evenly spaced between. Training one model per band tests the link the method assumes, in
    the style of "A Critical Look at Targeted Instruction Selection" (arXiv 2602.14696): if bits per byte do not rise
    with the band's distance, no selection by this distance can win. Documents without a pair cannot be ranked and
    are left out. Membership does not depend on the seed: seeds replicate fine-tuning only."""

    uses_warmup: bool = False
    band: int = 1
    bands: int = BANDS
    source: str = "All"
    kind: ClassVar[str] = "band"

    inputs: ClassVar[tuple[str, ...]] = ("source", "heldout", "embedder", "band", "bands")

    @property
    def embedder(self) -> str:  # distances to held-out items with the base embedder, as the quality signals
        return "untuned"

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        ranked = ranked_by_heldout_distance(runner, request, self.source)
        size = min(runner.budget(request.gamma), len(ranked))
        start = round((self.band - 1) * (len(ranked) - size) / max(self.bands - 1, 1))
        chosen = ranked[start : start + size]
        indices = sorted(i for _, i in chosen)
        # its calls were made (and refined) by All: answered from the cache, charged like any extraction of these
        pairs = runner.extract(self.name, indices, ledger)
        distances = [d for d, _ in chosen]
        details = BandDetails(
            band=self.band,
            bands=self.bands,
            band_rank_start=start,
            ranked_documents=len(ranked),
            band_distance_mean=round(float(np.mean(distances)), 6) if distances else None,
            band_distance_range=[round(distances[0], 6), round(distances[-1], 6)] if distances else None,
        )
        return Selection(indices, pairs, details=details)


def ranked_by_heldout_distance(runner: SelectionContext, request: RunRequest, source: str,
                               domain: str | None = None) -> list[tuple[float, int]]:  # fmt: skip
    """(distance, corpus index) of every document with a pair in ``source``'s run (All's), nearest first: the OT
    distance of the document's pairs to the target's held-out items with the base embedder; only documents of
    ``domain`` where one is given. Ties keep corpus order."""
    from equal.select.reward import ot_distance

    everything = runner.run(source, request.target, request.gamma, request.seed)
    heldout = runner.heldout_embeddings(request.target)
    store = runner.stores["untuned"]
    texts: dict[str, list[str]] = {}
    for pair in everything.pairs:
        texts.setdefault(pair["doc_id"], []).append(qa_text(pair))
    index = {d["id"]: i for i, d in enumerate(runner.corpus)}
    return sorted(
        (ot_distance(store.get(t), heldout, metric="cosine", solver="emd"), index[d])
        for d, t in texts.items()
        if d in index and (domain is None or runner.corpus[index[d]]["domain"] == domain)
    )


@dataclass(frozen=True)
class DomainQuantileMethod(Method):
    """A control for the link *inside* the target's domain: the target domain's documents (declared domain, source
    labels) ranked by the OT distance of their pairs (All's) to the held-out items, cut into ``quantiles``
    contiguous quantiles covering the whole ranking; a selection is ``share`` of quantile ``quantile``'s documents
    drawn at random with the selection seed, the same size in every quantile. Unlike the distance bands it holds
    the domain fixed (a band's distance mostly says which domain it is in) and its selections vary with the seed,
    so a slope of bits per byte on quantile can be estimated with selection variance in its interval. Its size does
    not depend on γ (the test compares quantiles with one another, not budgets): train it at one γ."""

    uses_warmup: bool = False
    quantile: int = 1
    quantiles: int = 4
    share: float = 0.5
    source: str = "All"
    kind: ClassVar[str] = "domain_quantile"
    needs_domain_labels: ClassVar[bool] = True
    inputs: ClassVar[tuple[str, ...]] = ("source", "heldout", "embedder", "target_domain", "quantile_design")

    def __post_init__(self) -> None:
        if not (1 <= self.quantile <= self.quantiles and 0 < self.share <= 1):
            raise ConfigError(f"{self.name}: quantile {self.quantile} of {self.quantiles}, share {self.share}: need "
                              "1 ≤ quantile ≤ quantiles and 0 < share ≤ 1")  # fmt: skip

    @property
    def embedder(self) -> str:  # as the distance bands and the quality signals
        return "untuned"

    def select(self, runner: SelectionContext, request: RunRequest, ledger: CostLedger) -> Selection:
        domain = runner.target_domain(request.target)
        if domain is None:
            raise ConfigError(f"{self.name} needs the target's declared domain (params/tasks.yaml)")
        ranked = ranked_by_heldout_distance(runner, request, self.source, domain)
        if len(ranked) < self.quantiles:
            raise ConfigError(f"{self.name}: {len(ranked)} ranked {domain} documents for {self.quantiles} quantiles")
        edges = np.linspace(0, len(ranked), self.quantiles + 1).round().astype(int)
        members = ranked[edges[self.quantile - 1] : edges[self.quantile]]
        size = max(1, int(self.share * min(np.diff(edges))))  # the same size in every quantile
        rng = np.random.default_rng([request.seed, 0x0D0, self.quantile])
        chosen = [members[i] for i in sorted(rng.choice(len(members), size=size, replace=False))]
        indices = sorted(i for _, i in chosen)
        pairs = runner.extract(self.name, indices, ledger)  # All's calls: answered from the cache
        distances = [d for d, _ in chosen]
        details = BandDetails(band=self.quantile, bands=self.quantiles, band_rank_start=int(edges[self.quantile - 1]),
                              ranked_documents=len(ranked), band_distance_mean=round(float(np.mean(distances)), 6),
                              band_distance_range=[round(min(distances), 6), round(max(distances), 6)])  # fmt: skip
        return Selection(indices, pairs, details=details)


def quantile_name(quantile: int) -> str:
    """The registry name of in-domain quantile ``quantile`` (1 = nearest)."""
    return f"In-domain quantile {quantile}"


def band_name(band: int) -> str:
    """The registry name of distance band ``band`` (1 = nearest)."""
    return f"Distance band {band}"


ORACLE = "Oracle (extracted)"  # the control the report compares with Random

# The paper's names (their plot colours: equal.report.style).
METHODS: Registry = Registry("method")
for _method in (
    BanditMethod("EQUAL"),
    BanditMethod("EQUAL (authors' code)"),
    BanditMethod("EQUAL w/o warm-up", uses_warmup=False, clustering="untuned"),
    BanditMethod("EQUAL w/o MAB"),
    BanditMethod("EQUAL w/o exploration"),
    BanditMethod("Thompson sampling"),
    BanditMethod("ε-greedy"),
    BanditMethod("Uniform"),
    BanditMethod("Perplexity-MAB", reward="perplexity"),
    RandomMethod("Random"),
    AllMethod("All"),
    FilterMethod("Avg-sim"),
    FilterMethod("Perplexity", score="perplexity"),
    FilterMethod("LLM-scoring", score="llm"),
    FilterMethod("Influence", score="influence"),
    BanditMethod("Influence-MAB", reward="influence"),
    RewritingMethod("Rewriting"),
    OracleMethod(ORACLE),
    DomainControlMethod("Domain filter"),
    DomainControlMethod("DSIR", rule="dsir"),
    DomainControlMethod("Random in domain", rule="in_domain"),
    *(BandMethod(band_name(b), band=b) for b in range(1, 6)),  # the distance bands, nearest first
    *(DomainQuantileMethod(quantile_name(q), quantile=q) for q in range(1, 5)),  # the link inside the domain
):
    METHODS.register(_method.name, _method)
ABLATIONS = ("EQUAL w/o warm-up", "EQUAL w/o MAB", "EQUAL w/o exploration")


def selection_plan(targets: list[str], gammas: list[float], seeds: list[int], methods: list[str]
                   ) -> list[tuple[str, str, float, int]]:  # fmt: skip
    """Every run ``(method, target, γ, seed)`` of a selection stage, targets outermost: a method that serves every
    target, γ and seed with one run (All) is listed once per target and γ, on the first seed."""
    return [(m, t, g, s) for t in targets for g in gammas for s in seeds for m in methods
            if not (get_method(m).shared and s != seeds[0])]  # fmt: skip


def scorers_needed(methods: list[str]) -> frozenset[str]:
    """The scoring models the ``methods`` need loaded (``perplexity``, ``influence``), as they declare."""
    return frozenset().union(*(get_method(m).scorers() for m in methods))


def get_method(name: str) -> Method:
    """The registered method called ``name`` (a clear error naming the known ones otherwise)."""
    return METHODS.get(name)
