"""Which models are fine-tuned (method × target × γ × selection seed), on which QA pairs, and what each set cost.

As in the paper, one model per target: the math model trains on the set a method selected against GSM8K's
reference set and is evaluated on the math benchmarks, the code model likewise. ``All`` depends on neither
target, γ nor seed: one model on every pair it extracted, evaluated on every benchmark. The D_r control trains
one model per target on that target's reference set.

Every model trains on every pair of its set for the same number of epochs; its fine-tuning seed follows its
selection seed (``train_seed``, a separate value only in the variance pilot), so seed replicates differ in both.

The cost of a training set is what building it cost: the distinct extraction calls of its ledger, converted to
FLOPs for our extractor (2·N·tokens) and for the paper's 72B extractor. :func:`method_costs` adds a method's
targets up (a document chosen for both, or the shared warm-up, counts once).
"""

from __future__ import annotations

import dataclasses
import gc
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from equal.artifacts import Artifacts
from equal.errors import ConfigError
from equal.fingerprint import Fingerprint, fingerprint, records_digest, reuse_or_reset
from equal.llm.ledger import call_flops, reads_document
from equal.progress import tqdm
from equal.select.methods import gamma_label, get_method
from equal.train.finetune import FinetuneConfig
from equal.train.launch import train
from equal.weights import model_identity

# A positive control, not a method: the reference sets D_r themselves (task problems with their gold
# solutions), trained like every set. It shows how far in-domain data moves the metrics.
REFERENCE_CONTROL = "D_r (control)"


@dataclass(frozen=True)
class TrainingRun:
    """One model to fine-tune: a method's selection for ``target`` at budget γ with selection seed ``seed``
    (``target`` None: a shared selection such as All); ``train_seed`` None means the selection seed."""

    method: str
    gamma: float
    seed: int
    target: str | None = None
    train_seed: int | None = None

    @property
    def is_control(self) -> bool:
        """Whether this is the D_r control (trained on a reference set, not on a selection)."""
        return self.method == REFERENCE_CONTROL

    @property
    def is_shared(self) -> bool:
        """Whether the method's selection depends on neither target, γ nor seed (All)."""
        return not self.is_control and get_method(self.method).shared

    @property
    def fine_tuning_seed(self) -> int:
        """The offset added to the regime's seed: the train seed, else the selection seed."""
        return self.seed if self.train_seed is None else self.train_seed

    @property
    def label(self) -> str:
        """``"EQUAL · gsm8k · 5% · seed 0"`` (All: ``"All · 100%"``; the control: ``"D_r (control) · gsm8k"``)."""
        if self.is_control:
            return f"{REFERENCE_CONTROL} · {self.target}"
        own_seed = "" if self.train_seed in (None, self.seed) else f" · train seed {self.train_seed}"
        if self.is_shared:
            return f"{self.method} · 100%{own_seed}"
        return f"{self.method} · {self.target} · {gamma_label(self.gamma)} · seed {self.seed}{own_seed}"

    def folder(self, artifacts: Artifacts) -> Path:
        """Where its checkpoints, training log and model live."""
        return artifacts.finetune_run_dir(self.method, self.gamma, self.seed, self.target, self.train_seed,
                                          self.is_shared, self.is_control)  # fmt: skip

    def model_dir(self, artifacts: Artifacts) -> Path:
        """The fine-tuned model."""
        return self.folder(artifacts) / "model"

    def selection_folder(self, artifacts: Artifacts) -> Path | None:
        """The notebook-04 run folder whose QA set is its training set (None for the D_r control)."""
        if self.is_control:
            return None
        return artifacts.selection_run_dir(self.method, str(self.target), self.gamma, self.seed, shared=self.is_shared)


def plan_runs(groups: list[dict], methods: list[str], gammas: list[float], seeds: list[int],
              targets: list[str]) -> list[TrainingRun]:  # fmt: skip
    """Expand the profile's ``runs`` groups (``{methods: [...] | all, gammas: [...] | all, seeds: [...] | all,
    targets: [...] | all, train_seeds: [...]}``) into distinct training runs, one per target (shared runs such as
    All once), in target, γ, method and seed order. ``train_seeds`` (the variance pilot) crosses every selection
    seed with these fine-tuning seeds (a shared selection's one selection too: All's fine-tuning spread)."""
    runs: list[TrainingRun] = []

    def chosen(group: dict, key: str, known: list) -> list:
        values = known if group.get(key, "all") == "all" else group[key]
        for value in values:
            if value not in known:
                what = {"methods": "method", "gammas": "γ =", "seeds": "seed", "targets": "target"}[key]
                raise ConfigError(f"fine-tuning run names {what} {value!r}, which notebook 04 did not run: {known}")
        return values

    for group in groups:
        for method in chosen(group, "methods", methods):
            if get_method(method).shared:  # one selection; its fine-tuning seeds, if the group names any
                # train seed 0 is the selection seed's own run: the same model as a group without train_seeds
                train_seeds = [None if t in (None, 0) else t for t in group.get("train_seeds") or [None]]
                runs += [TrainingRun(method, 1.0, 0, None, train_seed) for train_seed in train_seeds]
                continue
            for target in chosen(group, "targets", targets):
                for gamma in chosen(group, "gammas", gammas):
                    for seed in chosen(group, "seeds", seeds):
                        for train_seed in group.get("train_seeds") or [None]:
                            runs.append(TrainingRun(method, gamma, seed, target, train_seed))
    order = {m: i for i, m in enumerate(methods)}
    target_order = {t: i for i, t in enumerate(targets)}
    distinct = list(dict.fromkeys(runs))
    return sorted(distinct, key=lambda r: (r.target is not None, target_order.get(r.target, -1), r.gamma,
                                           order[r.method], r.seed, r.fine_tuning_seed))  # fmt: skip


