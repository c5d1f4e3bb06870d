"""One stage interface and one runner: what every pipeline stage declares, and how any stage is run and recorded.

A stage (:class:`Stage`) is an object holding its parameters (scikit-learn's rule: parameters in, finished work
out). It declares

* ``name``: its section of the configuration tree (:data:`equal.config.STAGES`);
* ``after``: the stages whose files it reads;
* :meth:`Stage.parameters`: everything besides those files that decides its outputs (settings, model identities,
  input files from outside the pipeline) — its fingerprint's own parts;
* :meth:`Stage.run`: the work, reading and writing the profile's files through :class:`~equal.artifacts.Artifacts`.

:func:`run_stage` is the one runner, used by the notebooks and by ``equal select`` alike. It fingerprints the
stage (its parameters and the fingerprints its upstream stages were last finished with), says whether the stage's
finished work is current or what changed, times the run and writes the stage's record
(``<data>/stages/<name>.json``: fingerprint and parts, state, start, seconds, package versions) — ``running`` first,
``done`` last, so an interrupted run is told apart from a finished one.

Inside a stage, finished work is read back unit by unit by the one cache rule
(:func:`equal.fingerprint.reuse_or_reset`: a prepared corpus, a tuned embedder, a method run, a fine-tuned model,
an evaluation) and every LLM answer by the call cache: a re-run of a current stage repeats no expensive work, and a
stale or interrupted one recomputes only what its change touched. The stage record is what :func:`stage_status`
(``equal status``) reads to tell, without running anything, what is current, what is stale and why.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from equal.artifacts import Artifacts
from equal.fingerprint import Fingerprint, changed_parts, fingerprint
from equal.io import write_json_atomic
from equal.provenance import now, package_versions

#: Bumped when the runner's record changes meaning (every stage then shows as stale once).
RECORD_VERSION = 1


@runtime_checkable
class Stage(Protocol):
    """A pipeline stage: its parameters in, its files out (see the module docstring)."""

    name: ClassVar[str]
    after: ClassVar[tuple[str, ...]]

    def parameters(self) -> dict[str, Any]:
        """Everything besides the upstream stages' files that decides this stage's outputs, by name."""
        ...

    def run(self, art: Artifacts) -> Any:
        """Do the work (reading back whatever finished work is still current) and return what it made."""
        ...


def record_file(art: Artifacts, name: str) -> Path:
    """Where the runner records a stage of this profile: ``<data>/stages/<name>.json``."""
    return art.data / "stages" / f"{name}.json"


def read_record(art: Artifacts, name: str) -> dict | None:
    """A stage's record (None when the stage never started in this profile's folder)."""
    path = record_file(art, name)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def stage_fingerprint(stage: Stage, art: Artifacts) -> Fingerprint:
    """The stage's fingerprint: its parameters, each a part of its own (so a change names the setting), and the
    fingerprint each upstream stage last finished with (so a change upstream makes this stage stale)."""
    parts: dict[str, Any] = {"record_version": RECORD_VERSION}
    parts |= {f"parameters.{key}": value for key, value in stage.parameters().items()}
    for upstream in stage.after:
        record = read_record(art, upstream)
        parts[f"upstream.{upstream}"] = record.get("fingerprint") if record and record.get("state") == "done" else None
    return fingerprint(**parts)


def run_stage(stage: Stage, art: Artifacts, progress: bool = True) -> Any:
    """Run ``stage`` for the profile of ``art``: fingerprint it, say what is current or what changed, time it and
    record it (see the module docstring). Returns what :meth:`Stage.run` returned."""
    say = print if progress else (lambda *_: None)
    fp = stage_fingerprint(stage, art)
    previous = read_record(art, stage.name)
    missing = [u for u in stage.after if (read_record(art, u) or {}).get("state") != "done"]
    if missing:  # a stage run by hand before its inputs were recorded (e.g. a notebook of an older checkout)
        say(f"stage {stage.name}: no finished record of {', '.join(missing)} — running on the files present")
    say(f"stage {stage.name}: {_describe_previous(previous, fp)}")
    path = record_file(art, stage.name)
    if previous and previous.get("state") == "running" and _alive(previous) and previous.get("pid") != os.getpid():
        say(f"stage {stage.name}: warning — process {previous['pid']} on {previous.get('host')} is running it too "
            "(finished work units are shared; paid LLM calls are not repeated)")  # fmt: skip
    record = {"stage": stage.name, "fingerprint": fp.digest, "parts": fp.parts, "state": "running",
              "pid": os.getpid(), "host": socket.gethostname(), "started": now()}  # fmt: skip
    write_json_atomic(path, record)
    tick = time.perf_counter()
    try:
        result = stage.run(art)
    except BaseException as error:  # an interrupted cell or a crash: say so, keep what finished, re-raise
        record |= {"state": "failed", "finished": now(), "error": f"{type(error).__name__}: {error}"[:500]}
        write_json_atomic(path, record)
        raise
    seconds = round(time.perf_counter() - tick, 1)
    record |= {"state": "done", "finished": now(), "seconds": seconds, "packages": package_versions()}
    record.pop("pid")
    write_json_atomic(path, record)
    say(f"stage {stage.name}: done in {seconds:,.1f} s")
    return result


def _describe_previous(previous: dict | None, fp: Fingerprint) -> str:
    if previous is None:
        return "first run in this folder"
    if previous.get("fingerprint") != fp.digest:
        return (f"inputs changed since its last run ({', '.join(changed_parts(previous.get('parts'), fp.parts))}) — "
                "its work units recompute where their own inputs changed")  # fmt: skip
    if previous.get("state") != "done":
        return f"resuming a run that did not finish ({previous.get('state')}; finished work units are read back)"
    return "inputs unchanged since its last finished run — finished work is read back"


@dataclass(frozen=True)
class StageStatus:
    """One stage's standing in a profile's folder, as ``equal status`` prints it."""

    stage: str
    state: str  # "current", "stale", "failed", "interrupted", "running", "not run" or "waiting"
    why: str
    finished: str | None = None  # when it last finished
    seconds: float | None = None  # how long that run took
    work: str = ""  # finished work units, where the stage counts them


def stage_status(stages: list[Stage], art: Artifacts) -> list[StageStatus]:
    """Each stage's standing (in pipeline order), read from the records and the current parameters; runs nothing.
    A stage is stale when its parameters changed or an upstream stage is not current."""
    states: dict[str, str] = {}
    out = []
    for stage in stages:
        record = read_record(art, stage.name)
        fp = stage_fingerprint(stage, art)
        blocked = [u for u in stage.after if states.get(u, "current") != "current"]
        work = stage.finished_work(art) if hasattr(stage, "finished_work") else ""
        if record is None:
            state, why = ("waiting", f"on {', '.join(blocked)}") if blocked else ("not run", "no record in this folder")
        elif record.get("state") == "failed":
            state = "failed"
            why = f"{record.get('error')} at {record.get('finished')}: a re-run resumes from its work units"
        elif record.get("state") == "running":
            alive = _alive(record)
            state = "running" if alive else "interrupted"
            why = (
                f"since {record.get('started')} (pid {record.get('pid')})"
                if alive
                else f"started {record.get('started')}, never finished: a re-run resumes from its work units"
            )
        elif record.get("fingerprint") != fp.digest:
            changed = changed_parts(record.get("parts"), fp.parts)
            state, why = "stale", "changed: " + ", ".join(changed)
        elif blocked:
            state, why = "stale", f"upstream not current: {', '.join(blocked)}"
        else:
            state, why = "current", "inputs unchanged since it finished"
        states[stage.name] = state
        out.append(StageStatus(stage.name, state, why, record.get("finished") if record else None,
                               record.get("seconds") if record else None, work))  # fmt: skip
    return out


def _alive(record: dict) -> bool:
    """Whether the process a ``running`` record names is alive (on this host: another host's cannot be asked, and a
    folder copied from another machine holds no live process of this one)."""
    pid = record.get("pid")
    if not pid or record.get("host", socket.gethostname()) != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except PermissionError:  # it exists, owned by another user
        return True
    except (ProcessLookupError, ValueError):
        return False
    return True
