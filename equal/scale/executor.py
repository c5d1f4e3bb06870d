"""Where extraction runs: in this process (the default) or spread over Ray actors.

The selection loop and every method call an extractor; :class:`~equal.llm.extract.QAExtractor` runs each batch
of documents here, :class:`RayExtractor` hands the batches of a round — ``arms_per_round × docs_per_pull``
documents cut into the backend's batches — to actors that each hold an LLM engine (llama.cpp in-process on CPU,
vLLM in-process, or an OpenAI-compatible endpoint). Both go through the same code for everything else: the
actors answer through the shared exactly-once cache and return each batch's results with its ledger records; the
driver adds the records to the one ledger in batch order, and the selection loop's round log stays the commit
point. A retried task therefore repeats no paid call (the cache answers it) and local and Ray runs produce
identical rounds, pairs and ledgers.

Ray is an optional extra (``pip install -e .[scale]``); nothing here imports it until a Ray executor is made.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

from equal.errors import ConfigError
from equal.llm.backends import make_backend
from equal.llm.cache import CallCache
from equal.llm.extract import DocumentResult, ExtractionConfig, QAExtractor
from equal.llm.fake import ScriptedBackend
from equal.llm.ledger import CostLedger
from equal.llm.types import Completion, GenerationParams, Messages


def require_ray():
    """The ``ray`` module, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the Ray executor needs the scale extra: pip install -e '.[scale]' (or make venv)") from exc
    return ray


#: Ray waits a fixed 30 s for a new node's raylet to register (ray/_private/node.py, not configurable); on a loaded
#: 2-core machine it can miss that, so a local start is tried this many times.
LOCAL_START_TRIES = 3


def start_ray(address: str | None = None, num_cpus: int | None = None, tries: int = LOCAL_START_TRIES):
    """Connect to the Ray cluster at ``address``, or start a local one with ``num_cpus`` CPUs and nothing a CPU box
    does not need (no dashboard, no GPUs, a small object store); a local start that times out under load is retried
    up to ``tries`` times, with a warning that says so. Returns the ``ray`` module."""
    import warnings

    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address is not None:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return ray
    for attempt in range(1, tries + 1):
        try:
            with _every_cpu():
                ray.init(num_cpus=num_cpus, num_gpus=0, include_dashboard=False, log_to_driver=False,
                         object_store_memory=256 * 2**20)  # fmt: skip
            return ray
        except Exception as exc:  # Ray raises a bare Exception for a node that did not come up
            if "timed out during startup" not in str(exc) or attempt == tries:
                raise
            ray.shutdown()
            warnings.warn(f"Ray's local node did not start within Ray's fixed 30 s (attempt {attempt} of {tries}, "
                          "the machine is busy); starting it again", RuntimeWarning, stacklevel=2)  # fmt: skip
    return ray


@contextmanager
def _every_cpu():
    """Let the processes started inside run on every CPU of the machine, whatever this one is pinned to: Ray's
    GCS, raylet and workers inherit the caller's CPU affinity, and pinned to one busy core (a pytest worker's) the
    GCS answered none of the raylet's registration calls within Ray's fixed wait."""
    pinned = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    every = set(range(os.cpu_count() or 1))
    if pinned is None or pinned == every:
        yield
        return
    try:
        os.sched_setaffinity(0, every)
    except OSError:  # CPUs this container may not use: leave the pinning as it is
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, pinned)


def build_backend(spec: dict):
    """A backend from its specification; ``kind: scripted`` is the deterministic stand-in of the scale tests and
    benchmark (:class:`~equal.llm.fake.ScriptedBackend`), never available to a profile."""
    spec = dict(spec)
    if spec.get("kind") == "scripted":
        spec.pop("kind")
        return ScriptedBackend(**spec)
    return make_backend(spec)


class ExtractionWorker:
    """One actor's extractor: an LLM engine, the shared cache, the run's extraction settings."""

    def __init__(self, backend: dict, config: ExtractionConfig, cache, refinement: dict | None = None) -> None:
        from equal.llm.extract import make_refiner

        engine = build_backend(backend)
        recipe = refinement or {}
        refiner = make_refiner(recipe.get("llm") or {}, recipe.get("refinement"), cache, engine,
                               (recipe.get("references") or {}).__getitem__)  # fmt: skip
        self.extractor = QAExtractor(engine, cache, config, refiner)

    def describe(self) -> dict:
        """The engine's identity and shape, for the driver's fingerprints and batching."""
        b = self.extractor.backend
        return {"kind": b.kind, "model_id": b.model_id, "n_params": int(b.n_params), "batch_size": int(b.batch_size),
                "context_length": int(b.context_length), "refinement": self.extractor.refinement_identity}  # fmt: skip

    def extract_batch(self, docs: list[dict], method: str) -> tuple[list[DocumentResult], list]:
        """One batch's results and the records of its calls (the driver charges them)."""
        ledger = CostLedger()
        return self.extractor.extract_batch(docs, method, ledger), ledger.records

    def ask(self, stage: str, requests: list[Messages], params: GenerationParams) -> list[tuple[Completion, bool]]:
        """Other chat requests (ratings, rewrites) through the same engine and cache."""
        return self.extractor.ask(stage, requests, params)


