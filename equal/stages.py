"""The pipeline's stages in the :class:`equal.stage.Stage` form, and how a profile's typed configuration builds them.

Each stage holds its parameters and runs the one implementation of its work (the functions of its package); the
notebooks tell each stage's story around :func:`equal.stage.run_stage` of one of these, and ``equal select`` runs the
data, warm-up, clustering and selection stages the same way for a user's corpus and task.

=============  =====================================  ======================================================
stage          runs                                   after
=============  =====================================  ======================================================
data           :func:`equal.data.corpus.prepare_data`  —
warmup         :func:`equal.embed.stages.warmup_stage`  data
clustering     :func:`equal.embed.stages.clustering_stage`  warmup
selection      :class:`equal.select.runner.MethodRunner` over :func:`~equal.select.methods.selection_plan`  clustering
finetuning     :func:`equal.train.plan.train_runs`     selection
evaluation     :func:`equal.evaluate.harness.evaluate_model` per model  finetuning
=============  =====================================  ======================================================

Objects a stage is handed to run with but that do not decide its outputs (a loaded extractor to share, a device)
are excluded from its parameters: :meth:`Stage.parameters` lists what its fingerprint is made of, nothing else.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from equal import paths
from equal.artifacts import Artifacts
from equal.config import Config, recorded_parameters
from equal.stage import Stage


def _answers(config: Config) -> str | None:
    """The shipped LLM answers' digest: the calls a replay reads are part of what decides its outputs."""
    return (config.llm_answers or {}).get("sha256")


@dataclass
class DataStage:
    """Stage ``data``: the corpus (dedup, decontamination) and the target tasks' splits."""

    name: ClassVar[str] = "data"
    after: ClassVar[tuple[str, ...]] = ()
    config: Any  # equal.data.corpus.CorpusConfig
    force: bool = False

    @classmethod
    def from_config(cls, config: Config, art: Artifacts) -> DataStage:
        """The profile's data stage, writing into ``art.data``."""
        from equal.data.corpus import CorpusConfig
        from equal.profiles import from_namespace

        corpus = from_namespace(CorpusConfig, recorded_parameters(config, "data"),
                                raw_dir=paths.raw_data_dir(config.common.raw_data_dir), out_dir=art.data)  # fmt: skip
        return cls(corpus, force=config.data.force)

    def parameters(self) -> dict[str, Any]:
        """Every preparation setting and the digest of its input files (:func:`preparation_fingerprint`)."""
        from equal.data.corpus import preparation_fingerprint

        return dict(preparation_fingerprint(self.config).parts)

    def run(self, art: Artifacts):
        """Prepare (or read back) the corpus and splits: :class:`equal.data.corpus.PreparedData`."""
        from equal.data.corpus import prepare_data

        return prepare_data(self.config, force=self.force)


