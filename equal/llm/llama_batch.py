"""Batched decoding of several conversations at once in llama.cpp, with a shared prompt prefix.

On a CPU, generating one sequence leaves most of each matrix multiplication idle: decoding N
sequences in the same ``llama_decode`` call costs little more than one. This backend therefore

* keeps the instruction prefix (system prompt + instruction, identical for every document) in the
  KV cache of a reserved sequence and copies it to each working sequence instead of re-reading it;
* keeps the last group's prompts in the KV cache too (one kept sequence each), so that a prompt asked again —
  a refinement's next attempt or vote, a few-shot prefix shared with the last group — is read only past what
  it shares with one of them;
* reads all documents' remaining prompt tokens in large batches;
* generates one token per live sequence per ``llama_decode`` call, each sequence with its own
  sampler chain whose JSON grammar runs inside llama.cpp.

It speaks the same :class:`~equal.llm.types.LLMBackend` protocol as the one-at-a-time backend, and counts where
its time goes in :attr:`LlamaCppBatchBackend.stats`. Continuous batching (a finished sequence's slot taking the
next request at once) with one kept prefix per kind of request was tried and measured no faster (0.90x on the
default's extraction and refinement, ``results/benchmarks/batching.json``): on two cores reading prompts, not
waiting for a group's longest answer, is where the time goes.
"""

from __future__ import annotations

import ctypes
import json
import time
from collections import Counter

import llama_cpp
import numpy as np
from llama_cpp import _internals as internals
from llama_cpp._logger import set_verbose
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar

