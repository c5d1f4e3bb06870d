"""Batched decoding of several conversations at once in llama.cpp, with shared prompt prefixes.

On a CPU, generating one sequence leaves most of each matrix multiplication idle: decoding N
sequences in the same ``llama_decode`` call costs little more than one. This backend therefore

* keeps up to :data:`PREFIX_SLOTS` prompt prefixes (system prompt, instruction and style examples,
  identical across many requests) in the KV cache of reserved sequences, and copies the right one
  to each working sequence instead of re-reading it; the prefixes stay for the next call;
* schedules continuously: ``n_parallel`` sequences are live at once, and a finished sequence's slot
  takes the next waiting request at once, instead of a group waiting for its longest answer;
* generates one token per live sequence per ``llama_decode`` call, each sequence with its own
  sampler chain (seeded by the request's position in the call) whose JSON grammar runs inside llama.cpp.

It speaks the same :class:`~equal.llm.types.LLMBackend` protocol as the one-at-a-time backend, and
counts where its time goes in :attr:`LlamaCppBatchBackend.stats` (prompt reading vs generation).
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import llama_cpp
import numpy as np
from llama_cpp import _internals as internals
from llama_cpp._logger import set_verbose
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import LlamaGrammar

from equal.errors import ConfigError
from equal.llm.types import BATCHED_SUFFIX, Completion, GenerationParams, Messages
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


#: Prompt prefixes kept in the KV cache at once (one per kind of request in a call: problems, code, concepts)
PREFIX_SLOTS = 4


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def prefix_clusters(prompts: list[list[int]], slots: int) -> list[list[int]]:
    """Split prompts (token lists) into at most ``slots`` clusters, each to share one kept prefix, so that the
    fewest tokens are read: sorted, neighbours share the most, and a cluster is cut in two wherever that saves
    more tokens (members no longer re-reading what their part shares) than it costs (the second prefix is read
    once). Returns the clusters as lists of prompt indices."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    if not order:
        return []
    neighbours = [_common_prefix(prompts[a], prompts[b]) for a, b in itertools.pairwise(order)]

    def shared(start: int, stop: int) -> int:  # what the sorted prompts start..stop-1 share (a lone one: itself)
        return min(neighbours[start : stop - 1]) if stop - start > 1 else len(prompts[order[start]]) - 1

    ranges = [(0, len(order))]
    while len(ranges) < slots:
        best = None
        for index, (start, stop) in enumerate(ranges):
            whole = shared(start, stop)
            for cut in range(start + 1, stop):
                left, right = shared(start, cut) - whole, shared(cut, stop) - whole
                gain = left * (cut - start - 1) + right * (stop - cut - 1) - whole
                if gain > 0 and (best is None or gain > best[0]):
                    best = (gain, index, cut)
        if best is None:
            break
        _, index, cut = best
        start, stop = ranges.pop(index)
        ranges[index:index] = [(start, cut), (cut, stop)]
    return [order[start:stop] for start, stop in ranges]


