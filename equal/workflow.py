"""``equal select``: your corpus + your task's reference set + a budget → an instruction-tuning dataset.

The notebooks' stages 01-04 without Jupyter, for one target: prepare the corpus (dedup, decontamination
against the task's evaluation items), warm up and cluster the embeddings, run one selection method, and
write to the output folder:

==========================  ====================================================================
``pairs.jsonl``             the selected QA pairs in chat ``messages`` form (with provenance)
``dataset/``                the same as a Hugging Face ``datasets`` dataset (``save_to_disk``)
``README.md``               a dataset card: method, budget, seed, extractor, prompt version, counts, cost
``cost.json``               documents, calls, tokens, FLOPs (extractor and the 72B reference), wall time
``selection_log.csv``       every pull of the bandit (cluster, round, documents, reward)
``work/``                   the stages' files and the LLM call cache: a re-run resumes from them
==========================  ====================================================================

Every stage resumes: preparation, the warm-up's tuned embedder and the clustering are read back when
their inputs are unchanged, every LLM answer is cached in ``work/llm_calls.sqlite`` as it arrives, and
the bandit replays its round log. Killed and re-run, it finishes with the same dataset and no paid call
repeated.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from equal import paths
from equal.artifacts import Artifacts
from equal.config import SelectionSettings, WarmupSettings, extraction_settings, load_config
from equal.errors import ConfigError
from equal.fingerprint import fingerprint, reuse_or_reset
from equal.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
from equal.llm.ledger import REFERENCE_PARAMS, inference_flops
from equal.llm.prompts import PROMPT_VERSION
from equal.profiles import DEFAULT_PROFILE, deep_merge
from equal.stage import run_stage
from equal.stages import ClusteringStage, DataStage, WarmupStage


@dataclass
class SelectConfig:
    """Everything ``equal select`` needs; the defaults are the default profile's."""

    corpus: list[Path]  # JSONL, .jsonl.gz or Parquet files, or folders of them
    reference: Path  # the task's reference set: JSONL with a question and a solution per line
    out: Path
    budget: float = 0.05  # γ: share of the (prepared) corpus the method may extract
    method: str = "EQUAL"
    task: str = ""  # the task's name (default: the reference file's stem)
    evaluation: Path | None = None  # the task's evaluation items: kept out of the corpus and out of D_r
    reference_size: int | None = None  # D_r drawn from the reference file (None: all of it)
    fields: dict[str, str] = field(default_factory=dict)  # e.g. {"question": "problem", "solution": "answer"}
    text_field: str = "text"  # the corpus records' text field
    id_field: str = "id"  # the field naming each record (kept as metadata.id: a pair's way back to its record)
    source_field: str = "source"  # the field naming each record's source (metadata.source; the card's shares)
    # the extractor and its extraction settings (None: the default profile's, as the notebooks run them)
    llm: dict | None = None
    extraction: dict | None = None
    # overrides of the default profile's refinement (None: none), its style examples drawn from your reference set;
    # {"enabled": False} turns refinement off
    refinement: dict | None = None
    embedder: str = "all-MiniLM-L6-v2"
    warmup_fraction: float = 0.05
    pulls_per_cluster: int = 5  # k is capped so the bandit can pull each cluster this often on average
    arms_per_round: int = 4  # clusters pulled per round (one batch of extraction calls)
    docs_per_pull: int = 1  # documents per pulled cluster (the authors' code: 10)
    seed: int = 0
    on_error: str = "raise"  # bad corpus records: raise (file:line) or skip and count
    progress: bool = True

    @property
    def task_name(self) -> str:
        """The task's name in file names and tables."""
        return self.task or Path(self.reference).name.split(".")[0]


@dataclass
class SelectOutcome:
    """What ``equal select`` produced."""

    out: Path
    pairs: int
    cost: dict
    resumed: str  # how the run started: "fresh", or what it resumed from


