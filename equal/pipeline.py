"""Run the numbered notebooks headlessly with papermill, in order, for one profile.

``python -m equal.pipeline --profile default`` (what ``make reproduce`` calls) executes
``notebooks/NN_*.ipynb`` with the profile's parameters, saves each executed notebook under
``results/<profile>/notebooks/`` and records the run in ``results/<profile>/run_info.json``.
A failing notebook stops the run and its failing cell's error is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import papermill as pm
from papermill.exceptions import PapermillExecutionError

from equal.config import STAGES, config_from_profile, stage_keys, stage_parameters
from equal.errors import EqualError
from equal.io import write_json_atomic
from equal.llm.answers import open_answers
from equal.paths import ENV_LLM_CACHE, REPO_ROOT, cache_dir, data_dir, figures_dir, from_repo_root, results_dir
from equal.profiles import load_profile, profile_path
from equal.progress import ENV_PROGRESS
from equal.provenance import environment, git_state, now, package_versions, portable_path

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
_NUMBERED = re.compile(r"^\d{2}_[\w-]+\.ipynb$")


class NotebookFailed(EqualError):
    """A notebook raised an error; the message names the notebook, the cell and the error."""


def numbered_notebooks(folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The pipeline's notebooks (``NN_name.ipynb``) in execution order."""
    return sorted(p for p in folder.iterdir() if _NUMBERED.match(p.name))


def stage_overrides(overrides: dict, stage: str) -> dict:
    """The overrides of a run that ``stage`` reads (keys of its section or of ``common``); a key no stage reads is an
    error, so a misspelt override is not silently ignored."""
    unknown = sorted(set(overrides).difference(*(stage_keys(name) for name in STAGES)))
    if unknown:
        raise EqualError(f"overrides {unknown}: no stage has such a setting")
    return {key: value for key, value in overrides.items() if key in stage_keys(stage)}


def notebook_stage(notebook: Path) -> str:
    """The stage a notebook tells the story of, as its metadata names it (``metadata.equal.stage``): the notebook
    is given that stage's parameters, so renaming a notebook changes nothing in the configuration."""
    metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    stage = (metadata.get("equal") or {}).get("stage")
    if stage not in STAGES:
        raise EqualError(f"{notebook}: metadata.equal.stage is {stage!r}; a pipeline notebook names one of "
                         f"{', '.join(STAGES)}")  # fmt: skip
    return stage


def _failure_message(notebook: Path, output: Path, error: PapermillExecutionError) -> str:
    trace = "\n".join(error.traceback[-8:]) if error.traceback else ""
    trace = re.sub(r"\x1b\[[0-9;]*m", "", trace)  # strip ANSI colours for logs
    return (
        f"notebook {notebook.name} failed in cell {error.exec_count} ({error.ename}: {error.evalue})\n"
        f"executed notebook with outputs: {output}\n{trace}"
    )


def run_profile(
    profile_name: str,
    only: list[str] | None = None,
    overrides: dict | None = None,
    results_override: str | Path | None = None,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    log_output: bool = True,
    fresh_extraction: bool = False,
) -> dict:
    """Execute the profile's notebooks in order and return the run record written to run_info.json.

    ``only`` restricts the run to notebooks whose stem starts with one of the given prefixes
    (``["01"]``); ``overrides`` are extra parameters for every notebook (tests use them to
    redirect outputs); ``results_override`` moves ``results/<profile>``. A profile that ships its
    LLM answers (``llm_answers``) is run from them; ``fresh_extraction`` extracts from scratch
    instead, into ``data/``, ``results/`` and ``paper_figures/<profile>-fresh``.
    """
    profile = load_profile(profile_name)
    config_from_profile(profile, profile_path(profile_name))  # every key checked before any notebook starts
    # what a notebook loads: a built-in profile by name, any other by its absolute path (notebooks run in notebooks/)
    source = (
        profile_name
        if Path(str(profile_name)).suffix not in (".yaml", ".yml")
        else str(profile_path(profile_name).resolve())
    )
    overrides = dict(overrides or {})
    if results_override is not None:
        overrides["results_dir"] = str(results_override)
    if fresh_extraction:
        for key, folder in (("data_dir", data_dir), ("results_dir", results_dir), ("figures_dir", figures_dir)):
            overrides.setdefault(key, str(folder(f"{profile['name']}-fresh")))
    answers = shipped_answers_cache(profile) if not fresh_extraction else None
    # every notebook's kernel inherits these: the shipped answers, and text progress bars for the log
    settings = {ENV_PROGRESS: "text", **({ENV_LLM_CACHE: str(answers)} if answers is not None else {})}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        return _run_notebooks(profile, source, only, overrides, notebooks_dir, log_output, answers)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def shipped_answers_cache(profile: dict) -> Path | None:
    """The verified cache of the profile's shipped LLM answers (None when it ships none)."""
    spec = profile.get("llm_answers")
    if not spec:
        return None
    archive = Path(from_repo_root(spec["file"])).expanduser()
    cache = open_answers(archive, spec["sha256"], cache_dir() / "llm")
    print(f"LLM answers: {portable_path(archive)} (sha256 verified) — FRESH=1 re-extracts instead", flush=True)
    return cache