@dataclass
class WarmupStage:
    """Stage ``warmup``: a seeded share of the corpus extracted, and the embedder aligned on its pairs."""

    name: ClassVar[str] = "warmup"
    after: ClassVar[tuple[str, ...]] = ("data",)
    config: Any  # equal.embed.warmup.WarmupConfig
    embedder: str
    llm: dict
    extraction: dict
    refinement: dict
    answers: str | None = None  # the shipped answers' sha256, where a profile replays them
    search_whole_corpus: bool = True  # the retrieval check searches the whole corpus (else the warm-up's documents)
    extractor: Any = field(default=None, repr=False)  # a loaded extractor to share (built from the settings if None)
    device: str | None = field(default=None, repr=False)
    progress: bool = field(default=True, repr=False)

    @classmethod
    def from_config(cls, config: Config, art: Artifacts) -> WarmupStage:
        """The profile's warm-up stage."""
        from equal.embed.warmup import WarmupConfig

        common, settings = config.common, config.warmup
        keys = ("holdout_fraction", "range_min", "range_max", "num_negatives", "temperature", "learning_rate",
                "epochs", "batch_size")  # fmt: skip
        warmup = WarmupConfig(fraction=settings.warmup_fraction, seed=common.seed,
                              **{k: getattr(settings, k) for k in keys})  # fmt: skip
        return cls(warmup, settings.embedder, common.llm, common.extraction, common.refinement, _answers(config))

    def parameters(self) -> dict[str, Any]:
        """The warm-up's and the extractor's settings, the answers replayed, the version of the pair records (its
        pairs are made the way every run's are) and the embedder training's version."""
        from equal.embed.warmup import TRAINING_VERSION
        from equal.llm.extract import PAIRS_VERSION

        # the warm-up refines every kind (equal.llm.extract.with_every_kind): the kinds a profile keeps change
        # nothing it makes, so they are not part of its parameters
        refinement = {k: v for k, v in (self.refinement or {}).items() if k != "kinds"}
        return {"warmup": asdict(self.config), "embedder": self.embedder, "llm": self.llm,
                "extraction": self.extraction, "refinement": refinement, "llm_answers": self.answers,
                "pairs_version": PAIRS_VERSION, "training_version": TRAINING_VERSION,
                "pair_kinds": "every kind"}  # fmt: skip

    def run(self, art: Artifacts):
        """Extract the warm-up documents and align the embedder: :class:`equal.embed.stages.WarmupStage`."""
        from equal.embed.stages import warmup_stage
        from equal.llm.extract import make_extractor

        if self.extractor is None:  # kept: the caller may show or share it
            self.extractor = make_extractor(self.llm, self.extraction, self.config.seed, refinement=self.refinement,
                                            load_reference=art.load_reference)  # fmt: skip
        corpus = art.load_corpus()
        return warmup_stage(art, corpus, self.extractor, self.config, self.embedder, device=self.device,
                            candidate_docs=corpus if self.search_whole_corpus else None,
                            progress=self.progress)  # fmt: skip


@dataclass
class ClusteringStage:
    """Stage ``clustering``: both embeddings of the corpus, k at the elbow, k-means and the clusters' W2."""

    name: ClassVar[str] = "clustering"
    after: ClassVar[tuple[str, ...]] = ("warmup",)
    k_values: list[int]
    k: int | None
    min_clusters: int
    max_clusters: int | None
    seed: int
    algorithm: str = "auto"
    w2_only_below: float | None = None
    device: str | None = field(default=None, repr=False)
    progress: bool = field(default=True, repr=False)

    @classmethod
    def from_config(cls, config: Config, art: Artifacts) -> ClusteringStage:
        """The profile's clustering stage."""
        s = config.clustering
        return cls(s.k_values, s.k, s.min_clusters, s.max_clusters, config.common.seed, s.algorithm, s.w2_only_below)

    def parameters(self) -> dict[str, Any]:
        """Its settings (the embedders' identities come with the warm-up's record)."""
        return {key: value for key, value in asdict(self).items() if key not in ("device", "progress")}

    def run(self, art: Artifacts):
        """Embed, choose k and cluster: :class:`equal.embed.stages.ClusteringStage`."""
        from equal.embed.stages import clustering_stage

        return clustering_stage(art, art.load_corpus(), self.k_values, self.k, self.min_clusters, self.max_clusters,
                                seed=self.seed, algorithm=self.algorithm, w2_only_below=self.w2_only_below,
                                device=self.device, progress=self.progress)  # fmt: skip


@dataclass
class SelectionResult:
    """What the selection stage made: its runner (read-only services), All's run, every run of the plan, times."""

    runner: Any  # equal.select.runner.MethodRunner
    everything: Any  # All's MethodRun, or None when All is not a method of the profile
    runs: list
    timings: dict


