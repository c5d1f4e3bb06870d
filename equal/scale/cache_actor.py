"""One owner of the LLM cache for workers on many hosts: a Ray actor holds the SQLite file, clients call it.

SQLite is safe between processes of one host, not over a network file system. Across hosts the cache therefore
has one owner — :class:`CacheOwner`, a Ray actor next to the file — and every worker holds a :class:`CacheClient`
with the same claim/put/renew/release interface as :class:`~equal.llm.cache.CallCache`, so the exactly-once
protocol (:func:`~equal.llm.cache.resolve_with`) is the same code everywhere. Leases of workers on other hosts
end when their answer is stored, when they are released, or when they expire (they are renewed while a call runs).
"""

from __future__ import annotations

from pathlib import Path

from equal.llm.cache import CallCache, CallFunction, CallMeta, resolve_with, worker_identity
from equal.llm.types import Completion


class CacheOwner:
    """The actor's side: a :class:`CallCache` on the owner's host (wrap with ``ray.remote``)."""

    def __init__(self, path: str | Path, lease_s: float = 600.0) -> None:
        self.cache = CallCache(path, lease_s=lease_s)

    def settings(self) -> dict:
        """What clients need to know: lease period and the cache's identity."""
        return {"lease_s": self.cache.lease_s, "identity": self.cache.identity}

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        """Stored answers of those keys that have one."""
        return self.cache.get_many(keys)

    def claim(self, keys: list[str], owner: str):
        """Stored answers, keys claimed for ``owner``, keys in flight elsewhere."""
        return self.cache.claim(keys, owner)

    def put(self, key: str, completion: Completion, backend: str, model_id: str, prompt_version: str, stage: str,
            owner: str) -> Completion:  # fmt: skip
        """Store an answer unless one is stored (first wins); return the stored one."""
        return self.cache.put(key, completion, backend, model_id, prompt_version, stage, owner)

    def renew(self, keys: list[str], owner: str) -> None:
        """Extend ``owner``'s leases."""
        self.cache.renew(keys, owner)

    def release(self, keys: list[str], owner: str) -> None:
        """Drop ``owner``'s leases."""
        self.cache.release(keys, owner)

    def count(self) -> int:
        """Answers stored."""
        return len(self.cache)


class CacheClient:
    """A worker's handle on the cache owner, usable wherever a :class:`CallCache` is (and picklable: each process
    that unpickles it is a new lease owner)."""

    def __init__(self, owner_actor) -> None:
        import ray

        self._actor = owner_actor
        settings = ray.get(owner_actor.settings.remote())
        self.lease_s, self.identity = settings["lease_s"], settings["identity"]
        self.owner = worker_identity()

    def __getstate__(self) -> dict:
        return {"_actor": self._actor, "lease_s": self.lease_s, "identity": self.identity}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.owner = worker_identity()

    def _call(self, name: str, *args):
        import ray

        return ray.get(getattr(self._actor, name).remote(*args))

    def get(self, key: str) -> Completion | None:
        """The stored answer of ``key``, or None."""
        return self._call("get_many", [key]).get(key)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        """Stored answers of those keys that have one."""
        return self._call("get_many", keys)

    def claim(self, keys: list[str], owner: str | None = None):
        """Stored answers, keys claimed for ``owner``, keys in flight elsewhere."""
        return self._call("claim", keys, owner or self.owner)

    def put(self, key: str, completion: Completion, backend: str, model_id: str, prompt_version: str, stage: str,
            owner: str | None = None) -> Completion:  # fmt: skip
        """Store an answer unless one is stored (first wins); return the stored one."""
        return self._call("put", key, completion, backend, model_id, prompt_version, stage, owner or self.owner)

    def renew(self, keys: list[str], owner: str | None = None) -> None:
        """Extend ``owner``'s leases."""
        self._call("renew", keys, owner or self.owner)

    def release(self, keys: list[str], owner: str | None = None) -> None:
        """Drop ``owner``'s leases."""
        self._call("release", keys, owner or self.owner)

    def resolve(self, keys: list[str], call: CallFunction, meta: CallMeta, poll_s: float = 0.1):
        """The exactly-once protocol of :meth:`CallCache.resolve`, through the owner."""
        return resolve_with(self, keys, call, meta, poll_s)

    def __len__(self) -> int:
        return self._call("count")
