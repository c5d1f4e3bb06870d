"""Gradient influence, LESS-style (Xia et al. 2024), at small scale: the score of the Influence baselines.

A pair's influence on the target is the cosine between its training gradient and the target's (D_r's), both taken
on LoRA adapters of the base model — the model that is later fine-tuned — and randomly projected to ``dim``
dimensions:

1. **Warm-up**, as LESS does on a random 5 % of the pool: LoRA adapters (peft) are trained briefly (transformers'
   Trainer) on the pairs of EQUAL's warm-up — the random 5 % of documents extracted before any selection — so
   that both LoRA factors carry gradient (a fresh adapter's B is zero).
2. **Gradient features**: for each text, the gradient of the loss on the answer tokens with respect to every LoRA
   parameter, projected by a seeded Rademacher matrix (±1/√dim, generated in chunks, never stored whole) and
   normalised. LESS preconditions training gradients with Adam's state; here every gradient is a plain (SGD)
   gradient, which LESS uses for its targets — a simplification stated in docs/deviations.md.
3. **Score**: the mean cosine of a candidate's feature with the features of the D_r items.

Features are cached on disk per (model, adapters, text), like perplexity scores, so Influence and Influence-MAB
share them and re-runs compute nothing. Each gradient costs a forward and a backward pass of the base model
(charged as 3 × 2·N·tokens, priced at the paper's base model).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from equal.chat_format import IGNORE_INDEX, PadCollator, chat_example
from equal.fingerprint import files_digest, fingerprint
from equal.io import write_json_atomic
from equal.paths import cache_dir
from equal.progress import tqdm
from equal.weights import causal_lm_dir

GRADIENT_FLOPS_FACTOR = 3.0  # a forward and a backward pass


@dataclass(frozen=True)
class InfluenceConfig:
    """LESS at small scale (LESS's own values in comments)."""

    lora_r: int = 8  # (LESS: 128)
    lora_modules: tuple[str, ...] = ("q_proj", "v_proj")  # (LESS: q, k, v, o)
    dim: int = 512  # random projection (LESS: 8192)
    max_tokens: int = 256
    warmup_epochs: int = 2  # (LESS: 4)
    learning_rate: float = 1e-4  # (LESS: 2e-5 on 7B models)
    batch_size: int = 8
    seed: int = 0


class GradientScorer:
    """Projected LoRA-gradient features of QA pairs under one base model, after a LoRA warm-up; cached on disk."""

    def __init__(self, model: str, config: InfluenceConfig | None = None, cache: Path | None = None) -> None:
        self.model_name = model
        self.config = config or InfluenceConfig()
        self._folder = causal_lm_dir(model)
        weights = sorted(self._folder.glob("*.safetensors")) if self._folder.is_dir() else []
        self.base_identity = f"{model}@{files_digest(weights)}" if weights else model
        self._cache_root = cache or cache_dir() / "influence"
        self._model = None
        self._tokenizer = None
        self.identity = ""  # set by prepare: the base model, the warm-up pairs and the configuration
        self._warmup: list[dict] = []
        self._features: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ model
    def _load(self):
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(self.config.seed)
        self._tokenizer = AutoTokenizer.from_pretrained(self._folder)
        base = AutoModelForCausalLM.from_pretrained(self._folder, dtype=torch.float32)
        lora = LoraConfig(r=self.config.lora_r, lora_alpha=2 * self.config.lora_r, lora_dropout=0.0,
                          target_modules=list(self.config.lora_modules), task_type="CAUSAL_LM")  # fmt: skip
        self._model = get_peft_model(base, lora)

    def _example(self, pair: dict) -> dict:
        return chat_example(self._tokenizer, pair["question"], pair["answer"], self.config.max_tokens)

    def prepare(self, warmup_pairs: list[dict]) -> None:
        """Fix the warm-up pairs: the scorer's identity (base model, pairs, configuration) is known from here on;
        the adapters are trained (or read back) only when a feature is first needed."""
        self._warmup = [{"question": p["question"], "answer": p["answer"], "doc_id": p.get("doc_id", "")}
                        for p in warmup_pairs]  # fmt: skip
        key = fingerprint(base=self.base_identity, config=asdict(self.config),
                          pairs=[(p["question"], p["answer"]) for p in self._warmup]).digest[:16]  # fmt: skip
        self.identity = f"{self.base_identity}+lora@{key}"
        self._adapters = self._cache_root / "adapters" / f"{key}.pt"
        digest = hashlib.sha256(self.identity.encode()).hexdigest()[:16]
        self._features_path = self._cache_root / f"features-{digest}-{self.config.dim}.json"
        self._features = json.loads(self._features_path.read_text()) if self._features_path.is_file() else {}

    @property
    def warmup_pairs(self) -> list[dict]:
        """The pairs the adapters are warmed up on (their training is charged by the methods)."""
        return list(self._warmup)

    def _ensure_model(self) -> None:
        """Load the base model with LoRA adapters: trained on the warm-up pairs, or read back when identical."""
        import torch
        from datasets import Dataset
        from peft import set_peft_model_state_dict
        from transformers import Trainer, TrainingArguments

        if self._model is not None:
            return
        if not self.identity:
            raise RuntimeError("GradientScorer.prepare must name the warm-up pairs before features are computed")
        self._load()
        if self._adapters.is_file():
            set_peft_model_state_dict(self._model, torch.load(self._adapters, weights_only=True))
        elif self._warmup:
            examples = [self._example(p) for p in self._warmup]
            pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
            args = TrainingArguments(
                output_dir=str(self._adapters.parent / "trainer"),
                num_train_epochs=self.config.warmup_epochs,
                per_device_train_batch_size=self.config.batch_size,
                learning_rate=self.config.learning_rate,
                seed=self.config.seed,
                save_strategy="no",
                logging_steps=50,
                report_to=[],
                use_cpu=True,
                disable_tqdm=True,
            )
            Trainer(model=self._model, args=args, train_dataset=Dataset.from_list(examples),
                    data_collator=PadCollator(pad)).train()  # fmt: skip
            self._adapters.parent.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().contiguous() for k, v in self._model.state_dict().items() if "lora_" in k}
            torch.save(state, self._adapters)
        self._model.eval()
        torch.manual_seed(self.config.seed)

    @property
    def n_params(self) -> int:
        """Parameters of the base model (what a gradient's forward and backward pass run through)."""
        self._ensure_model()
        return int(self._model.get_base_model().num_parameters())

    # ------------------------------------------------------------------ features
    @staticmethod
    def _key(pair: dict) -> str:
        return hashlib.sha1(f"{pair['question']}\u241f{pair['answer']}".encode()).hexdigest()

    def known(self, pair: dict) -> bool:
        """Whether ``pair``'s feature is cached."""
        return self._key(pair) in self._features

    def _gradients(self, pairs: list[dict]) -> np.ndarray:
        """Projected, normalised LoRA gradients of ``pairs`` (one row each)."""
        import torch

        params = [p for name, p in self._model.named_parameters() if "lora_" in name and p.requires_grad]
        total = sum(p.numel() for p in params)
        grads = torch.zeros(len(pairs), total)
        for row, pair in enumerate(pairs):
            example = self._example(pair)
            ids = torch.tensor([example["input_ids"]])
            labels = torch.tensor([example["labels"]])
            if (labels != IGNORE_INDEX).sum() == 0:
                continue  # an answer cut off entirely: no gradient, a zero feature
            self._model.zero_grad()
            self._model(input_ids=ids, labels=labels).loss.backward()
            grads[row] = torch.cat([p.grad.reshape(-1) for p in params])
        projected = torch.zeros(len(pairs), self.config.dim)
        generator = torch.Generator().manual_seed(self.config.seed)
        chunk = 65536  # rows of the projection generated at a time (the matrix is never held whole)
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            signs = torch.randint(0, 2, (stop - start, self.config.dim), generator=generator).float() * 2 - 1
            projected += grads[:, start:stop] @ signs
        projected /= self.config.dim**0.5
        norms = projected.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return (projected / norms).numpy()

    def features(self, pairs: list[dict]) -> np.ndarray:
        """Each pair's feature (computed once, then read from the cache). Call :meth:`prepare` first."""
        missing = list({self._key(p): p for p in pairs if not self.known(p)}.values())
        if missing:
            self._ensure_model()
            with tqdm(total=len(missing), desc="LoRA gradients", unit="pair") as bar:
                for start in range(0, len(missing), 64):  # a projection is generated once per 64 gradients
                    batch = missing[start : start + 64]
                    for pair, vector in zip(batch, self._gradients(batch), strict=True):
                        self._features[self._key(pair)] = [round(float(x), 6) for x in vector]
                    write_json_atomic(self._features_path, self._features)  # per batch: a crash loses one batch
                    bar.update(len(batch))
        return np.array([self._features[self._key(p)] for p in pairs], dtype=np.float64).reshape(len(pairs), -1)

    def influence(self, pairs: list[dict], targets: list[dict]) -> np.ndarray:
        """Mean cosine of each pair's feature with the features of ``targets`` (D_r: question and solution)."""
        reference = self.features([{"question": t["question"], "answer": t.get("solution") or t["answer"]}
                                   for t in targets])  # fmt: skip
        return self.features(pairs) @ reference.mean(axis=0) if len(pairs) else np.zeros(0)

    def token_counts(self, pairs: list[dict]) -> list[int]:
        """Tokens each gradient runs over (prompt and answer, truncated at ``max_tokens``)."""
        self._ensure_model()
        return [len(self._example(p)["input_ids"]) for p in pairs]

    def charge(self, ledger, method: str, pairs: list[dict], stage: str = "score-influence", repeat: int = 1) -> None:
        """Charge a gradient (forward and backward pass of the base model) per pair, ``repeat`` times (epochs),
        to ``ledger``."""
        from equal.llm.ledger import CallRecord

        if ledger is None or not pairs:
            return
        n_params = self.n_params
        for pair, tokens in zip(pairs, self.token_counts(pairs), strict=True):
            ledger.add(CallRecord(method, str(pair.get("doc_id", "")), stage, "transformers", self.identity, n_params,
                                  tokens, 0, 0.0, self.known(pair), "ok",
                                  flops_factor=GRADIENT_FLOPS_FACTOR * repeat, reference="base"))  # fmt: skip

    def charge_warmup(self, ledger, method: str) -> None:
        """Charge the adapters' warm-up training (every warm-up pair, every epoch) to ``ledger``."""
        self.charge(ledger, method, self._warmup, stage="influence-warmup", repeat=self.config.warmup_epochs)