@dataclass(frozen=True)
class RemoteBackend:
    """What the driver knows of the workers' engine: identity and shape, no model."""

    kind: str
    model_id: str
    n_params: int
    batch_size: int
    context_length: int


class RayExtractor(QAExtractor):
    """A :class:`QAExtractor` whose batches run on ``workers`` Ray actors (one engine each).

    ``cache_owner="file"``: every actor opens the cache file (workers on the cache's host);
    ``"actor"``: one :class:`~equal.scale.cache_actor.CacheOwner` actor holds it and workers on any host call it.
    ``worker_options`` go to ``ray.remote`` (e.g. ``{"num_gpus": 1}`` for a vLLM engine per GPU).
    Several driver threads may extract at once (:meth:`equal.select.runner.MethodRunner.run_many`): each call
    schedules its own batches over the shared actors.
    """

    thread_safe = True

    def __init__(self, backend: dict, cache: CallCache, config: ExtractionConfig | None = None, workers: int = 2,
                 cache_owner: str = "file", worker_options: dict | None = None, address: str | None = None,
                 refinement: dict | None = None) -> None:  # fmt: skip
        if cache_owner not in ("file", "actor"):
            raise ConfigError(f"cache_owner must be 'file' or 'actor', got {cache_owner!r}")
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        ray = start_ray(address)
        self.config = config or ExtractionConfig()
        self.cache = cache
        shared = cache
        if cache_owner == "actor":
            from equal.scale.cache_actor import CacheClient, CacheOwner

            self._owner = ray.remote(num_cpus=0)(CacheOwner).remote(str(cache.path), cache.lease_s)
            shared = CacheClient(self._owner)
        remote = ray.remote(**(worker_options or {"num_cpus": 1}))(ExtractionWorker)
        # refinement: {"llm", "refinement", "references"} (equal.llm.extract.make_extractor), rebuilt on each worker
        self._workers = [remote.remote(backend, self.config, shared, refinement) for _ in range(workers)]
        described = ray.get(self._workers[0].describe.remote())
        self._refinement_identity = described.pop("refinement")
        self.backend = RemoteBackend(**described)
        self.refiner = None  # the workers refine; the driver only charges what they report
        self._ray = ray

    @property
    def refinement_identity(self) -> dict | None:
        """The workers' refiner identity (model, settings, examples)."""
        return self._refinement_identity

    def _ordered(self, submit, items: list):
        """Results of ``submit(worker, item)`` for every item, in order, each item going to the next free worker."""
        from ray.util import ActorPool

        yield from ActorPool(self._workers).map(submit, items)

    def map_batches(self, batches: list[list[dict]], method: str):
        """Every batch on the next free worker; results come back in batch order."""
        yield from self._ordered(lambda worker, batch: worker.extract_batch.remote(batch, method), batches)

    def ask(self, stage: str, requests: list[Messages], params: GenerationParams) -> list[tuple[Completion, bool]]:
        """Chat requests in batches over the workers, answers in request order."""
        size = max(1, self.backend.batch_size)
        chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
        answers: list[tuple[Completion, bool]] = []
        for chunk in self._ordered(lambda worker, part: worker.ask.remote(stage, part, params), chunks):
            answers.extend(chunk)
        return answers

    def extract_batch(self, docs: list[dict], method: str, ledger: CostLedger | None = None) -> list[DocumentResult]:
        """One batch on a worker (the records go to ``ledger``)."""
        ((results, records),) = list(self.map_batches([docs], method))
        for record in records:
            if ledger is not None:
                ledger.add(record)
        return results

    def fit_document(self, text: str) -> tuple[str, bool]:
        raise NotImplementedError("documents are fitted to the context on the workers, which hold the tokenizer")

    def shutdown(self) -> None:
        """Stop the workers (the cache's owner too)."""
        for worker in self._workers:
            self._ray.kill(worker)
        if hasattr(self, "_owner"):
            self._ray.kill(self._owner)
