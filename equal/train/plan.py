"""Which models are fine-tuned (method × γ × selection seed), on which QA pairs, and what each set cost.

One model per (method, γ, seed) is trained on the union of that method's QA sets for every target
(in the default profile: the selections of notebook 04 against GSM8K's and MBPP's reference sets), so a
single model is evaluated on every benchmark — the paper's table 1 shape. ``All`` does not
depend on γ or seed and is trained once.

The cost of a training set is what building it cost: the distinct extraction calls of the union
of its targets' ledgers (a document chosen for both targets, or the shared warm-up, counts once),
converted to FLOPs for our extractor (2·N·tokens) and for the paper's 72B extractor.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from equal.artifacts import Artifacts
from equal.errors import ConfigError
from equal.fingerprint import fingerprint
from equal.llm.ledger import REFERENCE_PARAMS, inference_flops
from equal.progress import tqdm
from equal.select.methods import gamma_label, get_method
from equal.train.finetune import FinetuneConfig, finetune
from equal.weights import file_fingerprint

# A positive control, not a method: the reference sets D_r themselves (task problems with their gold
# solutions), trained like every set. It shows how far in-domain data moves the metrics.
REFERENCE_CONTROL = "D_r (control)"


@dataclass(frozen=True)
class TrainingRun:
    """One model to fine-tune: a method's selection at budget γ with selection seed ``seed``."""

    method: str
    gamma: float
    seed: int

    @property
    def is_control(self) -> bool:
        """Whether this is the D_r control (trained on the reference sets, not on a selection)."""
        return self.method == REFERENCE_CONTROL

    @property
    def is_shared(self) -> bool:
        """Whether the method's selection depends on neither γ nor seed (All)."""
        return not self.is_control and get_method(self.method).shared

    @property
    def label(self) -> str:
        """``"EQUAL · 5% · seed 0"`` (All: ``"All · 100%"``)."""
        if self.is_control:
            return REFERENCE_CONTROL
        if self.is_shared:
            return f"{self.method} · 100%"
        return f"{self.method} · {gamma_label(self.gamma)} · seed {self.seed}"

    def folder(self, artifacts: Artifacts) -> Path:
        """Where its checkpoints, training log and model live."""
        return artifacts.finetune_run_dir(self.method, self.gamma, self.seed, self.is_shared, self.is_control)

    def model_dir(self, artifacts: Artifacts) -> Path:
        """The fine-tuned model."""
        return artifacts.finetuned_model_dir(self.method, self.gamma, self.seed, self.is_shared, self.is_control)

    def selection_folders(self, artifacts: Artifacts, targets: list[str]) -> list[Path]:
        """The notebook-04 run folders whose QA sets make up its training set."""
        if self.is_control:
            return []
        if self.is_shared:
            return [artifacts.selection_run_dir(self.method, targets[0], self.gamma, self.seed, shared=True)]
        return [artifacts.selection_run_dir(self.method, t, self.gamma, self.seed) for t in targets]


def plan_runs(groups: list[dict], methods: list[str], gammas: list[float], seeds: list[int]) -> list[TrainingRun]:
    """Expand the profile's ``runs`` groups (``{methods: [...] | all, gammas: [...] | all, seeds: [...] | all}``)
    into distinct training runs, in method order (shared runs such as All once)."""
    runs: list[TrainingRun] = []
    for group in groups:
        group_methods = methods if group.get("methods", "all") == "all" else group["methods"]
        group_gammas = gammas if group.get("gammas", "all") == "all" else group["gammas"]
        group_seeds = seeds if group.get("seeds", "all") == "all" else group["seeds"]
        for method in group_methods:
            if method not in methods:
                raise ConfigError(f"fine-tuning run names method {method!r}, which notebook 04 did not run: {methods}")
            for gamma in group_gammas:
                if gamma not in gammas:
                    raise ConfigError(f"fine-tuning run names γ = {gamma}, which notebook 04 did not run: {gammas}")
                for seed in group_seeds:
                    if seed not in seeds:
                        raise ConfigError(f"fine-tuning run names seed {seed}, which notebook 04 did not run: {seeds}")
                    if get_method(method).shared:
                        gamma, seed = 1.0, 0
                    run = TrainingRun(method, gamma, seed)
                    if run not in runs:
                        runs.append(run)
    order = {m: i for i, m in enumerate(methods)}
    return sorted(runs, key=lambda r: (r.gamma, order[r.method], r.seed))