@dataclass
class SelectionStage:
    """Stage ``selection``: every method × target × γ × seed of the plan, each run read back when finished."""

    name: ClassVar[str] = "selection"
    after: ClassVar[tuple[str, ...]] = ("clustering",)
    targets: list[str]
    gammas: list[float]
    seeds: list[int]
    methods: list[str]
    settings: Any  # equal.config.SelectionSettings
    llm: dict
    extraction: dict
    refinement: dict
    seed: int
    answers: str | None = None
    _runner: Any = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(cls, config: Config, art: Artifacts) -> SelectionStage:
        """The profile's selection stage."""
        c = config.common
        return cls(c.targets, c.gammas, c.seeds, c.methods, config.selection, c.llm, c.extraction, c.refinement,
                   c.seed, _answers(config))  # fmt: skip

    #: selection settings that change how runs are scheduled or shown, not what they select
    NOT_SELECTING: ClassVar[tuple[str, ...]] = ("parallel_runs", "show_round", "sample_pairs")

    def parameters(self) -> dict[str, Any]:
        """What selects: the plan's axes, the selection settings, the extractor's settings, the answers and the
        versions of the pair records and of the methods' prompts."""
        from equal.llm.extract import PAIRS_VERSION
        from equal.llm.rating import RATING_VERSION
        from equal.select.domain import CONTROL_VERSION
        from equal.select.rewriting import REWRITE_PAIRS_VERSION, REWRITE_VERSION

        selecting = {k: v for k, v in asdict(self.settings).items() if k not in self.NOT_SELECTING}
        versions = {"pairs": PAIRS_VERSION, "rating": RATING_VERSION, "rewrite": REWRITE_VERSION,
                    "rewrite_pairs": REWRITE_PAIRS_VERSION, "controls": CONTROL_VERSION}  # fmt: skip
        return {"targets": self.targets, "gammas": self.gammas, "seeds": self.seeds, "methods": self.methods,
                "selection": selecting, "llm": self.llm, "extraction": self.extraction, "refinement": self.refinement,
                "seed": self.seed, "llm_answers": self.answers, "versions": versions}  # fmt: skip

    def plan(self) -> list[tuple[str, str, float, int]]:
        """Every run of the stage (:func:`equal.select.methods.selection_plan`)."""
        from equal.select.methods import selection_plan

        return selection_plan(self.targets, self.gammas, self.seeds, self.methods)

    def runner(self, art: Artifacts):
        """The method runner over the profile's files, built once (it loads the extractor, embedders and the
        scorers the methods declare)."""
        if self._runner is None:
            from equal.llm.extract import make_extractor
            from equal.select.methods import scorers_needed
            from equal.select.runner import MethodRunner

            s, needed = self.settings, scorers_needed(self.methods)
            extractor = make_extractor(self.llm, self.extraction, self.seed, refinement=self.refinement,
                                       load_reference=art.load_reference)  # fmt: skip
            self._runner = MethodRunner.from_artifacts(
                art, extractor, self.targets, s.policies, s.reward,
                perplexity_model=s.perplexity_model if "perplexity" in needed else None,
                influence_model=s.perplexity_model if "influence" in needed else None,
                docs_per_pull=s.docs_per_pull, arms_per_round=s.arms_per_round,
                include_warmup_pairs=s.include_warmup_pairs)  # fmt: skip
        return self._runner

    def run(self, art: Artifacts) -> SelectionResult:
        """All first (it serves every run's extraction cache and the oracle), then the plan's first run, then
        every QA pair of All embedded at once (rewards then only look vectors up), then the rest of the plan
        (:meth:`MethodRunner.run_many`).

        The order is part of the result: an embedding's last bits depend on the batch it was computed in, and a
        vector is computed once and cached, so another order moves the OT figures by about 1e-8. This is the order
        the committed results were computed in (notebook 04's: All, the run it explains, the grid)."""
        from equal.embed.warmup import qa_text

        runner, timings, plan = self.runner(art), {}, self.plan()
        tick = time.perf_counter()
        everything = runner.run("All", self.targets[0], self.gammas[0], self.seeds[0]) if "All" in self.methods \
            else None  # fmt: skip
        timings["all_s"] = round(time.perf_counter() - tick, 1)
        tick = time.perf_counter()
        first = [runner.run(*plan[0])] if plan else []
        for store in runner.stores.values():
            if everything is not None:
                store.get([qa_text(p) for p in everything.pairs], progress=False)
        runs = first + runner.run_many(plan[1:], parallel=self.settings.parallel_runs)
        timings["methods_s"] = round(time.perf_counter() - tick, 1)
        return SelectionResult(runner, everything, runs, timings)

    def finished_work(self, art: Artifacts) -> str:
        """How many of the plan's runs have finished work on disk (``summary.json``, written last; each is read back
        only where its own fingerprint still matches)."""
        from equal.select.methods import get_method

        done = sum((art.selection_run_dir(m, t, g, s, shared=get_method(m).shared) / "summary.json").is_file()
                   for m, t, g, s in self.plan())  # fmt: skip
        return f"{done} of {len(self.plan())} runs with finished work on disk"