@dataclass
class _Live:
    """A request being generated in one of the working sequences."""

    request: int
    sampler: _SequenceSampler
    next_token: int  # the token to feed at the next step (the prompt's last, then each sampled one)
    position: int
    output: list[int] = field(default_factory=list)


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
        threads = n_threads or os.cpu_count() or 1
        set_verbose(False)  # llama.cpp's own log lines would drown the progress bar
        self._model = internals.LlamaModel(
            path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False
        )
        params = llama_cpp.llama_context_default_params()
        # One unified KV buffer: a prefix's cells belong to every sequence that copies it, so n_parallel
        # conversations of at most n_ctx tokens each and the kept prefixes always fit.
        params.n_ctx = n_ctx * (n_parallel + PREFIX_SLOTS)
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, 512)
        params.n_seq_max = n_parallel + PREFIX_SLOTS
        params.kv_unified = True  # one KV buffer, so a copied prefix costs nothing
        params.n_threads = threads
        params.n_threads_batch = threads
        self._ctx = internals.LlamaContext(model=self._model, params=params, verbose=False)
        self._batch = internals.LlamaBatch(n_tokens=n_batch, embd=0, n_seq_max=n_parallel + PREFIX_SLOTS,
                                           verbose=False)  # fmt: skip
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
        # the reserved sequences n_parallel.. hold the kept prefixes: sequence -> its tokens
        self._prefixes: dict[int, list[int]] = {n_parallel + k: [] for k in range(PREFIX_SLOTS)}
        self._grammars: dict[str, str] = {}  # schema -> GBNF text
        self._n_vocab = self._model.n_vocab()
        #: where the time goes, summed over calls: tokens and seconds of prefix reading, prompt reading and
        #: generation steps (``step_tokens``: live sequences summed over steps), and sampling seconds
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

    def _set_prefixes(self, prompts: list[list[int]]) -> list[tuple[int, int]]:
        """Put the prefixes these prompts share into the reserved sequences (keeping what they already hold);
        return, per prompt, the sequence holding its prefix and how many of its tokens that covers."""
        clusters = prefix_clusters(prompts, PREFIX_SLOTS)
        plan: list[tuple[int, int]] = [(-1, 0)] * len(prompts)
        wanted = []
        for cluster in clusters:  # every prompt keeps at least its last token to read with logits
            first, last = prompts[cluster[0]], prompts[cluster[-1]]
            cap = min(len(prompts[i]) for i in cluster) - 1
            wanted.append(first[: min(_common_prefix(first, last) if len(cluster) > 1 else cap, cap)])
        # each cluster goes to the free sequence already holding most of its prefix
        free = dict(self._prefixes)
        for cluster, tokens in sorted(zip(clusters, wanted, strict=True), key=lambda c: -len(c[1])):
            seq = max(free, key=lambda s: (_common_prefix(free[s], tokens), -s))
            keep = _common_prefix(free.pop(seq), tokens)
            self._ctx.kv_cache_seq_rm(seq, keep, -1)
            self._timed_decode([(tok, keep + i, seq, False) for i, tok in enumerate(tokens[keep:])], "prefix")
            self._prefixes[seq] = tokens
            for index in cluster:
                plan[index] = (seq, len(tokens))
        return plan

    def _grammar_text(self, schema: dict) -> str:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)._grammar
        return self._grammars[key]

    def chat(self, batch: list[Messages], params: GenerationParams) -> list[Completion]:
        """One completion per conversation, ``n_parallel`` generated at a time; a failed request (or a failed
        call) comes back as an error completion, never raised. Each completion's ``wall_s`` is its equal share
        of the call's time."""
        started = time.perf_counter()
        prompts: list[list[int]] = []
        errors: dict[int, str] = {}
        for index, messages in enumerate(batch):
            try:
                prompt = self._tokenize(self._format(messages=messages).prompt, special=True)
                if len(prompt) + params.max_tokens > self.context_length:
                    raise ValueError(f"prompt of {len(prompt)} tokens + {params.max_tokens} > context")
            except Exception as exc:
                errors[index], prompt = f"{type(exc).__name__}: {exc}", []
            prompts.append(prompt)
        todo = [i for i in range(len(batch)) if i not in errors]
        done: dict[int, tuple[list[int], str]] = {}
        try:
            if todo:
                self._generate(todo, prompts, params, done)
        except Exception as exc:  # the unfinished requests fail; the finished keep their answers
            errors.update({i: f"{type(exc).__name__}: {exc}" for i in todo if i not in done})
        finally:
            for seq in range(self.n_parallel):
                self._ctx.kv_cache_seq_rm(seq, -1, -1)
        wall = (time.perf_counter() - started) / max(1, len(batch))
        results = []
        for index, prompt in enumerate(prompts):
            if index in errors:
                results.append(Completion("", 0, 0, wall, "error", errors[index]))
                continue
            output, reason = done[index]
            text = self._model.detokenize(output).decode("utf-8", errors="replace")
            results.append(Completion(text, len(prompt), len(output) + (reason == "stop"), wall, reason))
        return results

    def _generate(self, todo: list[int], prompts: list[list[int]], params: GenerationParams,
                  done: dict[int, tuple[list[int], str]]) -> None:  # fmt: skip
        """Generate for the requests ``todo`` with continuous batching; finished ones land in ``done``."""
        plan = dict(zip(todo, self._set_prefixes([prompts[i] for i in todo]), strict=True))
        waiting = deque(todo)
        free = list(range(self.n_parallel))
        live: dict[int, _Live] = {}
        try:
            while waiting or live:
                body = []
                while free and waiting:  # a free sequence takes the next request: its prefix copied, the rest read
                    seq, index = free.pop(0), waiting.popleft()
                    prefix_seq, shared = plan[index]
                    prompt = prompts[index]
                    self._ctx.kv_cache_seq_rm(seq, -1, -1)
                    if shared:
                        self._ctx.kv_cache_seq_cp(prefix_seq, seq, 0, shared)
                    body.extend((tok, shared + i, seq, False) for i, tok in enumerate(prompt[shared:-1]))
                    live[seq] = _Live(index, _SequenceSampler(self, params, index), prompt[-1], len(prompt) - 1)
                if body:
                    self._timed_decode(body, "prompt")
                order = list(live)  # sequence order in this step's batch = the logits' order
                self._timed_decode([(live[s].next_token, live[s].position, s, True) for s in order], "step")
                started = time.perf_counter()
                for batch_index, seq in enumerate(order):
                    state = live[seq]
                    token = state.sampler.sample(self._ctx.ctx, batch_index)
                    reason = None
                    if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
                        reason = "stop"
                    else:
                        state.output.append(token)
                        state.next_token, state.position = token, state.position + 1
                        if len(state.output) >= params.max_tokens:
                            reason = "length"
                    if reason is not None:
                        done[state.request] = (state.output, reason)
                        state.sampler.close()
                        del live[seq]
                        self._ctx.kv_cache_seq_rm(seq, -1, -1)
                        free.append(seq)
                self.stats["sample_s"] += time.perf_counter() - started
                self.stats["steps"] += 1
        finally:
            for state in live.values():
                state.sampler.close()
