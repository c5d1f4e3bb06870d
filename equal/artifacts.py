"""Stage contracts: every file one notebook hands to the next, named once, with typed loaders.

A profile's files live in three folders — prepared data and stage outputs (``data/<profile>``,
git-ignored), tables (``results/<profile>``) and figures (``paper_figures/<profile>``). No other
module builds a path into another stage's outputs: it asks :class:`Artifacts`.

=====  ===========================================  ===================================================
stage  writes                                       read by
=====  ===========================================  ===================================================
01     corpus.jsonl, tasks.json,                    02-04 (corpus), 04-06 (task declarations),
       reference_<t>.jsonl, heldout_<t>.jsonl,       04-05 (D_r), 04 (held-out),
       evaluation/<t>.jsonl                          06 (evaluation items)
02     warmup/{pairs,ledger}.jsonl, embedder.json,   03 (embedders), 04 (warm-up pairs, charges)
       embedder_tuned/
03     clusters_{tuned,untuned}.npz                  04
04     selection/<t>/gamma<γ>/<method>/seed<s>/      05 (QA sets, ledgers), 07 via results/
05     finetune/.../model                            06
06     eval/items/<benchmark>.jsonl, eval/cache/     06 (read back)
=====  ===========================================  ===================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from equal import paths
from equal.errors import ConfigError
from equal.io import read_jsonl
from equal.task import TaskSpec, spec_from_record

CLUSTERINGS = ("tuned", "untuned")


def gamma_folder(gamma: float) -> str:
    """``0.05`` → ``"gamma5"`` (folder names of budgets)."""
    return f"gamma{gamma * 100:g}"


def method_slug(name: str) -> str:
    """A folder name for a method: ``"EQUAL w/o MAB"`` → ``"equal-w-o-mab"``."""
    keep = "".join(c.lower() if c.isalnum() else "-" for c in name.replace("ε", "epsilon"))
    return "-".join(part for part in keep.split("-") if part)


@dataclass(frozen=True)
class ClusteringArtifact:
    """One clustering of the corpus as notebook 03 saved it."""

    name: str
    labels: np.ndarray
    centers: np.ndarray
    means: np.ndarray
    w2: np.ndarray

    @property
    def k(self) -> int:
        """Number of clusters."""
        return int(self.labels.max()) + 1 if len(self.labels) else 0


@dataclass(frozen=True)
class EmbedderInfo:
    """The base and warm-up-tuned embedders of notebook 02."""

    base: str  # name of the base embedder (packaged, local folder or hub name)
    base_identity: str  # its weights' identity (for embedding caches)
    tuned: Path  # folder of the tuned model
    tuned_identity: str  # base identity + warm-up key
    summary: dict


@dataclass(frozen=True)
class SelectionArtifact:
    """A finished method run: its QA set; the ledger is read on demand (it can be long), the summary by the selection
    stage (:class:`equal.select.summary.RunSummary`)."""

    folder: Path
    pairs: list[dict]

    def ledger(self) -> list[dict]:
        """Every LLM call charged to the run."""
        return read_jsonl(self.folder / "ledger.jsonl")


class MissingArtifact(ConfigError):
    """A stage's input is missing: the message says which notebook writes it."""