@dataclass
class FinetuningStage:
    """Stage ``finetuning``: the base model fine-tuned on each planned training set."""

    name: ClassVar[str] = "finetuning"
    after: ClassVar[tuple[str, ...]] = ("selection",)
    config: Any  # equal.train.finetune.FinetuneConfig
    runs: list  # equal.train.plan.TrainingRun
    base_model: str

    @classmethod
    def from_config(cls, config: Config, art: Artifacts) -> FinetuningStage:
        """The profile's fine-tuning stage: its groups of runs and, where asked, the D_r controls."""
        from equal.train.finetune import FinetuneConfig
        from equal.train.plan import control_runs, plan_runs

        c, s = config.common, config.finetuning
        runs = plan_runs(s.runs, c.methods, c.gammas, c.seeds, c.targets)
        runs += control_runs(c.targets) if s.reference_control else []
        return cls(FinetuneConfig(**s.finetune), runs, c.base_model)

    def parameters(self) -> dict[str, Any]:
        """The regime, the runs and the base model."""
        return {"finetune": asdict(self.config), "runs": [asdict(r) for r in self.runs], "base_model": self.base_model}

    def run(self, art: Artifacts):
        """Train (or read back) every run: one row per model (:func:`equal.train.plan.train_runs`)."""
        from equal.train.plan import train_runs
        from equal.weights import causal_lm_dir

        return train_runs(self.runs, art, causal_lm_dir(self.base_model), self.config)

    def finished_work(self, art: Artifacts) -> str:
        """How many of the planned models have finished (``train_info.json``, written last)."""
        done = sum((r.folder(art) / "train_info.json").is_file() for r in self.runs)
        return f"{done} of {len(self.runs)} models trained"


@dataclass
class EvaluationResult:
    """What the evaluation stage made: one row per model × task (``long``), one per model × item (``items``), and
    what it evaluated."""

    long: Any  # pandas.DataFrame
    items: Any  # pandas.DataFrame
    models: list[dict]
    eval_files: dict[str, Path]
    specs: dict
    bench_target: dict[str, str]