def control_runs(targets: list[str]) -> list[TrainingRun]:
    """The D_r control: one model per target on its reference set."""
    return [TrainingRun(REFERENCE_CONTROL, 0.0, 0, target) for target in targets]


def training_pairs(run: TrainingRun, artifacts: Artifacts) -> list[dict]:
    """The run's QA set; for the D_r control, its target's reference set (each problem with its gold solution)."""
    if run.is_control:
        spec = artifacts.load_tasks()[str(run.target)]
        return [{"question": r["question"], "answer": r["solution"], "domain": spec.domain}
                for r in artifacts.load_reference(str(run.target))]  # fmt: skip
    pairs = artifacts.load_selection(run.selection_folder(artifacts)).pairs
    return [{"question": p["question"], "answer": p["answer"], "domain": p.get("domain")} for p in pairs]


def ledger_cost(folders: list[Path], artifacts: Artifacts) -> dict:
    """Documents, LLM calls, tokens and FLOPs (ours, and at the paper's model sizes) of the distinct records in the
    ledgers of these selection folders (a call in several of them, such as the shared warm-up, counts once).
    FLOPs include a method's scoring compute with the base model; calls and tokens are the LLM's, and documents
    those its extraction calls read (Rewriting reads none; LLM-scoring's ratings read no new one).

    Records are told apart by document, stage and tokens. Within one ledger every record counts (two pairs of one
    document can cost the same tokens to score); across ledgers a record counts as often as the ledger that holds
    it most often, so a call shared by several folders is paid once."""
    rows: list[dict] = []
    counts: dict[tuple, int] = {}
    for folder in folders:
        here: dict[tuple, int] = {}
        for row in artifacts.load_selection(folder).ledger():
            key = (row["doc_id"], row["stage"].removeprefix("warmup-"), row["prompt_tokens"], row["completion_tokens"])
            here[key] = here.get(key, 0) + 1
            if here[key] > counts.get(key, 0):
                counts[key] = here[key]
                rows.append(row)
    llm_rows = [r for r in rows if r.get("reference", "extractor") == "extractor"]  # not the base model's scoring
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in llm_rows)
    flops = [call_flops(r) for r in rows]
    return {
        "documents_extracted": len({r["doc_id"] for r in rows if reads_document(r)}),
        "llm_calls": len(llm_rows),
        "tokens": tokens,
        "extractor_flops": float(sum(model for model, _ in flops)),
        "reference_flops": float(sum(reference for _, reference in flops)),
    }


def extraction_cost(run: TrainingRun, artifacts: Artifacts) -> dict:
    """What building the run's training set cost (nothing for the D_r control)."""
    folder = run.selection_folder(artifacts)
    return ledger_cost([folder] if folder else [], artifacts)


def method_costs(runs: list[TrainingRun], artifacts: Artifacts, trained: pd.DataFrame) -> pd.DataFrame:
    """One row per method × γ × selection seed: the extraction cost of all its targets' sets together (distinct
    calls) and the training FLOPs of all its models (``trained``: notebook 05's table, ``model`` and
    ``train_flops``), so that a method with one model per target is charged for every target, as All is."""
    flops = dict(zip(trained["model"], trained["train_flops"], strict=True))
    groups: dict[tuple, list[TrainingRun]] = {}
    for run in runs:
        if not run.is_control and run.train_seed in (None, run.seed):
            groups.setdefault((run.method, run.gamma, run.seed), []).append(run)
    rows = []
    for (method, gamma, seed), members in groups.items():
        cost = ledger_cost([r.selection_folder(artifacts) for r in members], artifacts)
        rows.append({"method": method, "gamma": gamma, "seed": seed, "models": len(members), **cost,
                     "train_flops": float(sum(flops[r.label] for r in members))})  # fmt: skip
    return pd.DataFrame(rows)


def training_fingerprint(base_identity: str, config: FinetuneConfig, pairs: list[dict]) -> Fingerprint:
    """What a fine-tuned model depends on: the base model's weights, the regime and the training pairs."""
    return fingerprint(base_model=base_identity, config=config, pairs=records_digest(pairs))