@dataclass(frozen=True)
class Artifacts:
    """The files of one profile, by stage. Build with :meth:`for_profile`."""

    profile: str
    data: Path
    results: Path
    figures: Path

    @classmethod
    def for_profile(
        cls,
        profile: str,
        data_dir: str | Path | None = None,
        results_dir: str | Path | None = None,
        figures_dir: str | Path | None = None,
    ) -> Artifacts:
        """Locations of ``profile`` (each folder overridable, as in a notebook's parameters cell).

        A relative folder is relative to the repository root, not to the notebook's working directory, so a
        profile can name another profile's folder (``data_dir: data/default``) and share its caches."""
        return cls(
            profile,
            paths.data_dir(profile, paths.from_repo_root(data_dir)),
            paths.results_dir(profile, paths.from_repo_root(results_dir)),
            paths.figures_dir(profile, paths.from_repo_root(figures_dir)),
        )

    @staticmethod
    def _require(path: Path, notebook: str) -> Path:
        if not path.exists():
            raise MissingArtifact(f"{path} does not exist — run notebook {notebook} first")
        return path

    # -------------------------------------------------------------- 01 data preparation
    @property
    def corpus_file(self) -> Path:
        """The candidate pool D_c, one document per line."""
        return self.data / "corpus.jsonl"

    def reference_file(self, target: str) -> Path:
        """D_r of a target (task problems with gold solutions)."""
        return self.data / f"reference_{target}.jsonl"

    def heldout_file(self, target: str) -> Path:
        """The held-out slice of a target's task (judges selections; disjoint from D_r)."""
        return self.data / f"heldout_{target}.jsonl"

    def evaluation_file(self, task: str) -> Path:
        """A benchmark's evaluation items (kept out of the corpus and of every D_r)."""
        return self.data / "evaluation" / f"{task}.jsonl"

    @property
    def tasks_file(self) -> Path:
        """The declarations of every task data preparation read, with item counts per role."""
        return self.data / "tasks.json"

    def load_tasks(self) -> dict[str, TaskSpec]:
        """The target tasks and benchmarks as notebook 01 prepared them (name → declaration)."""
        records = json.loads(self._require(self.tasks_file, "01").read_text(encoding="utf-8"))
        return {name: spec_from_record({k: v for k, v in r.items() if k != "items"}) for name, r in records.items()}

    def load_evaluation(self, task: str) -> list[dict]:
        """A benchmark's evaluation items."""
        return read_jsonl(self._require(self.evaluation_file(task), "01"))

    def load_corpus(self) -> list[dict]:
        """D_c as records (id, source, domain, title, text, ...)."""
        return read_jsonl(self._require(self.corpus_file, "01"))

    def load_reference(self, target: str) -> list[dict]:
        """D_r of ``target``."""
        return read_jsonl(self._require(self.reference_file(target), "01"))

    def load_heldout(self, target: str) -> list[dict]:
        """The held-out slice of ``target``."""
        return read_jsonl(self._require(self.heldout_file(target), "01"))

    # -------------------------------------------------------------- 02 warm-up
    @property
    def warmup_dir(self) -> Path:
        """Warm-up extraction: pairs.jsonl, ledger.jsonl, ledger_summary.json."""
        return self.data / "warmup"

    @property
    def warmup_pairs_file(self) -> Path:
        """QA pairs extracted by the warm-up."""
        return self.warmup_dir / "pairs.jsonl"

    @property
    def warmup_ledger_file(self) -> Path:
        """Every warm-up LLM call (charged to the methods that use the warm-up)."""
        return self.warmup_dir / "ledger.jsonl"

    @property
    def tuned_embedder_dir(self) -> Path:
        """The warm-up-tuned embedder."""
        return self.data / "embedder_tuned"

    @property
    def embedder_info_file(self) -> Path:
        """Which embedders notebook 02 produced (names, identities, training summary)."""
        return self.data / "embedder.json"

    def save_embedder_info(self, base: str, base_identity: str, tuned: Path, summary: dict) -> Path:
        """Record which embedders notebook 02 produced (read by 03 and 04)."""
        from equal.io import write_json_atomic

        return write_json_atomic(self.embedder_info_file, {"base": base, "base_identity": base_identity,
                                                           "tuned": str(tuned), **summary})  # fmt: skip

    def load_warmup(self) -> tuple[list[dict], list[dict]]:
        """The warm-up's (pairs, ledger rows)."""
        return (
            read_jsonl(self._require(self.warmup_pairs_file, "02")),
            read_jsonl(self._require(self.warmup_ledger_file, "02")),
        )

    def load_embedder_info(self) -> EmbedderInfo:
        """Base and tuned embedder of notebook 02."""
        info = json.loads(self._require(self.embedder_info_file, "02").read_text(encoding="utf-8"))
        summary = {k: v for k, v in info.items() if k not in ("base", "base_identity", "tuned", "tuned_identity")}
        return EmbedderInfo(info["base"], info["base_identity"], Path(info["tuned"]), info["tuned_identity"], summary)

    # -------------------------------------------------------------- 03 clustering
    def clustering_file(self, name: str) -> Path:
        """``clusters_tuned.npz`` (warm-up-tuned embeddings) or ``clusters_untuned.npz``."""
        if name not in CLUSTERINGS:
            raise ConfigError(f"unknown clustering {name!r}; known: {CLUSTERINGS}")
        return self.data / f"clusters_{name}.npz"

    def load_clustering(self, name: str) -> ClusteringArtifact:
        """One clustering: labels, centres, means and the W2 matrix."""
        with np.load(self._require(self.clustering_file(name), "03")) as npz:
            return ClusteringArtifact(name, npz["labels"], npz["centers"], npz["means"], npz["w2"])

    # -------------------------------------------------------------- 04 selection
    @property
    def selection_root(self) -> Path:
        """Every method run of notebook 04."""
        return self.data / "selection"

    def selection_run_dir(self, method: str, target: str, gamma: float, seed: int, shared: bool = False) -> Path:
        """A method run's folder; ``shared`` runs (All) depend on neither target, γ nor seed."""
        if shared:
            return self.selection_root / "all"
        return self.selection_root / target / gamma_folder(gamma) / method_slug(method) / f"seed{seed}"

    def load_selection(self, folder: Path) -> SelectionArtifact:
        """A finished method run of notebook 04 (its folder from :meth:`selection_run_dir`)."""
        self._require(folder / "summary.json", "04")  # written last: the run is finished
        return SelectionArtifact(folder, read_jsonl(folder / "pairs.jsonl"))

    # -------------------------------------------------------------- 05 fine-tuning
    @property
    def finetune_root(self) -> Path:
        """Fine-tuned models and their training logs."""
        return self.data / "finetune"

    def finetune_run_dir(
        self,
        method: str,
        gamma: float,
        seed: int,
        target: str | None = None,
        train_seed: int | None = None,
        shared: bool = False,
        control: bool = False,
    ) -> Path:
        """One fine-tuning run: its checkpoints, ``train_info.json`` and ``model/``. A model per target (the D_r
        control too); shared selections such as All have one model for every target."""
        if control:
            return self.finetune_root / "control" / str(target)
        own_seed = "" if train_seed in (None, seed) else f"-train{train_seed}"  # a fine-tuning seed of its own
        if shared:
            return self.finetune_root / (method_slug(method) + own_seed)
        return self.finetune_root / str(target) / gamma_folder(gamma) / method_slug(method) / f"seed{seed}{own_seed}"

    # -------------------------------------------------------------- 06 evaluation
    @property
    def eval_items_dir(self) -> Path:
        """The seeded evaluation items of each benchmark (the same for every model)."""
        return self.data / "eval" / "items"

    @property
    def eval_cache_dir(self) -> Path:
        """Finished evaluations, one file per model × task."""
        return self.data / "eval" / "cache"

    # -------------------------------------------------------------- results
    def table(self, name: str) -> Path:
        """A result table's CSV path."""
        return self.results / f"{name}.csv"