@dataclass
class EvaluationStage:
    """Stage ``evaluation``: the base model and every fine-tuned model on its target's benchmarks (lm-eval)."""

    name: ClassVar[str] = "evaluation"
    after: ClassVar[tuple[str, ...]] = ("finetuning",)
    config: Any  # equal.evaluate.harness.EvalConfig
    base_model: str
    targets: list[str]
    secondary_for: list[str] | None = None  # methods evaluated on their domain's other benchmarks too (None: all)

    @classmethod
    def from_config(cls, config: Config, art: Artifacts) -> EvaluationStage:
        """The profile's evaluation stage."""
        from equal.evaluate.harness import EvalConfig

        settings = dict(config.evaluation.evaluation)
        benchmarks = tuple(settings.get("benchmarks", EvalConfig.benchmarks))
        return cls(EvalConfig(**{**settings, "benchmarks": benchmarks}), config.common.base_model,
                   config.common.targets, config.evaluation.secondary_benchmarks_for)  # fmt: skip

    def parameters(self) -> dict[str, Any]:
        """How models are evaluated, on what, and the base model."""
        return {"evaluation": asdict(self.config), "base_model": self.base_model, "targets": self.targets,
                "secondary_for": self.secondary_for}  # fmt: skip

    def run(self, art: Artifacts) -> EvaluationResult:
        """Write the benchmarks' items, then evaluate every model of the roster (each model × task read back from
        the evaluation cache when its weights and items are unchanged)."""
        import pandas as pd

        from equal.data.tasks import select_tasks
        from equal.evaluate.harness import evaluate_model, item_scores, write_eval_items
        from equal.progress import tqdm
        from equal.report.analysis import model_roster
        from equal.report.link import target_of_benchmark
        from equal.weights import causal_lm_dir

        config = self.config
        specs = select_tasks(art.load_tasks(), [], config.benchmarks)  # declared in params/tasks.yaml or a profile
        eval_files = write_eval_items({b: art.evaluation_file(b) for b in config.benchmarks}, art.eval_items_dir,
                                      config)  # fmt: skip
        bench_target = target_of_benchmark({name: spec.domain for name, spec in art.load_tasks().items()},
                                           self.targets)  # fmt: skip
        # the base model and every model of the fine-tuning stage, each on its target's benchmarks (Base, All: all)
        models = model_roster(art, pd.read_csv(art.table("finetune_runs")), causal_lm_dir(self.base_model),
                              eval_files, bench_target, self.secondary_for)  # fmt: skip
        rows, item_rows = [], []
        keys = ("model", "method", "target", "gamma", "seed", "train_seed")
        for model in tqdm(models, desc="evaluating", unit="model"):
            evaluated = evaluate_model(model["dir"], model["files"], config, art.eval_cache_dir, specs)
            rows += [{**{k: model[k] for k in keys}, **row} for row in evaluated]
            weights = evaluated[0]["model_weights"]  # the model's identity, hashed once
            for row in item_scores(model["dir"], model["files"], config, art.eval_cache_dir, specs,
                                   model_id=weights):  # fmt: skip
                item_rows.append({**{k: model[k] for k in keys}, **row})
        return EvaluationResult(pd.DataFrame(rows), pd.DataFrame(item_rows), models, eval_files, specs, bench_target)


def profile_stages(config: Config, art: Artifacts) -> list[Stage]:
    """The profile's stages in pipeline order, built from its typed configuration (nothing loaded or run)."""
    return [cls.from_config(config, art) for cls in STAGE_TYPES]


#: The stages in pipeline order (the figures notebook reads results only and has no stage of its own).
STAGE_TYPES = (DataStage, WarmupStage, ClusteringStage, SelectionStage, FinetuningStage, EvaluationStage)


DIAGRAM_START = "<!-- stages:start (generated by `python -m equal.stages`; do not edit by hand) -->"
DIAGRAM_END = "<!-- stages:end -->"


def stage_diagram() -> str:
    """A Mermaid diagram of the stages, drawn from :data:`STAGE_TYPES` (names, what each reads, what runs them)."""
    lines = ["```mermaid", "flowchart LR"]
    for cls in STAGE_TYPES:
        doc = (cls.__doc__ or "").split(":", 1)[-1].strip().split(".")[0].replace('"', "'")
        lines.append(f'    {cls.name}["<b>{cls.name}</b> · {cls.__name__}<br/>{doc}"]')
    for cls in STAGE_TYPES:
        lines += [f"    {upstream} --> {cls.name}" for upstream in cls.after]
    lines += ['    runner(["run_stage: fingerprint = parameters + upstream records;<br/>'
              'record data/&lt;profile&gt;/stages/&lt;name&gt;.json; time; progress"])',
              '    status(["equal status: current · stale (what changed) · interrupted · not run"])',
              "    runner -.runs.-> data & warmup & clustering & selection & finetuning & evaluation",
              "    runner -.records.-> status", "```"]  # fmt: skip
    return "\n".join(lines)


def rewrite_design(path: Path | None = None) -> bool:
    """Replace the stage diagram between its markers in docs/design.md; True when it changed."""
    from equal.report.modules import replace_block

    return replace_block(path or paths.REPO_ROOT / "docs" / "design.md", DIAGRAM_START, DIAGRAM_END, stage_diagram())


if __name__ == "__main__":
    print("docs/design.md stage diagram " + ("rewritten" if rewrite_design() else "unchanged"))
