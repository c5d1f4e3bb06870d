"""Which models are fine-tuned (method × γ × selection seed), on which QA pairs, and what each set cost.

One model per (method, γ, seed) is trained on the union of that method's QA sets for every target
(math and code: the selections of notebook 04 against GSM8K's and MBPP's reference sets), so a
single model is evaluated on all four benchmarks — the paper's table 1 shape. ``All`` does not
depend on γ or seed and is trained once.

The cost of a training set is what building it cost: the distinct extraction calls of the union
of its targets' ledgers (a document chosen for both targets, or the shared warm-up, counts once),
converted to FLOPs for our extractor (2·N·tokens) and for the paper's 72B extractor.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from equal.errors import ConfigError
from equal.finetune import FinetuneConfig, finetune
from equal.io import read_jsonl
from equal.methods import METHODS, gamma_label, slug

REFERENCE_EXTRACTOR_PARAMS = 72.7e9  # Qwen2.5-72B-Instruct, the paper's extractor
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
    def kind(self) -> str:
        """The method's kind (``all``, ``bandit``, ...), or ``control`` for the D_r control."""
        return "control" if self.method == REFERENCE_CONTROL else METHODS[self.method].kind

    @property
    def label(self) -> str:
        """``"EQUAL · 5% · seed 0"`` (All: ``"All · 100%"``)."""
        if self.kind == "control":
            return REFERENCE_CONTROL
        if self.kind == "all":
            return "All · 100%"
        return f"{self.method} · {gamma_label(self.gamma)} · seed {self.seed}"

    def folder(self, root: Path) -> Path:
        """Where its model and training log live under ``root``."""
        if self.kind in ("all", "control"):
            return Path(root) / self.kind
        return Path(root) / f"gamma{self.gamma * 100:g}" / slug(self.method) / f"seed{self.seed}"

    def selection_folders(self, selection_root: Path, targets: list[str]) -> list[Path]:
        """The notebook-04 run folders whose QA sets make up its training set."""
        if self.kind == "control":
            return []
        if self.kind == "all":
            return [Path(selection_root) / "all"]
        return [
            Path(selection_root) / t / f"gamma{self.gamma * 100:g}" / slug(self.method) / f"seed{self.seed}"
            for t in targets
        ]


def plan_runs(groups: list[dict], methods: list[str], gammas: list[float], seeds: list[int]) -> list[TrainingRun]:
    """Expand the profile's ``runs`` groups (``{methods: [...] | all, gammas: [...] | all, seeds: [...] | all}``)
    into distinct training runs, in method order (All once)."""
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
                    if METHODS[method].kind == "all":
                        gamma, seed = 1.0, 0
                    run = TrainingRun(method, gamma, seed)
                    if run not in runs:
                        runs.append(run)
    order = {m: i for i, m in enumerate(methods)}
    return sorted(runs, key=lambda r: (r.gamma, order[r.method], r.seed))


def training_pairs(run: TrainingRun, selection_root: Path, targets: list[str]) -> list[dict]:
    """The union of the run's QA sets over targets (a pair from the same document and position once).

    For the D_r control: the reference sets next to the selection folder (``reference_<target>.jsonl``),
    each problem with its gold solution.
    """
    if run.kind == "control":
        pairs = []
        for target in targets:
            path = Path(selection_root).parent / f"reference_{target}.jsonl"
            if not path.is_file():
                raise ConfigError(f"{path}: no reference set for target {target!r} — run notebook 01 first")
            pairs += [{"question": r["question"], "answer": r["solution"], "domain": target} for r in read_jsonl(path)]
        return pairs
    pairs, seen = [], set()
    for folder in run.selection_folders(selection_root, targets):
        path = folder / "pairs.jsonl"
        if not path.is_file():
            raise ConfigError(f"{path}: no QA set for {run.label} — run notebook 04 first")
        for pair in read_jsonl(path):
            key = (pair.get("doc_id"), pair.get("pair_index"), pair["question"])
            if key not in seen:
                seen.add(key)
                pairs.append({"question": pair["question"], "answer": pair["answer"], "domain": pair.get("domain")})
    return pairs


def extraction_cost(run: TrainingRun, selection_root: Path, targets: list[str]) -> dict:
    """Documents, calls, tokens and FLOPs (ours and the 72B reference) of building the run's training set."""
    rows, seen = [], set()
    for folder in run.selection_folders(selection_root, targets):
        for row in read_jsonl(folder / "ledger.jsonl"):
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
        "extractor_flops": float(sum(2 * r["n_params"] * (r["prompt_tokens"] + r["completion_tokens"]) for r in rows)),
        "reference_flops": 2 * REFERENCE_EXTRACTOR_PARAMS * tokens,
    }


def _fingerprint(base_model_id: str, config: FinetuneConfig, pairs: list[dict]) -> str:
    payload = json.dumps([base_model_id, asdict(config), pairs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def train_runs(
    runs: list[TrainingRun],
    selection_root: Path,
    targets: list[str],
    base_model_dir: Path,
    base_model_id: str,
    out_root: Path,
    config: FinetuneConfig,
    progress: bool = True,
) -> pd.DataFrame:
    """Fine-tune every run (a finished run with the same base model, regime and pairs is read back;
    an interrupted one resumes from its last checkpoint); one row per run."""
    rows = []
    bar = tqdm(runs, desc="fine-tuning", unit="model", disable=not progress)
    for run in bar:
        bar.set_postfix_str(run.label)
        folder = run.folder(out_root)
        pairs = training_pairs(run, selection_root, targets)
        fingerprint = _fingerprint(base_model_id, config, pairs)
        info_path, stamp = folder / "train_info.json", folder / "fingerprint.txt"
        reuse = info_path.is_file() and (folder / "model" / "config.json").is_file()
        if not (stamp.is_file() and stamp.read_text().strip() == fingerprint):
            shutil.rmtree(folder, ignore_errors=True)  # another regime or set: its checkpoints do not apply
            folder.mkdir(parents=True)
            stamp.write_text(fingerprint + "\n")
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
                "math_pairs": sum(p["domain"] == "math" for p in pairs),
                "code_pairs": sum(p["domain"] == "code" for p in pairs),
                "steps": info["steps"],
                "tokens_seen": info["tokens_seen"],
                "train_flops": info["train_flops"],
                "first_loss": losses[0] if losses else None,
                "final_loss": sum(losses[-5:]) / len(losses[-5:]) if losses else None,
                "wall_s": info["wall_s"],
                "reused": reuse,
                "fingerprint": fingerprint,
            }
        )
    return pd.DataFrame(rows)


def loss_curves(runs: list[TrainingRun], out_root: Path) -> pd.DataFrame:
    """Training loss per step of every run (for the loss-curve figure)."""
    frames = []
    for run in runs:
        info = json.loads((run.folder(out_root) / "train_info.json").read_text())
        frame = pd.DataFrame(info["losses"])
        frame.insert(0, "model", run.label)
        frame.insert(1, "method", run.method)
        frame.insert(2, "gamma", run.gamma)
        frame.insert(3, "seed", run.seed)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