from equal.errors import ConfigError
from equal.llm.types import BATCHED_SUFFIX, Completion, GenerationParams, Messages
from equal.provenance import usable_cpus
from equal.weights import resolve_gguf

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class _SequenceSampler:
    """Sampling for one sequence, with the JSON grammar checked lazily.

    Applying a grammar to all ~150k candidates at every step dominates generation time. As
    llama.cpp's own ``common_sampler`` does, we first pick a token without the grammar, ask the
    grammar about that one token only, and fall back to filtering the whole vocabulary only when
    the grammar rejects it.
    """

    def __init__(self, backend: LlamaCppBatchBackend, params: GenerationParams, index: int) -> None:
        self.backend = backend
        self.chain = internals.LlamaSampler()
        self.grammar = None
        if params.json_schema is not None:
            text = backend._grammar_text(params.json_schema)
            self.grammar = llama_cpp.llama_sampler_init_grammar(backend._model.vocab, text.encode(), b"root")
        if params.repeat_penalty != 1.0:  # over the last 64 tokens, as llama.cpp's default window
            self.chain.add_penalties(backend._n_vocab, 64, params.repeat_penalty, 0.0, 0.0)
        if params.temperature > 0:
            self.chain.add_top_p(params.top_p, 1)
            self.chain.add_temp(params.temperature)
            self.chain.add_dist(params.seed + index)
        else:
            self.chain.add_greedy()
        self.temperature = params.temperature
        self.rng = np.random.default_rng(params.seed + index)
        self._one = (llama_cpp.llama_token_data * 1)()
        self.fallbacks = 0

    def _allowed(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 1.0, 0.0
        single = llama_cpp.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(single))
        return np.isfinite(self._one[0].logit)

    def sample(self, ctx, index: int) -> int:
        """The next token of this sequence from the logits at batch position ``index``."""
        token = llama_cpp.llama_sampler_sample(self.chain.sampler, ctx, index)
        if self.grammar is None:
            return token
        if not self._allowed(token):
            self.fallbacks += 1
            n_vocab = self.backend._n_vocab
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(n_vocab,))
            candidates = np.zeros(n_vocab, dtype=_TOKEN_DATA)
            candidates["id"] = np.arange(n_vocab, dtype=np.int32)
            candidates["logit"] = logits
            array = llama_cpp.llama_token_data_array(
                data=candidates.ctypes.data_as(llama_cpp.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
            )
            llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(array))
            allowed = candidates["logit"]
            if self.temperature > 0:
                weights = np.exp((allowed - allowed.max()) / self.temperature)
                token = int(self.rng.choice(n_vocab, p=weights / weights.sum()))
            else:
                token = int(np.argmax(allowed))
        llama_cpp.llama_sampler_accept(self.grammar, token)
        return token

    def close(self) -> None:
        """Free the llama.cpp samplers."""
        self.chain.close()
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class LlamaCppBatchBackend:
    """A GGUF model decoding ``n_parallel`` conversations together (llama.cpp low-level API)."""

    kind = "llama_cpp"  # same answers as LlamaCppBackend up to batching numerics; cache keys say which

    def __init__(
        self,
        model: str,
        n_parallel: int = 4,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 1024,
        seed: int = 0,
    ) -> None:
        path, identity = resolve_gguf(model)
        self.n_parallel = n_parallel
        self.batch_size = n_parallel
        self.context_length = n_ctx  # per conversation
        self.model_id = identity + BATCHED_SUFFIX
        self.seed = seed
        threads = n_threads or usable_cpus()
        set_verbose(False)  # llama.cpp's own log lines would drown the progress bar
        self._model = internals.LlamaModel(
            path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False
        )
        params = llama_cpp.llama_context_default_params()
        # One unified KV buffer: the shared prefix's cells belong to every sequence at once, so
        # n_parallel conversations of at most n_ctx tokens each (prefix included) always fit.
        params.n_ctx = n_ctx * n_parallel
        self._cells = params.n_ctx
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, 512)
        params.n_seq_max = 2 * n_parallel + 1  # conversations, the prefix, the last group's kept prompts
        params.kv_unified = True  # one KV buffer, so a copied prefix costs nothing
        params.n_threads = threads
        params.n_threads_batch = threads
        self._ctx = internals.LlamaContext(model=self._model, params=params, verbose=False)
        self._batch = internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=n_parallel + 1, verbose=False)
        self._n_batch = n_batch
        self.n_params = int(self._model.n_params())
        metadata = self._model.metadata()
        template = metadata.get("tokenizer.chat_template")
        if not template:
            raise ConfigError(f"{path} has no chat template in its metadata")
        self._format = Jinja2ChatFormatter(
            template=template,
            eos_token=self._model.token_get_text(self._model.token_eos()),
            bos_token=self._model.token_get_text(self._model.token_bos()),
            add_generation_prompt=True,
        )
        self._prefix_seq = n_parallel  # the reserved sequence holding the shared prefix
        self._prefix: list[int] = []
        self._kept: dict[int, list[int]] = {}  # kept sequence (n_parallel + 1 + i) -> the prompt its cells hold
        self._grammars: dict[str, str] = {}  # schema -> GBNF text
        self._n_vocab = self._model.n_vocab()
        #: where the time goes, summed over calls: tokens and seconds of reading the shared prefix, reading the
        #: prompts and the generation steps (``step_tokens``: live sequences summed over steps), sampling seconds
        self.stats: Counter = Counter()

    # ------------------------------------------------------------------ tokens

    def _tokenize(self, text: str, special: bool = False) -> list[int]:
        return self._model.tokenize(text.encode("utf-8"), add_bos=special, special=special)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (no BOS)."""
        return len(self._tokenize(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to ``max_tokens`` tokens."""
        tokens = self._tokenize(text)
        if len(tokens) <= max_tokens:
            return text
        return self._model.detokenize(tokens[:max_tokens]).decode("utf-8", errors="ignore")

    # ------------------------------------------------------------------ decoding

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, wants_logits) entries, in chunks of n_batch."""
        for start in range(0, len(entries), self._n_batch):
            chunk = entries[start : start + self._n_batch]
            batch = self._batch.batch
            batch.n_tokens = len(chunk)
            for j, (token, pos, seq, logits) in enumerate(chunk):
                batch.token[j] = token
                batch.pos[j] = pos
                batch.n_seq_id[j] = 1
                batch.seq_id[j][0] = seq
                batch.logits[j] = logits
            self._ctx.decode(self._batch)

    def _timed_decode(self, entries: list[tuple[int, int, int, bool]], what: str) -> None:
        started = time.perf_counter()
        self._decode(entries)
        self.stats[f"{what}_s"] += time.perf_counter() - started
        self.stats[f"{what}_tokens"] += len(entries)

    def _set_prefix(self, prompts: list[list[int]]) -> int:
        """Make the reserved sequence hold the longest prefix shared by all prompts; return its length."""
        shared = min(len(p) for p in prompts) - 1  # every sequence keeps at least one token of its own
        for prompt in prompts[1:]:
            shared = min(shared, _common_prefix(prompts[0], prompt))
        if self._prefix and len(prompts) == 1:
            # A lone prompt shares nothing with itself: keep only what it shares with the cached prefix.
            shared = min(shared, _common_prefix(self._prefix, prompts[0]))
        keep = _common_prefix(self._prefix, prompts[0][:shared])
        self._ctx.kv_cache_seq_rm(self._prefix_seq, keep, -1)
        new = prompts[0][keep:shared]
        self._timed_decode([(tok, keep + i, self._prefix_seq, False) for i, tok in enumerate(new)], "prefix")
        self._prefix = prompts[0][:shared]
        return shared

    def _starts(self, prompts: list[list[int]], shared: int, max_tokens: int) -> list[tuple[int, int]]:
        """For each prompt, where its cells come from and how many: the kept prompt sharing the longest prefix
        with it when that beats the shared prefix, else the prefix sequence. At least the last token is always
        read again (its logits start the answer). Kept prompts no prompt uses are dropped, and those used are cut
        to what is used, so that kept cells never add to what the group needs; where the group and a prefix no
        conversation copies might not fit beside each other, no kept prompt is used."""
        starts, used = [], {}
        room = sum(len(p) + max_tokens for p in prompts) + shared <= self._cells
        for prompt in prompts:
            best, length = self._prefix_seq, shared
            for seq, kept in self._kept.items() if room else ():
                common = min(_common_prefix(kept, prompt), len(prompt) - 1)
                if common > length:
                    best, length = seq, common
            starts.append((best, length))
            if best != self._prefix_seq:
                used[best] = max(used.get(best, 0), length)
        for seq in list(self._kept):
            self._ctx.kv_cache_seq_rm(seq, used.get(seq, 0), -1)
            if seq not in used:
                del self._kept[seq]
        return starts

    def _drop_kept(self) -> None:
        """Forget every kept prompt and free its cells."""
        for seq in self._kept:
            self._ctx.kv_cache_seq_rm(seq, -1, -1)
        self._kept = {}

    def _keep_prompts(self, prompts: list[list[int]]) -> None:
        """Keep each prompt of the group just decoded (its cells, not its answer's) for the next group."""
        self._drop_kept()
        for s, prompt in enumerate(prompts):
            kept = self._prefix_seq + 1 + s
            self._ctx.kv_cache_seq_cp(s, kept, 0, len(prompt))
            self._kept[kept] = prompt

    def _grammar_text(self, schema: dict) -> str:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)._grammar
        return self._grammars[key]

    def chat(self, batch: list[Messages], params: GenerationParams) -> list[Completion]:
        """Generate for up to ``n_parallel`` conversations at once (larger batches are split)."""
        results: list[Completion] = []
        for start in range(0, len(batch), self.n_parallel):
            results.extend(self._chat_group(batch[start : start + self.n_parallel], params))
        return results

    def _chat_group(self, group: list[Messages], params: GenerationParams) -> list[Completion]:
        started = time.perf_counter()
        try:
            prompts = [self._tokenize(self._format(messages=m).prompt, special=True) for m in group]
            too_long = [len(p) + params.max_tokens > self.context_length for p in prompts]
            if any(too_long):
                raise ValueError(f"prompt of {max(len(p) for p in prompts)} tokens + {params.max_tokens} > context")
            shared = self._set_prefix(prompts)
            starts = self._starts(prompts, shared, params.max_tokens)
            for seq, (source, length) in enumerate(starts):
                self._ctx.kv_cache_seq_rm(seq, -1, -1)
                self._ctx.kv_cache_seq_cp(source, seq, 0, length)
                self.stats["kept_tokens"] += length - shared if source != self._prefix_seq else 0
            # Every prompt's own tokens, then the last token of each (with logits) in one final call.
            body = [(tok, n + i, s, False) for s, (p, (_, n)) in enumerate(zip(prompts, starts, strict=True))
                    for i, tok in enumerate(p[n:-1])]  # fmt: skip
            self._timed_decode(body, "prompt")
            self._timed_decode([(p[-1], len(p) - 1, s, True) for s, p in enumerate(prompts)], "prompt")
            samplers = [_SequenceSampler(self, params, s) for s in range(len(group))]
            outputs: list[list[int]] = [[] for _ in group]
            finished = ["length"] * len(group)
            live = list(range(len(group)))  # sequence s's logits are at batch index live.index(s)
            positions = [len(p) for p in prompts]
            while live:
                step = []
                sampling = time.perf_counter()
                for index, seq in enumerate(live):
                    token = samplers[seq].sample(self._ctx.ctx, index)
                    if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                        finished[seq] = "stop"
                        continue
                    outputs[seq].append(token)
                    if len(outputs[seq]) >= params.max_tokens:
                        continue
                    step.append((token, positions[seq], seq, True))
                    positions[seq] += 1
                live = [entry[2] for entry in step]
                self.stats["sample_s"] += time.perf_counter() - sampling
                if step:
                    self._timed_decode(step, "step")
                    self.stats["steps"] += 1
            for sampler in samplers:
                sampler.close()
            self._keep_prompts(prompts)
        except Exception as exc:  # a failed group is reported per conversation, never raised
            self._drop_kept()  # nothing half-kept survives a failure
            wall = (time.perf_counter() - started) / len(group)
            return [Completion("", 0, 0, wall, "error", f"{type(exc).__name__}: {exc}") for _ in group]
        finally:
            for seq in range(len(group)):
                self._ctx.kv_cache_seq_rm(seq, -1, -1)
        wall = (time.perf_counter() - started) / len(group)
        return [
            Completion(
                self._model.detokenize(out).decode("utf-8", errors="replace"),
                len(prompt),
                len(out) + (reason == "stop"),
                wall,
                reason,
            )
            for out, prompt, reason in zip(outputs, prompts, finished, strict=True)
        ]