def task_declaration(config: SelectConfig) -> dict:
    """The reference file (and evaluation file) declared as a target task (see :mod:`equal.data.tasks`)."""
    reference = Path(config.reference).resolve()
    if not reference.is_file():
        raise ConfigError(f"--reference {reference}: no such file")
    with open(reference, encoding="utf-8") as handle:
        n_items = sum(1 for line in handle if line.strip())
    size = n_items if config.reference_size is None else config.reference_size
    declaration = {"domain": "target", "metric": "free_text", "files": {"reference": str(reference)},
                   "fields": dict(config.fields),
                   "reference": {"split": "reference", "size": size, "heldout": 0}}  # fmt: skip
    if config.evaluation is not None:
        evaluation = Path(config.evaluation).resolve()
        if not evaluation.is_file():
            raise ConfigError(f"--evaluation {evaluation}: no such file")
        declaration["files"]["evaluation"] = str(evaluation)
        declaration["evaluation"] = {"split": "evaluation"}
    return {config.task_name: declaration}


def with_profile_settings(config: SelectConfig) -> SelectConfig:
    """``config`` with the default profile's extractor and extraction settings where it gives none (one source:
    ``equal select`` extracts as the notebooks do)."""
    llm, extraction, _ = extraction_settings()
    # the profiles' own merge: a backend of another kind replaces the profile's whole
    return replace(config, llm=deep_merge(llm, config.llm or {}),
                   extraction=deep_merge(extraction, config.extraction or {}))  # fmt: skip


def _default_stages() -> tuple[SelectionSettings, WarmupSettings]:
    config = load_config(DEFAULT_PROFILE)
    return config.selection, config.warmup


def refinement_settings(config: SelectConfig, reference: list[dict]) -> dict:
    """The refinement ``equal select`` runs: the default profile's settings updated by ``config.refinement``, with the
    user's reference set as the style examples of the pair kind it illustrates (code or problems)."""
    from equal.llm.quality import code_blocks

    settings = {**extraction_settings()[2], **(config.refinement or {})}
    if not settings or not settings.get("enabled", True):
        return {"enabled": False}
    solutions = [r.get("solution") or r.get("answer") or "" for r in reference]
    code = sum(bool(code_blocks(s)) or "def " in s for s in solutions) > len(solutions) / 2
    settings["examples_from"] = {"code" if code else "problem": config.task_name}
    return settings


def _prepare(config: SelectConfig, art: Artifacts):
    from equal.data.corpus import CorpusConfig

    names = [f"corpus{i}" if len(config.corpus) > 1 else "corpus" for i in range(len(config.corpus))]
    user = [{"path": str(Path(p).resolve()), "name": name, "domain": "unknown", "text_field": config.text_field,
             "id_field": config.id_field, "source_field": config.source_field}
            for name, p in zip(names, config.corpus, strict=True)]  # fmt: skip
    corpus_config = CorpusConfig(raw_dir=paths.raw_data_dir(), out_dir=art.data, seed=config.seed, sources=[],
                                 user_corpus=user, max_documents=None, tasks=task_declaration(config),
                                 builtin_tasks=False, on_error=config.on_error, progress=config.progress)  # fmt: skip
    return run_stage(DataStage(corpus_config), art, progress=config.progress)


def _warmup(config: SelectConfig, art: Artifacts, extractor, refinement: dict, warmup: WarmupSettings,
            device: str | None = None) -> float:  # fmt: skip
    """The warm-up stage (:class:`equal.stages.WarmupStage`) with the default profile's settings, sharing the loaded
    extractor; returns the extraction's documents per minute."""
    from equal.embed.warmup import WarmupConfig

    keys = ("holdout_fraction", "range_min", "range_max", "num_negatives", "temperature", "learning_rate", "epochs",
            "batch_size")  # fmt: skip
    warm_config = WarmupConfig(fraction=config.warmup_fraction, seed=config.seed,
                               **{k: getattr(warmup, k) for k in keys})  # fmt: skip
    stage = WarmupStage(warm_config, config.embedder, config.llm, config.extraction, refinement,
                        search_whole_corpus=False, extractor=extractor, device=device,
                        progress=config.progress)  # fmt: skip
    return run_stage(stage, art, progress=config.progress).documents_per_minute


