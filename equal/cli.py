"""The ``equal`` command line.

``equal reproduce --profile default``  run the notebooks (same as ``make reproduce``)
``equal select --corpus C --reference R --out DIR``  your corpus + your task → an instruction dataset
``equal prepare-data --out DIR``        prepare a corpus without Jupyter (your own JSONL too)
``equal extract --input D --output P``  extract QA pairs from a JSONL of documents with any backend
``equal export-answers --profile P``    ship the LLM answers a profile's results were computed from
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from equal.errors import ConfigError, EqualError


def _prepare(args: argparse.Namespace) -> int:
    from equal.data.corpus import CorpusConfig, prepare_data
    from equal.paths import raw_data_dir

    user = [{"path": p, "name": Path(p).name.split(".")[0], "domain": args.domain, "text_field": args.text_field}
            for p in args.corpus]  # fmt: skip
    config = CorpusConfig(
        raw_dir=raw_data_dir(args.raw_data_dir),
        out_dir=Path(args.out),
        seed=args.seed,
        sources=[] if args.no_builtin else None,
        user_corpus=user,
        max_documents=args.max_documents,
        on_error=args.on_error,
        fetch_missing=args.fetch_missing,
    )
    prepared = prepare_data(config, force=args.force)
    print(prepared.stats.to_string(index=False))
    print(
        f"\n{prepared.meta['documents']} documents → {prepared.corpus_path}"
        + (" (cached)" if prepared.from_cache else "")
    )
    return 0


def select_refinement(args: argparse.Namespace) -> dict | None:
    """``equal select``'s refinement settings from the command line: off (``--no-refine``), or overrides of the
    default profile's (None: none given)."""
    from equal.llm.cli import refinement_overrides

    if args.no_refine:
        return {"enabled": False}
    return refinement_overrides(args) or None


#: ``equal select``'s options that are settings of :class:`~equal.workflow.SelectConfig` (same names)
_SELECT_FIELDS = ("corpus", "reference", "out", "budget", "method", "task", "evaluation", "reference_size", "fields",
                  "text_field", "id_field", "source_field", "embedder", "warmup_fraction", "arms_per_round",
                  "docs_per_pull", "seed", "on_error")  # fmt: skip


def select_config(args: argparse.Namespace, given: set[str]):
    """``equal select``'s settings: a ``--config`` file's (YAML or JSON; ``select.json`` repeats a run), the options
    given on the command line over them (``given``: their names), the defaults for the rest."""
    from equal.config import extraction_settings
    from equal.llm.cli import backend_spec, extraction_spec
    from equal.workflow import SelectConfig

    settings = _read_select_config(Path(args.config)) if args.config else {}
    cli = {name: getattr(args, name) for name in _SELECT_FIELDS}
    cli["fields"] = dict(item.split("=", 1) for item in args.fields) if args.fields else {}
    values = {**{k: v for k, v in cli.items() if k not in settings}, **settings,
              **{k: v for k, v in cli.items() if k in given}}  # fmt: skip
    missing = [f"--{name}" for name in ("corpus", "reference", "out") if not values.get(name)]
    if missing:
        raise ConfigError(f"equal select needs {', '.join(missing)} (on the command line or in --config)")
    corpus = values["corpus"]
    values["corpus"] = [Path(p) for p in (corpus if isinstance(corpus, list) else [corpus])]
    for name in ("reference", "out", "evaluation"):
        values[name] = Path(values[name]) if values.get(name) else None
    values["task"] = values.get("task") or ""
    llm, extraction, _ = extraction_settings()
    values["llm"] = backend_spec(args, settings.get("llm") or llm)
    values["extraction"] = extraction_spec(args, {**extraction, **(settings.get("extraction") or {})})
    overrides = select_refinement(args)
    refinement = {**(settings.get("refinement") or {}), **(overrides or {})}
    refinement.pop("examples_from", None)  # drawn again from the reference set
    values["refinement"] = refinement or None
    return SelectConfig(**values, progress=not args.quiet)


def _read_select_config(path: Path) -> dict:
    """The settings of a ``--config`` file: YAML (or JSON, e.g. a run's ``select.json``, whose ``settings`` it
    reads); an unknown setting is an error naming it."""
    import yaml

    from equal.workflow import SelectConfig

    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"--config {path}: not YAML or JSON ({error})") from error
    settings = loaded.get("settings", loaded) if isinstance(loaded, dict) else None
    if not isinstance(settings, dict):
        raise ConfigError(f"--config {path}: expected a mapping of settings, got {type(loaded).__name__}")
    known = set(SelectConfig.__dataclass_fields__) - {"progress"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"--config {path}: unknown settings {unknown}; known: {sorted(known)}")
    return settings


