"""Perplexity of texts under a causal LM — the per-sample score of the Perplexity-MAB baseline.

A text's score is its mean per-token negative log-likelihood (nats) under the base model that is
later fine-tuned (SmolLM2-135M-Instruct by default), computed with transformers in batches and
cached per (model, text) in a JSON file, so re-runs and other methods reuse every score.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from equal.fingerprint import files_digest
from equal.io import write_json_atomic
from equal.paths import cache_dir
from equal.progress import tqdm
from equal.weights import causal_lm_dir


class PerplexityScorer:
    """Mean token NLL of texts under one causal LM, cached on disk."""

    def __init__(self, model: str, batch_size: int = 16, max_tokens: int = 256, cache: Path | None = None) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        folder = causal_lm_dir(model)
        weights = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
        self.identity = f"{model}@{files_digest(weights)}" if weights else model
        key = hashlib.sha256(f"{self.identity}/{max_tokens}".encode()).hexdigest()[:16]
        self.cache_path = (cache or cache_dir() / "perplexity") / f"{key}.json"
        self._scores: dict[str, float] = (
            json.loads(self.cache_path.read_text(encoding="utf-8")) if self.cache_path.is_file() else {}
        )
        self._folder = folder
        self.save_every = 256  # scores cost forward passes: save more often than embeddings
        self._unsaved = 0
        self._model = None
        self._tokenizer = None

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self._folder)
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._tokenizer.padding_side = "right"
        self._model = AutoModelForCausalLM.from_pretrained(self._folder, dtype=torch.float32).eval()

    def _score_batch(self, texts: list[str]) -> list[float]:
        import torch

        enc = self._tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=self.max_tokens)
        with torch.inference_mode():
            logits = self._model(**enc).logits[:, :-1].float()
        targets = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        per_text = (nll * mask).sum(1) / mask.sum(1).clamp(min=1)
        return per_text.tolist()

    def known(self, text: str) -> bool:
        """Whether ``text``'s score is in the cache (computed by an earlier run)."""
        return self._key(text) in self._scores

    @property
    def n_params(self) -> int:
        """Parameters of the scoring model (loads it)."""
        if self._model is None:
            self._load()
        return int(self._model.num_parameters())

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens each text is scored on (truncated at ``max_tokens``): what a score costs."""
        if not texts:
            return []
        if self._tokenizer is None:
            self._load()
        return [min(len(ids), self.max_tokens) for ids in self._tokenizer(texts)["input_ids"]]

    def charge(self, ledger, method: str, pairs: list[dict], texts: list[str]) -> None:
        """Charge the scoring of ``texts`` (one per pair of ``pairs``) to ``ledger``: a forward pass of the base
        model over each text, priced at the paper's base model (``reference="base"``)."""
        from equal.llm.ledger import CallRecord

        counts = self.token_counts(texts)
        for pair, text, tokens in zip(pairs, texts, counts, strict=True):
            ledger.add(CallRecord(method, str(pair.get("doc_id", "")), "score-perplexity", "transformers",
                                  self.identity, self.n_params, tokens, 0, 0.0, self.known(text), "ok",
                                  flops_factor=1.0, reference="base"))  # fmt: skip

    def score(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Mean per-token NLL (nats) of each text; lower = more predictable to the model."""
        missing = sorted({t for t in texts if self._key(t) not in self._scores}, key=len)  # similar lengths batch well
        if missing:
            if self._model is None:
                self._load()
            for start in tqdm(range(0, len(missing), self.batch_size), desc="perplexity", disable=not progress):
                batch = missing[start : start + self.batch_size]
                for text, value in zip(batch, self._score_batch(batch), strict=True):
                    self._scores[self._key(text)] = round(float(value), 6)
            self._unsaved += len(missing)
            if self._unsaved >= self.save_every:  # not at every pull: the whole file is rewritten
                self.save()
        return np.array([self._scores[self._key(t)] for t in texts], dtype=np.float64)

    def save(self) -> None:
        """Write the scores computed since the last save (atomically)."""
        if self._unsaved:
            write_json_atomic(self.cache_path, self._scores)
            self._unsaved = 0