def _cluster(config: SelectConfig, art: Artifacts, corpus: list[dict], budget_docs: int,
             device: str | None = None) -> int:  # fmt: skip
    """Stage 03 (:func:`equal.embed.stages.clustering_stage`) with the default profile's settings, k capped so the
    bandit can pull each cluster ``pulls_per_cluster`` times within the budget; read back when corpus, embedders and
    settings are unchanged."""
    from equal.fingerprint import records_digest

    params = load_config(DEFAULT_PROFILE).clustering
    info = art.load_embedder_info()
    cap = max(2, budget_docs // config.docs_per_pull // config.pulls_per_cluster)
    max_clusters = min(cap, params.max_clusters or cap)
    settings = {"k_values": params.k_values, "k": params.k, "min_clusters": min(params.min_clusters, max_clusters),
                "max_clusters": max_clusters, "algorithm": params.algorithm,
                "w2_only_below": params.w2_only_below}  # fmt: skip
    done = art.data / "clusters.json"  # written last: k
    stamp = fingerprint(corpus=records_digest(corpus), tuned=info.tuned_identity, base=info.base_identity,
                        seed=config.seed, **settings)  # fmt: skip
    say = print if config.progress else None
    if reuse_or_reset(art.data, stamp, done.name, "clustering", stamp="clustering_fingerprint.json", log=say,
                      clear=lambda _: done.unlink(missing_ok=True)):  # fmt: skip
        return int(json.loads(done.read_text())["k"])
    stage = ClusteringStage(seed=config.seed, device=device, progress=config.progress, **settings)
    k = run_stage(stage, art, progress=config.progress).k
    write_json_atomic(done, {"k": k})
    return k


REFINEMENT_BENCHMARK = paths.REPO_ROOT / "results" / "benchmarks" / "refinement.json"


def measured_refinement_rate(prompt_version: str | None, model: str | None) -> dict | None:
    """The refinement throughput measured by the known-answer probe (scripts/benchmark_known_answers.py) for this
    prompt and refiner, in tokens (prompt and completion) per second of model time; None where none was measured."""
    if not (prompt_version and model) or not REFINEMENT_BENCHMARK.is_file():
        return None
    probe = json.loads(REFINEMENT_BENCHMARK.read_text()).get("known_answer", {})
    for name, entry in probe.get("settings", {}).items():
        same_prompt = entry.get("refinement", {}).get("prompt_version") == prompt_version
        if same_prompt and str(entry.get("refiner", "")).startswith(model) and entry.get("tokens"):
            return {"tokens_per_s": round(entry["tokens"] / entry["model_seconds"], 1), "measured_by": name,
                    "machine": probe.get("environment", {}).get("cpu") or "the probe's machine"}  # fmt: skip
    return None


SELECT_BENCHMARK = paths.REPO_ROOT / "results" / "benchmarks" / "select.json"


def measured_refinement_per_document(refinement: dict | None) -> dict | None:
    """Refinement model seconds per extracted document, as ``scripts/benchmark_select.py`` last measured them for
    this refinement (prompt version, votes, attempts) on its stand-in corpus (prose and word problems); None where it
    measured none. The expectation it gives holds for a corpus of like make-up: a corpus of word problems refines
    more pairs as problems, which cost several calls each."""
    if not refinement or not refinement.get("enabled", True) or not SELECT_BENCHMARK.is_file():
        return None
    keys = ("prompt_version", "votes", "min_agree", "attempts")
    runs = json.loads(SELECT_BENCHMARK.read_text()).get("runs", {})
    for name, run in sorted(runs.items(), key=lambda item: item[1].get("finished", ""), reverse=True):  # newest
        same = all(run.get("refinement", {}).get(k) == refinement.get(k) for k in keys if k in refinement)
        seconds = run.get("per_stage", {}).get("refine", {}).get("model_s")
        if same and seconds and run.get("documents_extracted"):
            return {"seconds_per_document": round(seconds / run["documents_extracted"], 1), "measured_by": name,
                    "corpus": "scripts/benchmark_select.py's stand-in"}  # fmt: skip
    return None


def estimate(config: SelectConfig, corpus: list[dict], budget_docs: int, warm_docs: int, n_params: int,
             refinement: dict | None = None) -> dict:  # fmt: skip
    """The extraction's estimated size before any call: documents, tokens (prompt + the completion budget), FLOPs;
    with ``refinement``, at most ``attempts`` refinement calls per extracted pair on top (document, draft and
    examples shown, plus the completion budget; refine-v4's programs too), and the minutes they take at most at the
    refiner's measured rate (:func:`measured_refinement_rate`), and the minutes to expect at the seconds per document
    measured for this refinement (:func:`measured_refinement_per_document`): every pair's every attempt is a bound
    no real run comes near (most pairs are kept or dropped at their first call)."""
    from equal.llm.refine import RefinementConfig, get_refine_prompt

    mean_tokens = float(np.mean([d.get("n_tokens", len(d["text"]) / 4) for d in corpus])) if corpus else 0.0
    per_call = mean_tokens + 200 + int(config.extraction.get("max_tokens", 320))  # + instructions, + answer budget
    documents = budget_docs + warm_docs
    tokens = int(documents * per_call)
    refine_tokens = 0
    if refinement and refinement.get("enabled", True):
        known = {f: refinement[f] for f in RefinementConfig.__dataclass_fields__ if f in refinement}
        settings = RefinementConfig(**known)
        pairs = documents * int(config.extraction.get("max_pairs", 3))
        shown = min(mean_tokens, settings.max_document_tokens) + settings.max_draft_tokens + 150 * settings.examples
        refine_tokens = int(pairs * settings.attempts * (shown + 250 + settings.max_tokens))
        if get_refine_prompt(settings.prompt_version).program_answers:
            # a problem also pays its programs: the first (and one retry) seeing the document, the votes the question
            program = settings.program_tokens + 150
            per_problem = (min(mean_tokens, settings.max_document_tokens) + program) * 2 + program * settings.votes
            refine_tokens += int(pairs * per_problem)
    total = tokens + refine_tokens
    rate = measured_refinement_rate((refinement or {}).get("prompt_version"), (config.llm.get("refiner") or
                                                                               config.llm).get("model"))  # fmt: skip
    minutes = round(refine_tokens / rate["tokens_per_s"] / 60, 1) if rate and refine_tokens else None
    per_document = measured_refinement_per_document(refinement) if refine_tokens else None
    expected = round(documents * per_document["seconds_per_document"] / 60, 1) if per_document else None
    return {"documents": documents, "warmup_documents": warm_docs, "selected_documents": budget_docs,
            "tokens_at_most": total, "refinement_tokens_at_most": refine_tokens,
            "refinement_minutes_at_most": minutes, "refinement_rate": rate,
            "refinement_minutes_expected": expected, "refinement_per_document": per_document,
            "extractor_flops": inference_flops(n_params, total) if n_params else None,
            "reference_flops_72b": inference_flops(REFERENCE_PARAMS, total)}  # fmt: skip


def run_select(config: SelectConfig, dry_run: bool = False) -> SelectOutcome | dict:
    """Prepare, warm up, cluster and select (see the module docstring); ``dry_run`` stops before any LLM call and
    returns the plan with its estimated cost. The warm-up, the contrastive training and the clustering run only for
    a method that reads embeddings (not Random, not All)."""
    from equal.embed.embedding import default_device
    from equal.llm.extract import make_extractor
    from equal.select.methods import get_method

    started = time.perf_counter()
    config = with_profile_settings(config)
    quiet(not config.progress)
    spec = get_method(config.method)
    if spec.needs_domain_labels:
        raise ConfigError(f"--method {spec.name!r} draws on the corpus's source domain labels, which a corpus given "
                          "to equal select does not have; it is a control of the paper's experiment")  # fmt: skip
    out = Path(config.out)
    art = Artifacts("select", out / "work", out / "work" / "results", out / "work" / "figures")
    if not 0 < config.budget <= 1:
        raise ConfigError(f"--budget {config.budget}: give a share of the corpus in (0, 1]")
    prepared = _prepare(config, art)
    corpus = art.load_corpus()
    if not corpus:
        raise ConfigError(f"no document left to select from: {_emptied(prepared.stats)}")
    budget_docs = max(1, round(config.budget * len(corpus)))
    embeds = spec.uses_embeddings
    warm_docs = max(1, round(config.warmup_fraction * len(corpus))) if embeds else 0
    cache_path = art.data / "llm_calls.sqlite"
    refinement = refinement_settings(config, art.load_reference(config.task_name))
    extractor = make_extractor(
        config.llm,
        config.extraction,
        config.seed,
        cache_path=cache_path,
        refinement=refinement,
        load_reference=art.load_reference,
    )  # loads, calls nothing
    plan = {"corpus_documents": len(corpus), "method": spec.name, "budget": config.budget,
            **estimate(config, corpus, budget_docs if not spec.shared else len(corpus), warm_docs,
                       getattr(extractor.backend, "n_params", 0), refinement)}  # fmt: skip
    if dry_run:
        return plan
    folder = art.selection_run_dir(spec.name, config.task_name, config.budget, config.seed, shared=spec.shared)
    resumed = _resume_note(folder, len(extractor.cache))
    say = print if config.progress else (lambda *_: None)
    say(
        f"equal select: {len(corpus):,} documents ({prepared.meta['tasks']}), method {spec.name}, "
        f"budget {budget_docs:,} documents" + (f" + warm-up {warm_docs:,}" if embeds else "") + f"; {resumed}"
    )
    selection, warmup = _default_stages()
    policies, reward = selection.policies, selection.reward
    k = 0
    device = default_device()  # the GPU when there is one, as in the notebooks
    if embeds:
        rate = _warmup(config, art, extractor, refinement, warmup, device)
        if rate:
            left = budget_docs if not spec.shared else len(corpus)
            say(f"warm-up extracted at {rate:.1f} documents/min: the selection's {left:,} documents take about "
                f"{left / rate:.0f} min more")  # fmt: skip
        k = _cluster(config, art, corpus, budget_docs, device)
    runner = _runner(config, art, corpus, extractor, policies, reward, embeds, device)
    run = runner.run(spec.name, config.task_name, config.budget, config.seed)
    cost = {**{key: getattr(run.summary, key) for key in ("documents_extracted", "warmup_documents", "loop_documents",
                                                          "llm_calls", "tokens")},
            "extractor": extractor.backend.model_id, "extractor_flops": run.summary.flops_model,
            "reference_flops_72b": run.summary.flops_reference, "clusters": k,
            # every call this output folder paid for, whoever asked (warm-up, retries, refinement, an interrupted
            # earlier run): the cache's own count; the keys above are what the method is charged
            "paid": extractor.cache.paid(),
            "wall_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    _write_outputs(config, out, run, cost, prepared.meta, plan, refinement, corpus)
    return SelectOutcome(out, len(run.pairs), cost, resumed)


def _runner(config: SelectConfig, art: Artifacts, corpus: list[dict], extractor, policies: dict, reward: dict,
            embeds: bool, device: str):  # fmt: skip
    """The method runner: over the warm-up, embedders and clusterings when the method reads them, else over the
    corpus and reference set alone."""
    from equal.select.runner import MethodRunner

    options = {"include_warmup_pairs": False, "progress": config.progress, "arms_per_round": config.arms_per_round,
               "docs_per_pull": config.docs_per_pull}  # fmt: skip
    if embeds:
        return MethodRunner.from_artifacts(art, extractor, [config.task_name], policies, reward,
                                           embedding_device=device, **options)  # fmt: skip
    return MethodRunner(corpus=corpus, labels={}, distances={}, stores={},
                        references={config.task_name: art.load_reference(config.task_name)}, extractor=extractor,
                        policies=policies, artifacts=art, **options)  # fmt: skip


def _emptied(stats) -> str:
    """What emptied a corpus, from the preparation's counts."""
    total = stats[(stats["source"] == "(all)") & (stats["domain"] == "(all)")].iloc[0]
    parts = [f"{int(total[c]):,} {label}" for c, label in (
        ("records", "records read"), ("skipped_bad_records", "skipped as bad"), ("too_short", "too short"),
        ("exact_duplicates", "exact duplicates"), ("near_duplicates", "near duplicates"),
        ("contaminated", "overlapping the evaluation items"), ("documents", "documents kept"))]  # fmt: skip
    return ", ".join(parts)


def quiet(on: bool) -> None:
    """``--quiet``: no progress bar or library log from here on (the final summary and errors still print)."""
    if not on:
        return
    import logging

    import tqdm

    # every tqdm bar, the libraries' own too, even those asked for explicitly (sentence-transformers' "Batches" while
    # it writes a model card)
    if not getattr(tqdm.tqdm.__init__, "equal_quiet", False):
        shown = tqdm.tqdm.__init__

        def silent(self, *args, **kwargs):
            shown(self, *args, **{**kwargs, "disable": True})

        silent.equal_quiet = True
        tqdm.tqdm.__init__ = silent
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    for name in ("sentence_transformers", "datasets", "transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _resume_note(folder: Path, cached_calls: int) -> str:
    """Where a run starts: fresh, or from which round of the bandit's log and how many cached calls."""
    log = folder / "rounds.jsonl"
    rounds = max(0, len(log.read_text(encoding="utf-8").splitlines()) - 1) if log.is_file() else 0
    if (folder / "summary.json").is_file():
        return f"finished earlier: read back ({cached_calls:,} cached calls)"
    if rounds or cached_calls:
        return f"resuming at round {rounds} with {cached_calls:,} cached calls"
    return "starting fresh"


def messages_record(pair: dict) -> dict:
    """A QA pair in chat form, with where it came from and how it was refined (its draft and the answer it was
    verified against)."""
    from equal.llm.extract import REFINEMENT_FIELDS

    return {"messages": [{"role": "user", "content": pair["question"]},
                         {"role": "assistant", "content": pair["answer"]}],
            **{k: pair.get(k) for k in ("doc_id", "source", "cluster", "round", *REFINEMENT_FIELDS)},
            "metadata": pair.get("metadata") or {}}  # fmt: skip


def quality_markdown(drafts: list[dict], pairs: list[dict], refinement_counts: dict, seed: int,
                     refinement: dict | None = None) -> str:  # fmt: skip
    """The card's quality section: how pairs were verified, the automatic checks before and after refinement,
    refinement's outcomes and, per kind of kept pair, how its answers were checked."""
    import pandas as pd

    from equal.llm.quality import CHECKS, before_after
    from equal.llm.refine import describe, outcome_table, verification_table

    text = (describe(refinement) + "\n\n") if refinement is not None else ""
    rows = before_after(drafts, pairs, 200, seed)
    columns = ["stage", "pairs", "median_answer_chars", "all_checks_pass_share", *CHECKS]
    text += pd.DataFrame(rows)[columns].to_markdown(index=False)
    outcomes = outcome_table(refinement_counts)
    if outcomes:
        text += "\n\nRefinement, per kind of pair:\n\n" + pd.DataFrame(outcomes).fillna(0).to_markdown(index=False)
    verified = verification_table(pairs)
    if verified:
        text += "\n\nKept pairs, per kind, and how their answers were checked:\n\n" + pd.DataFrame(
            verified).fillna(0).to_markdown(index=False)  # fmt: skip
    return text


def _write_outputs(config: SelectConfig, out: Path, run, cost: dict, prep_meta: dict, plan: dict,
                   refinement: dict, corpus: list[dict]) -> None:  # fmt: skip
    import pandas as pd
    from datasets import Dataset

    records = [messages_record(p) for p in run.pairs]
    write_jsonl_atomic(out / "pairs.jsonl", records)
    # the dataset's columns must share one type: a record's own fields (which differ between records) go in as
    # JSON, with its id and source as columns of their own
    rows = [{**r, "record_id": _text(r["metadata"].get("id")), "record_source": _text(r["metadata"].get("source")),
             "metadata": json.dumps(r["metadata"], ensure_ascii=False)} for r in records]  # fmt: skip
    Dataset.from_list(rows).save_to_disk(str(out / "dataset"))
    if run.pulls is not None:
        run.pulls.to_csv(out / "selection_log.csv", index=False)
    write_json_atomic(out / "cost.json", cost)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items() if k != "progress"}
    settings["corpus"] = [str(p) for p in config.corpus]
    prompt = config.extraction.get("prompt_version", PROMPT_VERSION)
    write_json_atomic(out / "select.json", {"settings": settings, "plan": plan, "prompt_version": prompt,
                                            "refinement": refinement})  # fmt: skip
    from equal.io import read_jsonl

    drafts = read_jsonl(run.folder / "drafts.jsonl") if run.folder and (run.folder / "drafts.jsonl").is_file() else []
    quality = quality_markdown(drafts, run.pairs, run.summary.refinement, config.seed, refinement)
    chosen = {row["doc_id"] for row in run.ledger() if row.get("doc_id")}
    sources = pd.DataFrame(source_shares(corpus, chosen)).to_markdown(index=False)
    write_text_atomic(out / "README.md", dataset_card(config, run, cost, prep_meta, quality, sources))


def _text(value) -> str | None:
    return None if value is None else str(value)


def source_shares(corpus: list[dict], chosen_ids: set[str]) -> list[dict]:
    """Per source (a record's own ``source`` field, else its corpus file's name): documents and share in the corpus
    and among the documents the method chose."""
    from collections import Counter

    def source(doc: dict) -> str:
        return str((doc.get("metadata") or {}).get("source") or doc.get("source") or "unknown")

    everything = Counter(source(d) for d in corpus)
    chosen = Counter(source(d) for d in corpus if d["id"] in chosen_ids)
    n_all, n_chosen = max(sum(everything.values()), 1), max(sum(chosen.values()), 1)
    return [{"source": name, "corpus documents": everything[name], "corpus share": round(everything[name] / n_all, 4),
             "chosen documents": chosen[name], "chosen share": round(chosen[name] / n_chosen, 4)}
            for name, _ in everything.most_common()]  # fmt: skip


def dataset_card(config: SelectConfig, run, cost: dict, prep_meta: dict, quality: str = "", sources: str = "") -> str:
    """The dataset card (README.md) of an ``equal select`` output folder."""
    task = prep_meta["tasks"][config.task_name]
    return f"""# {config.task_name}: instruction data selected by {run.method}

{len(run.pairs):,} question–answer pairs extracted by `{cost["extractor"]}` from {cost["documents_extracted"]:,} of
{prep_meta["documents"]:,} corpus documents, chosen by **{run.method}** at budget γ = {config.budget:g}
(seed {config.seed}) for the reference set `{Path(config.reference).name}` ({task["reference"]} items).
Made with `equal select` (EQUAL, arXiv 2505.12250), prompt version
`{config.extraction.get("prompt_version", PROMPT_VERSION)}`.

| | |
|---|---|
| corpus files | {", ".join(str(p) for p in config.corpus)} |
| corpus documents after dedup and decontamination | {prep_meta["documents"]:,} |
| evaluation items kept out of the corpus | {task["evaluation"]} |
| warm-up documents | {cost["warmup_documents"]:,} |
| documents chosen by the method | {cost["loop_documents"]:,} |
| clusters | {cost["clusters"]} |
| LLM calls charged to the method | {cost["llm_calls"]:,} |
| tokens charged to the method | {cost["tokens"]:,} |
| LLM calls paid by this folder (warm-up, retries, refinement, interrupted runs; failed ones included) | \
{cost["paid"]["calls"] + cost["paid"]["failed_calls"]:,} |
| tokens paid by this folder | {cost["paid"]["tokens"]:,} |
| extraction FLOPs (this extractor) | {cost["extractor_flops"]:.3g} |
| extraction FLOPs (a 72B extractor) | {cost["reference_flops_72b"]:.3g} |
| wall time | {cost["wall_s"]:.0f} s |

## Sources

Documents per source (a record's own `{config.source_field}` field, else its corpus file) in the corpus and among
the documents the method chose:

{sources}

## Pair quality

How the pairs were verified, and automatic checks (equal.llm.quality) on the pairs as extracted and on the pairs
kept after refinement and the quality gate:

{quality}

Files: `pairs.jsonl` (chat `messages` with `doc_id`, `source`, `cluster`, `round`, `metadata` (your record's own
fields: `id`, `source` and the rest), and each refined pair's
`draft_answer`, `reference_answer`, `kind` and `refinement` outcome; a problem's `program` and `votes` where its
answer was computed), `dataset/`
(`datasets.load_from_disk`), `cost.json`, `selection_log.csv`, `select.json` (every setting).
Each pair is the extractor's answer about one document; check the licences of your corpus before sharing.
"""