def train_runs(
    runs: list[TrainingRun],
    artifacts: Artifacts,
    base_model_dir: Path,
    config: FinetuneConfig,
    progress: bool = True,
    isolate: bool = True,
) -> pd.DataFrame:
    """Fine-tune every run (a finished run with the same base weights, regime and pairs is read back;
    an interrupted one resumes from its last checkpoint); one row per run. Each run trains with the regime's
    seed plus its :attr:`TrainingRun.fine_tuning_seed`.

    ``isolate`` trains each model in a fresh process: in one long-lived kernel every model trained slower than
    the one before (the default run's 14-step models went from 4.0 to 10.2 ms per token over 14 models, and
    still from 5.3 to 7.5 ms with the trainer's reference cycles collected after each), which a new process
    per model cannot inherit. Weights, losses and fingerprints are the same either way."""
    rows = []
    base_identity = model_identity(base_model_dir)
    bar = tqdm(runs, desc="fine-tuning", unit="model", disable=not progress)
    for run in bar:
        bar.set_postfix_str(run.label)
        folder = run.folder(artifacts)
        pairs = training_pairs(run, artifacts)
        run_config = dataclasses.replace(config, seed=config.seed + run.fine_tuning_seed)
        info_path = folder / "train_info.json"  # written last by finetune: the run is done
        # another regime or set: the folder (and its checkpoints) is cleared; an interrupted run resumes
        stamp = training_fingerprint(base_identity, run_config, pairs)
        reuse = reuse_or_reset(folder, stamp, info_path.name, run.label, log=print if progress else None)
        if not reuse:
            if isolate:
                _finetune_in_own_process(base_model_dir, pairs, folder, run_config, progress)
            else:
                train(base_model_dir, pairs, folder, run_config, progress=progress)
                gc.collect()  # the trainer and model sit in reference cycles: free them before the next model
        info = json.loads(info_path.read_text())
        losses = [row["loss"] for row in info["losses"]]
        rows.append(
            {
                "model": run.label,
                "method": run.method,
                "target": run.target,
                "gamma": run.gamma,
                "seed": run.seed,
                "train_seed": run.fine_tuning_seed,
                "pairs": len(pairs),
                # how long the set's answers are: terse answers teach a model to stop short of a worked solution
                "answer_chars_median": float(np.median([len(p["answer"]) for p in pairs])) if pairs else None,
                **{f"{domain}_pairs": n for domain, n in sorted(Counter(p["domain"] for p in pairs).items())},
                # what the refiner made of them (problem / code / concept; unrefined pairs have no kind)
                **{
                    f"kind_{kind}_pairs": n
                    for kind, n in sorted(Counter(p["kind"] for p in pairs if p.get("kind")).items())
                },
                "steps": info["steps"],
                "tokens_seen": info["tokens_seen"],
                "train_flops": info["train_flops"],
                "first_loss": losses[0] if losses else None,
                "final_loss": sum(losses[-5:]) / len(losses[-5:]) if losses else None,
                "wall_s": info["wall_s"],
                "reused": reuse,
                "fingerprint": stamp.digest,
            }
        )
    table = pd.DataFrame(rows)
    by_domain = [c for c in table.columns if c.endswith("_pairs")]  # pairs per domain and kind (0 where none)
    table[by_domain] = table[by_domain].fillna(0).astype(int)
    return table


def _finetune_in_own_process(base_model_dir: Path, pairs: list[dict], folder: Path, config: FinetuneConfig,
                             progress: bool) -> None:  # fmt: skip
    """:func:`finetune` in a process of its own (:func:`_training_context`); an error there is raised here, and an
    interrupt here stops it (its checkpoints stay, so the run resumes)."""
    with _training_context().Pool(1) as pool:  # leaving the block terminates the worker
        pool.apply(train, (base_model_dir, pairs, folder, config), {"progress": progress})


#: Imported once by the fork server (about 5 s on 2 cores), not again by every model's process
TRAINING_IMPORTS = ["torch", "transformers", "transformers.trainer", "datasets", "peft", "equal.train.launch",
                    "equal.train.finetune"]  # fmt: skip


def _training_context():
    """Where each model trains: a process forked from a server that has imported the training libraries once but
    never trained (a fresh process per model, without paying the imports per model); spawn where there is no fork
    server (Windows)."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(TRAINING_IMPORTS)  # read when the server starts: once per process
    return context


def loss_curves(runs: list[TrainingRun], artifacts: Artifacts) -> pd.DataFrame:
    """Training loss per step of every run (for the loss-curve figure)."""
    frames = []
    for run in runs:
        info = json.loads((run.folder(artifacts) / "train_info.json").read_text())
        frame = pd.DataFrame(info["losses"])
        frame.insert(0, "model", run.label)
        frame.insert(1, "method", run.method)
        frame.insert(2, "gamma", run.gamma)
        frame.insert(3, "seed", run.seed)
        frame.insert(4, "target", run.target)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
