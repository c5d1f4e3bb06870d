"""``equal extract``: a JSONL of documents in, a JSONL of QA pairs (plus ledger and report) out."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from equal.config import extraction_settings
from equal.data.reading import ReadContext, iter_jsonl, require_str
from equal.errors import ConfigError
from equal.io import read_jsonl, write_jsonl_atomic
from equal.llm.backends import make_backend
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, ExtractionReport, QAExtractor, make_refiner, pairs_records
from equal.llm.ledger import REFERENCE_PARAMS, CostLedger
from equal.llm.prompts import PROMPTS
from equal.paths import llm_cache_path
from equal.weights import TINY_CHAT_MODEL, build_tiny_chat_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``equal extract``."""
    parser.add_argument("--input", required=True, help="JSONL of documents: 'id' and 'text' per line")
    parser.add_argument("--output", required=True, help="JSONL of QA pairs to write")
    parser.add_argument("--method", default="extraction", help="name charged in the ledger")
    add_backend_arguments(parser)
    parser.add_argument("--limit", type=int, help="only the first N documents")
    parser.add_argument(
        "--examples",
        help="with --refine: JSONL of reference items (question, solution) whose style refined solutions follow",
    )
    parser.add_argument(
        "--examples-kind",
        choices=["problem", "code"],
        default="problem",
        help="the kind of pair the --examples illustrate",
    )
    parser.add_argument("--cache", help="SQLite cache of LLM calls (default .cache/llm/calls.sqlite)")
    parser.add_argument("--reference-params", type=float, default=REFERENCE_PARAMS)
    parser.add_argument("--quiet", action="store_true")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The extractor's options (backend and decoding), shared by ``equal extract`` and ``equal select``. Each one
    left out keeps the default profile's setting (:func:`backend_spec`, :func:`extraction_spec`): one source."""
    parser.add_argument("--backend", choices=["llama_cpp", "transformers", "openai"],
                        help="default: the default profile's (llama_cpp)")  # fmt: skip
    parser.add_argument(
        "--model",
        help="llama_cpp: packaged model name or .gguf path; transformers: model folder or "
        f"'{TINY_CHAT_MODEL}'; openai: the server's model name (default: the default profile's)",
    )
    parser.add_argument("--base-url", help="openai: server URL, e.g. http://localhost:8000/v1")
    parser.add_argument("--api-key", help="openai: API key (default $OPENAI_API_KEY)")
    parser.add_argument("--concurrency", type=int, default=4, help="openai: requests in flight")
    parser.add_argument(
        "--response-format", default="json_object", choices=["json_schema", "json_object", "guided_json", "none"]
    )
    parser.add_argument("--n-params", type=float, default=0, help="openai: model parameters, for FLOPs")
    parser.add_argument("--n-ctx", type=int, help="context length (per document)")
    parser.add_argument("--batch-size", type=int, default=4, help="transformers: sequences per generate()")
    parser.add_argument("--n-parallel", type=int, help="llama_cpp: documents decoded together (1: one at a time)")
    parser.add_argument("--max-pairs", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--max-retries", type=int)
    parser.add_argument(
        "--refine",
        action="store_true",
        help="equal extract: refine and verify every pair (equal.llm.refine): worked solutions, working code",
    )
    parser.add_argument(
        "--refiner",
        help="the model that refines the pairs: a packaged llama.cpp model name or .gguf path, or 'same' for the "
        "extractor itself (default: the default profile's llm.refiner, else the extractor)",
    )
    parser.add_argument("--refine-attempts", type=int, help="refinement calls per pair at most")
    parser.add_argument("--refine-max-tokens", type=int, help="completion budget of a refinement call")
    parser.add_argument(
        "--refine-votes",
        type=int,
        help="programs written per problem (refine-v4): the answer is one at least --refine-min-agree of them print",
    )
    parser.add_argument("--refine-min-agree", type=int, help="programs that must print the same answer (refine-v4)")
    parser.add_argument("--refine-program-tokens", type=int, help="completion budget of a program (refine-v4)")
    parser.add_argument(
        "--refine-kinds",
        nargs="+",
        choices=["problem", "code", "concept"],
        help="the pair kinds to refine and keep (default: the default profile's, problem and code: a small refiner's "
        "explanations could not be verified; add concept for a prose task with a refiner you trust)",
    )
    parser.add_argument(
        "--refine-examples",
        type=int,
        help="reference solutions shown as style examples per problem or programming task (fewer: shorter, cheaper "
        "prompts)",
    )
    parser.add_argument(
        "--on-failure",
        choices=["drop", "keep_draft"],
        help="a pair no refinement attempt verifies: drop it or keep its draft",
    )
    parser.add_argument(
        "--quality-gate",
        choices=["drop", "keep"],
        help="pairs failing a hard check (repetition, token limit, unverified, broken code)",
    )
    parser.add_argument("--no-json-constraint", action="store_true")
    parser.add_argument("--prompt-version", choices=sorted(PROMPTS))
    parser.add_argument("--repeat-penalty", type=float, help="> 1 discourages repetition loops")
    parser.add_argument("--seed", type=int, default=0)


def extraction_spec(args: argparse.Namespace, base: dict | None = None) -> dict:
    """Extraction settings (:class:`~equal.llm.extract.ExtractionConfig` without the seed): ``base`` (default: the
    default profile's) with the options given on the command line."""
    base = extraction_settings()[1] if base is None else base
    given = {"max_pairs": args.max_pairs, "max_tokens": args.max_tokens, "max_retries": args.max_retries,
             "quality_gate": args.quality_gate, "prompt_version": args.prompt_version,
             "repeat_penalty": args.repeat_penalty}  # fmt: skip
    spec = {**base, **{key: value for key, value in given.items() if value is not None}}
    if args.no_json_constraint:
        spec["constrain_json"] = False
    return spec


def refinement_spec(args: argparse.Namespace) -> dict | None:
    """Refinement settings from the command line (None without ``--refine``): the default profile's, with the
    options given."""
    if not args.refine:
        return None
    settings = {k: v for k, v in extraction_settings()[2].items() if k not in ("examples_from", "enabled")}
    return {**settings, "seed": args.seed, **refinement_overrides(args)}


def refinement_overrides(args: argparse.Namespace) -> dict:
    """The refinement options given on the command line (``--refine-*``, ``--on-failure``), those left out absent:
    what ``equal extract`` and ``equal select`` lay over the default profile's refinement."""
    given = {"attempts": args.refine_attempts, "max_tokens": args.refine_max_tokens, "on_failure": args.on_failure,
             "examples": args.refine_examples, "votes": args.refine_votes, "min_agree": args.refine_min_agree,
             "program_tokens": args.refine_program_tokens, "kinds": args.refine_kinds}  # fmt: skip
    return {key: value for key, value in given.items() if value is not None}


def with_refiner(spec: dict, refiner: str | None) -> dict:
    """``spec`` with the refiner ``--refiner`` names: ``same`` (the extractor refines its own pairs) or a llama.cpp
    model, decoded like the extractor; None keeps the spec's own."""
    if refiner is None:
        return spec
    spec = {key: value for key, value in spec.items() if key != "refiner"}
    # "same" is an explicit None, not a missing key: merged over a profile that names a refiner, it must still win
    own = {key: value for key, value in spec.items() if key != "executor"}
    spec["refiner"] = None if refiner == "same" else own | {"model": refiner}
    return spec


def backend_spec(args: argparse.Namespace, base: dict | None = None) -> dict:
    """The backend: ``base`` (default: the default profile's extractor) with the options given; another
    ``--backend`` than the base's starts from that backend's own defaults."""
    base = extraction_settings()[0] if base is None else base
    kind = args.backend or base["kind"]
    start = dict(base) if kind == base["kind"] else {"kind": kind}
    if kind == "llama_cpp":
        given = {"model": args.model, "n_ctx": args.n_ctx, "n_parallel": args.n_parallel}
        spec = {**start, **{key: value for key, value in given.items() if value is not None}, "seed": args.seed}
        spec.setdefault("model", "qwen2.5-coder-0.5b-instruct")
        return with_refiner(spec, getattr(args, "refiner", None))
    if kind == "transformers":
        if not args.model and "model_dir" not in start:
            raise ConfigError("--backend transformers needs --model: a model folder or " + repr(TINY_CHAT_MODEL))
        folder = build_tiny_chat_model() if args.model == TINY_CHAT_MODEL else (args.model or start["model_dir"])
        return {**start, "kind": "transformers", "model_dir": folder, "batch_size": args.batch_size}
    if not args.model:
        raise ConfigError("--backend openai needs --model: the server's model name")
    return {
        "kind": "openai",
        "base_url": args.base_url,
        "model": args.model,
        "api_key": args.api_key,
        "concurrency": args.concurrency,
        "response_format": args.response_format,
        "n_params": int(args.n_params),
        "context_length": args.n_ctx or 2048,
    }


def run(args: argparse.Namespace) -> int:
    """Extract, then write the pairs, a per-document outcome file, the ledger and a summary."""
    ctx = ReadContext(on_error="raise")
    docs = []
    for line_no, obj in iter_jsonl(Path(args.input), ctx):
        text = require_str(obj, "text", Path(args.input), line_no, ctx)
        docs.append({**obj, "id": str(obj.get("id", f"line-{line_no}")), "text": text})
        if args.limit and len(docs) >= args.limit:
            break
    backend = make_backend(backend_spec(args))
    config = ExtractionConfig(seed=args.seed, **extraction_spec(args))
    output = Path(args.output)
    ledger = CostLedger(output.with_suffix(".ledger.jsonl"), reference_params=args.reference_params)
    cache = CallCache(llm_cache_path(args.cache))
    report = ExtractionReport()
    refinement = refinement_spec(args)
    if refinement and args.examples:
        refinement["examples_from"] = {args.examples_kind: "examples"}
    examples = (lambda _name: read_jsonl(Path(args.examples))) if args.examples else None
    refiner = make_refiner({}, refinement, cache, backend, examples)
    results = QAExtractor(backend, cache, config, refiner).extract(docs, args.method, ledger, not args.quiet, report)
    write_jsonl_atomic(output, pairs_records(results, docs, args.method))
    write_jsonl_atomic(
        output.with_suffix(".documents.jsonl"),
        (
            {
                "doc_id": r.doc_id,
                "status": r.status,
                "reason": r.reason,
                "pairs": len(r.pairs),
                "calls": r.calls,
                "cached_calls": r.cached_calls,
                "truncated": r.truncated,
                "refined": r.refined,
            }
            for r in results
        ),
    )
    ledger.write_summary(
        output.with_suffix(".summary.json"),
        {
            "report": report.as_dict(),
            "backend": backend.model_id,
            "prompt_version": config.prompt_version,
            "config": asdict(config),
            "refinement": refiner.identity if refiner is not None else None,
        },
    )
    print(
        f"{report.documents} documents → {report.pairs} pairs ({dict(report.outcomes)}); "
        f"{report.new_calls} new calls, {report.cached_calls} from cache; well-formed {report.well_formed_share:.0%}"
    )
    print(
        f"wrote {output}, {output.with_suffix('.documents.jsonl').name}, "
        f"{output.with_suffix('.ledger.jsonl').name}, {output.with_suffix('.summary.json').name}"
    )
    return 0