def _given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations of the options written on the command line ``argv``."""
    written = {word.split("=", 1)[0] for word in argv if word.startswith("--")}
    return {action.dest for action in parser._actions if written & set(action.option_strings)}


def _select(args: argparse.Namespace, given: set[str]) -> int:
    import json

    from equal.workflow import run_select

    outcome = run_select(select_config(args, given), dry_run=args.dry_run)
    if args.dry_run:
        print("plan (no LLM call made):\n" + json.dumps(outcome, indent=2))
        return 0
    paid = outcome.cost["paid"]
    cost = outcome.cost
    print(f"{outcome.pairs:,} QA pairs from {cost['documents_extracted']:,} documents "
          f"({cost['llm_calls']:,} calls, {cost['tokens']:,} tokens charged to the method; "
          f"{paid['calls'] + paid['failed_calls']:,} calls, {paid['tokens']:,} tokens paid in all) "
          f"→ {outcome.out} ({outcome.resumed})")  # fmt: skip
    return 0


def _export_answers(args: argparse.Namespace) -> int:
    import re

    from equal.llm.answers import export_answers
    from equal.llm.backends import llama_cpp_model_id
    from equal.llm.prompts import PROMPT_VERSION
    from equal.paths import REPO_ROOT, llm_cache_path
    from equal.profiles import load_profile, profile_path

    profile = load_profile(args.profile)
    llm = profile["common"]["llm"]
    model_id = args.model_id or (llama_cpp_model_id(llm) if llm["kind"] == "llama_cpp" else None)
    if not model_id:
        raise EqualError(f"--model-id is needed for a {llm['kind']} extractor")
    out = Path(args.out or REPO_ROOT / "answers" / f"{profile['name']}.jsonl.gz")
    version = profile["common"].get("extraction", {}).get("prompt_version", PROMPT_VERSION)
    # the answers the profile's results were computed from: those it already ships (with any calls its runs added
    # to them, e.g. another profile's ratings on the same corpus) or else the local cache
    from equal.pipeline import shipped_answers_cache

    source = llm_cache_path(args.cache) if args.cache else shipped_answers_cache(profile) or llm_cache_path()
    also = []  # the refinement's calls: the refiner (llm.refiner, else the extractor) under its own prompt version
    refinement = profile["common"].get("refinement") or {}
    if refinement and refinement.get("enabled", True):
        from equal.llm.refine import RefinementConfig

        refiner = llm.get("refiner")
        refiner_id = (llama_cpp_model_id(refiner) if refiner and refiner["kind"] == "llama_cpp"
                      else (refiner or {}).get("model", model_id))  # fmt: skip
        also.append((refiner_id, refinement.get("prompt_version", RefinementConfig.prompt_version)))
    done = export_answers(source, out, model_id, version, also)
    relative = out.resolve().relative_to(REPO_ROOT) if out.resolve().is_relative_to(REPO_ROOT) else out
    line = f"llm_answers: {{file: {relative}, sha256: {done['sha256']}}}"
    path = profile_path(args.profile)  # the profile file named on the command line records the new archive
    text = path.read_text(encoding="utf-8")
    text, replaced = re.subn(r"(?m)^llm_answers:.*$", line, text)
    path.write_text(text if replaced else text.rstrip("\n") + "\n" + line + "\n", encoding="utf-8")
    print(f"{done['answers']:,} answers of {model_id} ({version}) → {out}\nsha256 {done['sha256']} "
          f"written to {path.name}")  # fmt: skip
    return 0


def _status(args: argparse.Namespace) -> int:
    """``equal status``: each stage's standing in the profile's folders, from its record and current settings."""
    from equal.artifacts import Artifacts
    from equal.config import load_config
    from equal.stage import stage_status
    from equal.stages import profile_stages

    config = load_config(args.profile)
    common = config.common
    art = Artifacts.for_profile(config.profile, common.data_dir, common.results_dir, common.figures_dir)
    rows = stage_status(profile_stages(config, art), art)
    print(f"profile {config.profile}: stages recorded in {art.data / 'stages'}")
    width = max(len(r.stage) for r in rows)
    for row in rows:
        when = f"; finished {row.finished} in {row.seconds:,.0f} s" if row.finished and row.seconds is not None else ""
        work = f" [{row.work}]" if row.work else ""
        print(f"  {row.stage:<{width}}  {row.state:<11}  {row.why}{when}{work}")
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``equal`` command line and its sub-commands' parsers, by name."""
    parser = argparse.ArgumentParser(
        prog="equal", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    reproduce = commands.add_parser("reproduce", help="run the numbered notebooks for a profile")
    reproduce.add_argument("--profile", default="default")
    reproduce.add_argument("--only", nargs="*")
    reproduce.add_argument("--fresh-extraction", action="store_true", help="ignore shipped LLM answers")
    export = commands.add_parser("export-answers", help="archive a profile's LLM answers for reproducible reruns")
    export.add_argument("--profile", default="default")
    export.add_argument("--out", help="archive path (default answers/<profile>.jsonl.gz)")
    export.add_argument(
        "--cache",
        help="LLM cache to read (default: the cache of the answers the profile ships, else .cache/llm/calls.sqlite)",
    )
    export.add_argument("--model-id", help="the extractor's model identity (derived for packaged GGUF models)")
    status = commands.add_parser("status", help="per stage of a profile: finished and current, stale (and why), "
                                 "interrupted or not run; runs nothing")  # fmt: skip
    status.add_argument("--profile", default="default", help="a profile's name or a profile file")
    prep = commands.add_parser("prepare-data", help="verify, parse, dedup and decontaminate a corpus")
    prep.add_argument("--out", required=True, help="output folder")
    prep.add_argument("--raw-data-dir", help="folder with MANIFEST.json and raw/ (default ../shared/data)")
    prep.add_argument("--corpus", nargs="*", default=[],
                      help="your own corpora: JSONL, .jsonl.gz, Parquet files or folders of them")  # fmt: skip
    prep.add_argument("--text-field", default="text", help="the field holding each document's text")
    prep.add_argument("--domain", default="unknown", help="domain label of --corpus documents")
    prep.add_argument("--no-builtin", action="store_true", help="use only --corpus, not the embedded sources")
    prep.add_argument("--max-documents", type=int, default=None)
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--on-error", choices=["raise", "skip"], default="raise")
    prep.add_argument("--fetch-missing", action="store_true")
    prep.add_argument("--force", action="store_true")
    select = commands.add_parser("select", help="select and extract instruction data for your task from your corpus")
    select.add_argument("--config", help="a YAML (or JSON) file of settings, e.g. a run's select.json to repeat it; "
                        "options given on the command line win")  # fmt: skip
    select.add_argument("--corpus", nargs="+", help="JSONL, .jsonl.gz or Parquet files, or folders (required)")
    select.add_argument("--reference", help="your task's reference set: JSONL, a question and a solution per line "
                        "(required)")  # fmt: skip
    select.add_argument("--out", help="output folder (re-run with the same folder to resume; required)")
    select.add_argument("--budget", type=float, default=0.05, help="share of the corpus to extract (γ)")
    select.add_argument("--method", default="EQUAL", help="EQUAL, Random, All, Uniform, ... (equal.select.methods)")
    select.add_argument("--task", help="the task's name (default: the reference file's name)")
    select.add_argument("--evaluation", help="your task's evaluation items: kept out of the corpus and of D_r")
    select.add_argument("--reference-size", type=int, help="draw this many reference items (default: all)")
    select.add_argument("--fields", nargs="*", help="field names of the reference file, e.g. question=problem "
                        "solution=answer")  # fmt: skip
    select.add_argument("--text-field", default="text", help="the field holding each document's text")
    select.add_argument("--id-field", default="id", help="the field naming each record (kept in every pair)")
    select.add_argument("--source-field", default="source", help="the field naming each record's source")
    select.add_argument("--embedder", default="all-MiniLM-L6-v2", help="packaged name or a local folder")
    select.add_argument("--warmup-fraction", type=float, default=0.05)
    select.add_argument("--arms-per-round", type=int, default=4, help="clusters pulled per round (one LLM batch)")
    select.add_argument("--docs-per-pull", type=int, default=1, help="documents per pulled cluster")
    select.add_argument("--on-error", choices=["raise", "skip"], default="raise")
    select.add_argument("--dry-run", action="store_true", help="print the plan and estimated cost, call nothing")
    select.add_argument(
        "--no-refine",
        action="store_true",
        help="keep the pairs as extracted (default: refine and verify them, as the default profile)",
    )
    select.add_argument("--quiet", action="store_true", help="only the final summary and errors")
    from equal.llm.cli import add_arguments, add_backend_arguments

    add_backend_arguments(select)
    add_arguments(commands.add_parser("extract", help="extract QA pairs from documents with an LLM"))
    return parser, dict(commands.choices)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``equal`` console script."""
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "extract":
            from equal.llm.cli import run

            return run(args)
        if args.command == "reproduce":
            from equal.pipeline import main as pipeline_main

            return pipeline_main(["--profile", args.profile, *(["--only", *args.only] if args.only else []),
                                  *(["--fresh-extraction"] if args.fresh_extraction else [])])  # fmt: skip
        if args.command == "export-answers":
            return _export_answers(args)
        if args.command == "status":
            return _status(args)
        if args.command == "select":
            return _select(args, _given_options(commands["select"], argv if argv is not None else sys.argv[1:]))
        return _prepare(args)
    except EqualError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # every answered call is in the cache and every finished round in the log: nothing is lost
        print("\ninterrupted — run the same command again to resume where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