def stage_times(executed: Path) -> dict[str, float]:
    """Seconds per stage of an executed notebook: papermill's per-cell durations, summed under the section heading
    (the last Markdown heading) each cell belongs to; cells before the first heading are "setup"."""
    if not executed.is_file():
        return {}
    stages: dict[str, float] = {}
    stage = "setup"
    for cell in json.loads(executed.read_text(encoding="utf-8")).get("cells", []):
        source = "".join(cell.get("source", []))
        headings = [line.lstrip("#").strip() for line in source.splitlines() if line.startswith("#")]
        if cell.get("cell_type") == "markdown" and headings:
            stage = headings[-1]
        duration = (cell.get("metadata", {}).get("papermill") or {}).get("duration")
        if cell.get("cell_type") == "code" and duration:
            stages[stage] = round(stages.get(stage, 0.0) + float(duration), 1)
    return stages


def _run_notebooks(profile: dict, source: str, only, overrides: dict, notebooks_dir: Path, log_output: bool,
                   answers) -> dict:  # fmt: skip
    # the folder the notebooks write to: an override, else the profile's own (relative to the repository root)
    folder = overrides.get("results_dir") or profile["common"].get("results_dir")
    out_dir = results_dir(profile["name"], from_repo_root(folder))
    (out_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    info_path = out_dir / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info.update(
        {
            "profile": profile["name"],
            "profile_description": profile.get("description", ""),
            "results_dir": portable_path(out_dir),
            "seed": profile["common"].get("seed"),
            "started": now(),
            "git": git_state(),
            "environment": environment(),
            "packages": package_versions(),
            "llm_answers": portable_path(answers) if answers else "extracted in this run (local cache)",
        }
    )
    info.setdefault("notebooks", {})
    notebooks = [nb for nb in numbered_notebooks(notebooks_dir) if not only or any(nb.stem.startswith(p) for p in only)]
    if not notebooks:
        raise EqualError(f"no notebooks match {only} in {notebooks_dir}")
    run_started = time.perf_counter()
    info["last_run"] = [nb.stem for nb in notebooks]
    for notebook in notebooks:
        stage = notebook_stage(notebook)
        # a notebook is given its profile and the overrides of this run that its stage reads; it loads its settings
        params = {"profile": source, "overrides": stage_overrides(overrides, stage)}
        output = out_dir / "notebooks" / notebook.name
        print(f"▶ {notebook.name} [{profile['name']}]", flush=True)
        tick = time.perf_counter()
        settings = {**stage_parameters(profile, stage), **params["overrides"]}
        record = {"parameters": settings, "started": now(), "output": str(output.relative_to(out_dir))}
        try:
            pm.execute_notebook(
                notebook,
                output,
                parameters=params,
                cwd=str(notebooks_dir),
                kernel_name="python3",
                log_output=log_output,
                progress_bar=False,
            )
            record["status"] = "ok"
        except PapermillExecutionError as error:
            record["status"] = f"failed: {error.ename}: {error.evalue}"
            raise NotebookFailed(_failure_message(notebook, output, error)) from None
        finally:
            record["wall_time_s"] = round(time.perf_counter() - tick, 1)
            record["stages_s"] = stage_times(output)  # where the time went (the slow stages of a cold run)
            info["notebooks"][notebook.stem] = record
            info["finished"] = now()
            info["last_run_wall_time_s"] = round(time.perf_counter() - run_started, 1)
            write_json_atomic(info_path, info)
        print(f"✔ {notebook.name} in {record['wall_time_s']:.1f} s", flush=True)
    complete = len(notebooks) == len(numbered_notebooks(notebooks_dir))
    if complete and profile["name"] in ("default", "baselines") and out_dir == results_dir(profile["name"]):
        from equal.report.readme import update_readme  # the README's generated blocks follow the results

        update_readme(profile["name"])
    return info


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m equal.pipeline --profile default [--only 01 02]``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help="smoke, default, full, paper, or a path to a YAML profile")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name starts with these prefixes")
    parser.add_argument("--results-dir", help="write results here instead of results/<profile>")
    parser.add_argument("--quiet", action="store_true", help="do not stream notebook output")
    parser.add_argument(
        "--fresh-extraction",
        action="store_true",
        help="ignore the profile's shipped LLM answers: extract again, into <profile>-fresh folders",
    )
    args = parser.parse_args(argv)
    try:
        info = run_profile(args.profile, only=args.only, results_override=args.results_dir, log_output=not args.quiet,
                           fresh_extraction=args.fresh_extraction)  # fmt: skip
    except EqualError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    where = Path(info["results_dir"]) / "run_info.json"
    print(f"done: {len(info['last_run'])} notebook(s), {info['last_run_wall_time_s']:.1f} s; run record in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
