"""EQUAL's warm-up: align the embedder so a document lies close to the QA pairs extracted from it.

A seeded fraction of documents is extracted (charged to EQUAL's cost); each (document, QA pair)
is a positive pair; hard negatives are other documents' QA pairs mined with
``sentence_transformers.util.mine_hard_negatives``; the embedder is fine-tuned with InfoNCE
(``MultipleNegativesRankingLoss``, scale = 1/τ). Retrieval of each held-out QA pair's own document
is measured before and after, so the gain is a number, not a belief.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Bump when the training procedure changes, so cached tuned models are retrained.
TRAINING_VERSION = 2
#: A held-out question whose word types are less than this share present in its document paraphrases it: its
#: retrieval cannot lean on copied words (small extractors copy, which saturates plain recall@1).
PARAPHRASE_OVERLAP = 0.5
_WORD = re.compile(r"[a-z0-9]{3,}")


@dataclass(frozen=True)
class WarmupConfig:
    """Warm-up parameters (the paper's values in comments)."""

    fraction: float = 0.05  # share of documents extracted for the warm-up (paper: 5 %)
    holdout_fraction: float = 0.2  # warm-up documents kept out of training, for the retrieval check
    range_min: int = 2  # hard negatives are mined from ranks [range_min, range_max] (paper: 2–200)
    range_max: int = 50
    num_negatives: int = 3  # negatives per positive (paper: 15, groups of 1 positive + 7 negatives)
    temperature: float = 0.05  # τ of InfoNCE (paper: 0.02)
    learning_rate: float = 2e-5  # (paper: 1e-5)
    epochs: int = 2  # (paper: 2)
    batch_size: int = 16
    seed: int = 0


def qa_text(pair: dict) -> str:
    """How a QA pair is embedded."""
    return f"Question: {pair['question']}\nAnswer: {pair['answer']}"


def lexical_overlap(text: str, document: str) -> float:
    """Share of ``text``'s word types (lower-case, 3+ characters) that occur in ``document`` (1.0 for no words)."""
    words = set(_WORD.findall(text.lower()))
    return len(words & set(_WORD.findall(document.lower()))) / len(words) if words else 1.0


def sample_documents(docs: list[dict], fraction: float, seed: int) -> list[dict]:
    """A seeded sample of ``fraction`` of the documents (at least one)."""
    k = max(1, round(len(docs) * fraction))
    return random.Random(f"warmup-{seed}").sample(docs, k)


def split_documents(doc_ids: list[str], holdout_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Training and held-out document ids (split by document, so no QA leaks across)."""
    ids = sorted(doc_ids)
    random.Random(f"holdout-{seed}").shuffle(ids)
    n_holdout = max(1, round(len(ids) * holdout_fraction)) if len(ids) > 1 else 0
    return set(ids[n_holdout:]), set(ids[:n_holdout])


def retrieval_metrics(
    doc_vectors: np.ndarray, doc_ids: list[str], qa_vectors: np.ndarray, qa_doc_ids: list[str], ks=(1, 5, 10)
) -> dict[str, float]:
    """Document retrieval from QA pairs: recall@k, MRR, mean own-document cosine and margin."""
    scores = qa_vectors @ doc_vectors.T
    index = {doc_id: i for i, doc_id in enumerate(doc_ids)}
    own = np.array([index[d] for d in qa_doc_ids])
    rows = np.arange(len(own))
    own_scores = scores[rows, own]
    ranks = 1 + (scores > own_scores[:, None]).sum(axis=1)
    metrics = {f"recall@{k}": float((ranks <= k).mean()) for k in ks}
    metrics["mrr"] = float((1.0 / ranks).mean())
    # Continuous alignment, informative even when ranks saturate: the cosine of a pair to its own
    # document, and its margin over the most similar other document.
    others = scores.copy()
    others[rows, own] = -np.inf
    metrics["own_cosine"] = float(own_scores.mean())
    metrics["margin"] = float((own_scores - others.max(axis=1)).mean())
    return metrics


def finetune_embedder(model, anchors: list[str], positives: list[str], config: WarmupConfig, out_dir: Path,
                      progress: bool = True):  # fmt: skip
    """Fine-tune ``model`` in place on (document, QA) pairs with mined hard negatives, on the model's device; save
    to ``out_dir``. Without ``progress``, neither a bar nor the trainer's log lines."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from sentence_transformers.util import mine_hard_negatives
    from transformers import set_seed

    set_seed(config.seed)  # negative sampling and training draw from Python, NumPy and torch RNGs
    pairs = Dataset.from_dict({"anchor": anchors, "positive": positives})
    if config.num_negatives > 0 and len(set(positives)) > config.range_min + config.num_negatives:
        pairs = mine_hard_negatives(
            pairs,
            model,
            range_min=config.range_min,
            range_max=config.range_max,
            num_negatives=config.num_negatives,
            sampling_strategy="random",
            output_format="n-tuple",
            batch_size=64,
            verbose=False,
        )
    loss = MultipleNegativesRankingLoss(model, scale=1.0 / config.temperature)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir / "trainer"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_ratio=0.1,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="no",
        logging_steps=10,
        report_to=[],
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        use_cpu=str(model.device) == "cpu",
        disable_tqdm=not progress,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs, loss=loss)
    if not progress:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # it prints every log line when the bar is off
    trainer.train()
    model.save_pretrained(str(out_dir))
    return model, len(pairs), list(pairs.column_names)


def warmup_training_pairs(results, docs: list[dict]) -> list[dict]:
    """One record per extracted pair: document id, domain, document text, the QA text and the question."""
    by_id = {d["id"]: d for d in docs}
    return [
        {
            "doc_id": r.doc_id,
            "domain": by_id[r.doc_id]["domain"],
            "document": by_id[r.doc_id]["text"],
            "qa": qa_text(p),
            "question": p["question"],
        }
        for r in results
        for p in r.pairs
    ]


def run_warmup(
    model,
    identity: str,
    warm_docs: list[dict],
    pairs: list[dict],
    config: WarmupConfig,
    out_dir: Path,
    progress: bool = True,
    candidate_docs: list[dict] | None = None,
) -> tuple[object, pd.DataFrame, dict]:
    """Measure retrieval, fine-tune (or reuse an identical earlier fine-tuning), measure again.

    Each held-out pair searches ``candidate_docs`` (default: the warm-up documents; the notebook
    uses the whole pool). Returns the tuned model, a table of retrieval metrics before/after,
    and a summary. The tuned model is saved in ``out_dir``; a ``key.json`` beside it says which
    base model, pairs and parameters produced it, so a re-run with the same inputs loads it.
    """
    import json

    from sentence_transformers import SentenceTransformer

    from equal.embed.embedding import embed_texts
    from equal.fingerprint import fingerprint, reuse_or_reset
    from equal.io import write_json_atomic

    train_ids, holdout_ids = split_documents(sorted({p["doc_id"] for p in pairs}), config.holdout_fraction, config.seed)
    train = [p for p in pairs if p["doc_id"] in train_ids]
    held = [p for p in pairs if p["doc_id"] in holdout_ids]
    candidates = candidate_docs if candidate_docs is not None else warm_docs  # the documents searched
    doc_ids = [d["id"] for d in candidates]
    doc_texts = [d["text"] for d in candidates]

    # the held-out pairs whose questions paraphrase their document rather than copy it
    paraphrased = [p for p in held if lexical_overlap(p.get("question", p["qa"]), p["document"]) < PARAPHRASE_OVERLAP]
    subsets = {"all held-out pairs": held, f"paraphrased (word overlap < {PARAPHRASE_OVERLAP:g})": paraphrased}

    def evaluate(m, ident: str) -> dict[str, dict]:
        docs_v = embed_texts(m, doc_texts, ident, progress=progress)
        out = {}
        for name, subset in subsets.items():
            if subset:
                qa_v = embed_texts(m, [p["qa"] for p in subset], ident, progress=progress)
                out[name] = {"held_out_pairs": len(subset),
                             **retrieval_metrics(docs_v, doc_ids, qa_v, [p["doc_id"] for p in subset])}  # fmt: skip
        return out

    before = evaluate(model, identity)
    # the tuned model depends on the base weights, the training pairs and the parameters: nothing else
    stamp = fingerprint(version=TRAINING_VERSION, base=identity, train=train, config=config)
    key, key_file = stamp.digest[:16], out_dir / "key.json"  # key.json: written last, with the training's rows
    if reuse_or_reset(out_dir, stamp, key_file.name, "warm-up embedder", log=print if progress else None):
        tuned = SentenceTransformer(str(out_dir), device=str(model.device))
        trained_rows, columns, reused = json.loads(key_file.read_text())["rows"], None, True
    else:
        tuned, trained_rows, columns = finetune_embedder(
            model, [p["document"] for p in train], [p["qa"] for p in train], config, out_dir, progress
        )
        write_json_atomic(key_file, {"key": key, "rows": trained_rows, "base": identity})
        reused = False
    tuned_identity = f"{identity}+warmup@{key}"
    after = evaluate(tuned, tuned_identity)
    table = pd.DataFrame([{"model": model_name, "pairs": subset, **metrics}
                          for model_name, result in (("base", before), ("warm-up tuned", after))
                          for subset, metrics in result.items()])  # fmt: skip
    table.insert(3, "candidate_documents", len(candidates))
    summary = {
        "train_pairs": len(train),
        "held_out_pairs": len(held),
        "train_documents": len(train_ids),
        "held_out_documents": len(holdout_ids),
        "training_rows": trained_rows,
        "columns": columns,
        "reused_tuned_model": reused,
        "tuned_identity": tuned_identity,
    }
    return tuned, table, summary