def training_pairs(run: TrainingRun, artifacts: Artifacts, targets: list[str]) -> list[dict]:
    """The union of the run's QA sets over targets (a pair from the same document and position once).

    For the D_r control: the reference sets of notebook 01, each problem with its gold solution.
    """
    if run.is_control:
        tasks = artifacts.load_tasks()
        return [{"question": r["question"], "answer": r["solution"], "domain": tasks[target].domain}
                for target in targets for r in artifacts.load_reference(target)]  # fmt: skip
    pairs, seen = [], set()
    for folder in run.selection_folders(artifacts, targets):
        for pair in artifacts.load_selection(folder).pairs:
            key = (pair.get("doc_id"), pair.get("pair_index"), pair["question"])
            if key not in seen:
                seen.add(key)
                pairs.append({"question": pair["question"], "answer": pair["answer"], "domain": pair.get("domain")})
    return pairs


def extraction_cost(run: TrainingRun, artifacts: Artifacts, targets: list[str]) -> dict:
    """Documents, calls, tokens and FLOPs (ours and the 72B reference) of building the run's training set."""
    rows, seen = [], set()
    for folder in run.selection_folders(artifacts, targets):
        for row in artifacts.load_selection(folder).ledger():
            stage = row["stage"].removeprefix("warmup-")
            key = (row["doc_id"], stage, row["prompt_tokens"], row["completion_tokens"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    return {
        "documents_extracted": len({r["doc_id"] for r in rows}),
        "llm_calls": len(rows),
        "tokens": tokens,
        "extractor_flops": float(
            sum(inference_flops(r["n_params"], r["prompt_tokens"] + r["completion_tokens"]) for r in rows)
        ),
        "reference_flops": inference_flops(REFERENCE_PARAMS, tokens),
    }


def model_identity(model_dir: Path) -> str:
    """A model folder's identity: the digest of its weight files."""
    model_dir = Path(model_dir)
    return file_fingerprint([*model_dir.glob("*.safetensors"), *model_dir.glob("*.bin")])


def training_fingerprint(base_identity: str, config: FinetuneConfig, pairs: list[dict]) -> str:
    """What a fine-tuned model depends on: the base model's weights, the regime and the training pairs."""
    return fingerprint(base_model=base_identity, config=config, pairs=pairs).digest


def train_runs(
    runs: list[TrainingRun],
    artifacts: Artifacts,
    targets: list[str],
    base_model_dir: Path,
    config: FinetuneConfig,
    progress: bool = True,
) -> pd.DataFrame:
    """Fine-tune every run (a finished run with the same base weights, regime and pairs is read back;
    an interrupted one resumes from its last checkpoint); one row per run."""
    rows = []
    base_identity = model_identity(base_model_dir)
    bar = tqdm(runs, desc="fine-tuning", unit="model", disable=not progress)
    for run in bar:
        bar.set_postfix_str(run.label)
        folder = run.folder(artifacts)
        pairs = training_pairs(run, artifacts, targets)
        stamp_value = training_fingerprint(base_identity, config, pairs)
        info_path, stamp = folder / "train_info.json", folder / "fingerprint.txt"
        reuse = info_path.is_file() and (folder / "model" / "config.json").is_file()
        if not (stamp.is_file() and stamp.read_text().strip() == stamp_value):
            shutil.rmtree(folder, ignore_errors=True)  # another regime or set: its checkpoints do not apply
            folder.mkdir(parents=True)
            stamp.write_text(stamp_value + "\n")
            reuse = False
        if not reuse:
            finetune(base_model_dir, pairs, folder, config, progress=progress)
        info = json.loads(info_path.read_text())
        losses = [row["loss"] for row in info["losses"]]
        rows.append(
            {
                "model": run.label,
                "method": run.method,
                "gamma": run.gamma,
                "seed": run.seed,
                "pairs": len(pairs),
                **{f"{domain}_pairs": n for domain, n in sorted(Counter(p["domain"] for p in pairs).items())},
                "steps": info["steps"],
                "tokens_seen": info["tokens_seen"],
                "train_flops": info["train_flops"],
                "first_loss": losses[0] if losses else None,
                "final_loss": sum(losses[-5:]) / len(losses[-5:]) if losses else None,
                "wall_s": info["wall_s"],
                "reused": reuse,
                "fingerprint": stamp_value,
            }
        )
    table = pd.DataFrame(rows)
    by_domain = [c for c in table.columns if c.endswith("_pairs")]  # pairs per document domain (0 where none)
    table[by_domain] = table[by_domain].fillna(0).astype(int)
    return table


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
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
