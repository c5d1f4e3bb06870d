"""Build the prepared corpus: verify → parse → split → dedup → decontaminate → sample → write.

The one entry point is :func:`prepare_data`; notebook 01 calls it and shows what it returns.
Results are cached: a second call with the same parameters and the same raw files reads the
prepared files instead of rebuilding them.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd

from equal import paths
from equal.artifacts import Artifacts
from equal.data.decontam import Decontaminator
from equal.data.dedup import Deduplicator
from equal.data.manifest import load_manifest, verify_sources
from equal.data.reading import ParseReport, ReadContext
from equal.data.sources import PARSERS, RawDocument, parse_user_corpus
from equal.data.targets import evaluation_text
from equal.data.tasks import MANIFEST_PREFIX, TaskItems, declared_tasks, load_task, resolve_file, split_tasks
from equal.data.text import pack_units
from equal.data.tokens import DEFAULT_TOKENIZER, count_tokens
from equal.data.user_corpus import corpus_files
from equal.errors import ConfigError
from equal.fingerprint import Fingerprint, file_digest, fingerprint, reuse_or_reset
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic, write_text_atomic
from equal.progress import tqdm
from equal.task import TaskSpec, spec_record

#: Bump when the preparation logic changes, so cached outputs are rebuilt.
PREP_VERSION = 4  # 2: target tasks declared as data (equal.data.tasks); 3: per-source quotas; 4: user metadata


@dataclass
class CorpusConfig:
    """Every parameter of data preparation, with the default profile's values."""

    raw_dir: Path
    out_dir: Path
    seed: int = 0
    sources: list[str] | None = None  # corpus sources to use; None = every corpus source of the manifest
    user_corpus: list[dict] = field(default_factory=list)  # [{"path": ..., "name": ..., "domain": ...}]
    max_documents: int | None = 2000  # documents kept after filtering; None = all
    # At most this share of max_documents from a source ({name: share}); unnamed sources fill the rest. Keeps
    # target-style documents a minority, as in a web crawl (params/default.yaml says which and why).
    source_quotas: dict[str, float] | None = field(default_factory=dict)
    max_files_per_source: int | None = None  # read only the first N files of multi-file sources (smoke)
    min_unit_chars: int = 200  # a unit closes at a section boundary once it is this long
    max_unit_chars: int = 2000  # no unit is longer than this
    min_keep_chars: int = 80  # shorter units are dropped (headings, stubs)
    max_document_chars: int = 1_000_000  # larger documents are truncated before splitting (counted)
    dedup_threshold: float = 0.8  # MinHash Jaccard threshold for near-duplicates
    dedup_num_perm: int = 128
    dedup_shingle_words: int = 3
    decontam_ngram: int = 13  # word n-gram length of the contamination test
    # Target tasks: params/tasks.yaml's declarations (D_r sizes, splits, metrics) with these merged over them by
    # name; every task's evaluation items are kept out of the corpus and out of every D_r.
    tasks: dict = field(default_factory=dict)
    builtin_tasks: bool = True  # False: only ``tasks`` (equal select on a user's own task)
    tokenizer: str = DEFAULT_TOKENIZER
    on_error: str = "raise"  # "raise" or "skip" (skipped records are counted in the stats)
    fetch_missing: bool = False  # download missing raw files from upstream (needs a network)
    mirror_url: str | None = None  # download from <mirror_url>/<raw path> instead of upstream
    progress: bool = True

    def fingerprint(self, inputs_sha: str) -> Fingerprint:
        """Everything that determines the outputs (not where they are written), one part per setting.

        ``inputs_sha`` identifies the input files (manifest hash, user corpus hashes).
        """
        relevant = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("raw_dir", "out_dir", "progress", "fetch_missing", "mirror_url")
        }
        return fingerprint(**relevant, inputs=inputs_sha, version=PREP_VERSION)


@dataclass
class PreparedData:
    """Where the prepared files are, and the statistics of the run."""

    out_dir: Path
    corpus_path: Path
    stats: pd.DataFrame
    meta: dict
    from_cache: bool

    def corpus(self) -> pd.DataFrame:
        """The prepared corpus as a DataFrame."""
        return pd.DataFrame(read_jsonl(self.corpus_path))

    def file(self, name: str) -> Path:
        """Path of another prepared file, e.g. ``reference_gsm8k.jsonl``."""
        return self.out_dir / name


def _unit_records(source: str, domain: str, license_: str, docs, config: CorpusConfig) -> tuple[list[dict], int]:
    units: list[dict] = []
    too_short = 0
    for doc in docs:
        doc: RawDocument
        pieces = pack_units(doc.blocks, config.min_unit_chars, config.max_unit_chars)
        for index, (section, text) in enumerate(pieces):
            if len(text) < config.min_keep_chars:
                too_short += 1
                continue
            key = f"{doc.file}|{doc.locator}|{index}"
            units.append(
                {
                    "id": f"{source}-{hashlib.sha1(key.encode()).hexdigest()[:12]}",
                    "source": source,
                    "domain": doc.domain or domain,
                    "title": doc.title,
                    "section": section,
                    "text": text,
                    "file": doc.file,
                    "locator": doc.locator,
                    "unit_index": index,
                    "n_units_in_document": len(pieces),
                    "license": license_,
                    **({"metadata": doc.metadata} if doc.metadata else {}),
                }
            )
    return units, too_short


def _user_parser(path: Path, text_field: str = "text", id_field: str = "id", source_field: str = "source"):
    """A parse job for a user corpus: a JSONL or Parquet file, or a folder of them (max_files does not apply)."""

    def parse(ctx: ReadContext, _max_files: int | None):
        return parse_user_corpus(path, ctx, text_field, id_field, source_field)

    return parse


def _parse_sources(config: CorpusConfig, manifest) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Parse the chosen manifest sources and the user's corpora into unit records, per source."""
    corpus_sources = [s for s in manifest.values() if s.role == "corpus"]
    names = config.sources if config.sources is not None else [s.name for s in corpus_sources]
    unknown = [n for n in names if n not in manifest or manifest[n].role != "corpus"]
    if unknown:
        raise ConfigError(f"unknown corpus sources {unknown}; the manifest has {[s.name for s in corpus_sources]}")
    # One job per source: (name, domain, licence, function of a ReadContext yielding RawDocuments).
    jobs = []
    for name in names:
        source = manifest[name]
        if name not in PARSERS:
            raise ConfigError(f"no parser for corpus source {name!r}")
        jobs.append((name, source.domain, source.license, partial(PARSERS.get(name), source, config.raw_dir)))
    for spec in config.user_corpus:
        name, path = spec.get("name"), spec.get("path")
        if not name or not path:
            raise ConfigError(f"user_corpus entries need 'name' and 'path', got {spec}")
        if name in names or name in manifest:
            raise ConfigError(f"user_corpus name {name!r} is already a source name; choose another")
        if not Path(path).exists():
            raise ConfigError(f"user_corpus {name!r}: no file or folder at {path}")
        parser = _user_parser(Path(path), spec.get("text_field", "text"), spec.get("id_field", "id"),
                              spec.get("source_field", "source"))  # fmt: skip
        jobs.append((name, spec.get("domain", "unknown"), spec.get("license", ""), parser))
    units_by_source: dict[str, list[dict]] = {}
    info: dict[str, dict] = {}
    for name, domain, license_, parse in tqdm(jobs, desc="parse sources", unit="source", disable=not config.progress):
        ctx = ReadContext(on_error=config.on_error, max_document_chars=config.max_document_chars)
        docs = parse(ctx, config.max_files_per_source)
        units_by_source[name], too_short = _unit_records(name, domain, license_, docs, config)
        info[name] = {"domain": domain, "report": ctx.report, "too_short": too_short}
    return units_by_source, info


def task_specs(config: CorpusConfig) -> dict[str, TaskSpec]:
    """The tasks data preparation reads: the declared ones (built-in and the profile's), or only the profile's."""
    if config.builtin_tasks:
        return declared_tasks(config.tasks)
    from equal.data.tasks import parse_tasks

    return parse_tasks(config.tasks, "tasks")


def _task_file_digests(specs: dict[str, TaskSpec], raw_dir: Path) -> list[str]:
    """Content digests of the task files that the manifest does not pin (a user's own tasks)."""
    files = [resolve_file(ref, raw_dir, paths.REPO_ROOT) for spec in specs.values() for ref in spec.files.values()
             if not ref.startswith(MANIFEST_PREFIX)]  # fmt: skip
    return [file_digest(path) for path in files if path.is_file()]


def source_caps(quotas: dict[str, float] | None, limit: int, sources: list[str],
                known: list[str] | None = None) -> dict[str, int]:  # fmt: skip
    """Documents allowed per source: ``round(share × limit)`` for each source named in ``quotas``. A quota may name
    any ``known`` source (default: ``sources``), used in this run or not; another name is an error."""
    quotas = quotas or {}
    known = sorted(set(known or []) | set(sources))
    unknown = sorted(set(quotas) - set(known))
    if unknown:
        raise ConfigError(f"source_quotas names unknown sources {unknown}; known: {known}")
    bad = {name: share for name, share in quotas.items() if not 0 <= float(share) <= 1}
    if bad:
        raise ConfigError(f"source_quotas must be shares between 0 and 1, got {bad}")
    if sum(quotas.values()) > 1 + 1e-9:
        raise ConfigError(f"source_quotas sum to {sum(quotas.values()):.3f} > 1")
    return {name: round(float(share) * limit) for name, share in quotas.items()}


def _filter_and_sample(units_by_source, tasks: dict[str, TaskItems], config: CorpusConfig, known: list[str]):
    """Offer units in a seeded random order; keep the new, clean ones until max_documents."""
    pool = [u for name in sorted(units_by_source) for u in units_by_source[name]]
    random.Random(config.seed).shuffle(pool)
    dedup = Deduplicator(
        config.dedup_threshold, config.dedup_num_perm, config.dedup_shingle_words, seed=config.seed + 1
    )
    decontam = Decontaminator(config.decontam_ngram).fit(
        (i["id"], evaluation_text(i)) for task in tasks.values() for i in task.protected
    )
    counts: dict[str, Counter] = {name: Counter() for name in units_by_source}
    kept: list[dict] = []
    contaminated: list[dict] = []
    limit = config.max_documents or len(pool)
    caps = source_caps(config.source_quotas, limit, list(units_by_source), known)
    taken: Counter = Counter()
    bar = tqdm(total=limit, desc="dedup + decontaminate", unit="doc", disable=not config.progress)
    for unit in pool:
        if len(kept) >= limit:
            break
        tally = counts[unit["source"]]
        if taken[unit["source"]] >= caps.get(unit["source"], limit):
            tally["over_quota"] += 1  # not examined: the source has its share
            continue
        tally["examined"] += 1
        hit = decontam.match(unit["text"])
        if hit is not None:
            tally["contaminated"] += 1
            contaminated.append(
                {"id": unit["id"], "source": unit["source"], "matched_item": hit, "text": unit["text"][:300]}
            )
            continue
        duplicate = dedup.check(unit["id"], unit["text"])
        if duplicate is not None:
            tally[f"{duplicate}_duplicates"] += 1
            continue
        kept.append(unit)
        taken[unit["source"]] += 1
        bar.update(1)
    bar.close()
    if config.max_documents and len(kept) < config.max_documents:
        raise ConfigError(
            f"only {len(kept)} documents survive filtering, fewer than max_documents={config.max_documents}; "
            "lower max_documents or add sources"
        )
    kept.sort(key=lambda u: (u["source"], u["id"]))
    return kept, counts, contaminated


def _stats_table(units_by_source, info, counts, kept) -> pd.DataFrame:
    kept_df = pd.DataFrame(kept) if kept else pd.DataFrame(columns=["source", "n_chars", "n_tokens"])
    rows = []
    for name, units in units_by_source.items():
        report: ParseReport = info[name]["report"]
        mine = kept_df[kept_df["source"] == name]
        rows.append(
            {
                "source": name,
                "domain": info[name]["domain"],
                "records": report.records,
                "skipped_bad_records": report.skipped_total,
                "truncated_documents": report.truncated,
                "units": len(units),
                "too_short": info[name]["too_short"],
                "over_quota": counts[name]["over_quota"],
                "examined": counts[name]["examined"],
                "exact_duplicates": counts[name]["exact_duplicates"],
                "near_duplicates": counts[name]["near_duplicates"],
                "contaminated": counts[name]["contaminated"],
                "documents": len(mine),
                "characters": int(mine["n_chars"].sum()),
                "tokens": int(mine["n_tokens"].sum()),
            }
        )
    table = pd.DataFrame(rows).sort_values(["domain", "source"]).reset_index(drop=True)
    numeric = [c for c in table.columns if c not in ("source", "domain")]
    per_domain = table.groupby("domain", as_index=False)[numeric].sum().assign(source="(all)")
    total = table[numeric].sum().to_frame().T.assign(source="(all)", domain="(all)")
    out = pd.concat([table, per_domain, total], ignore_index=True)[["source", "domain", *numeric]]
    out[numeric] = out[numeric].astype(int)
    out["share"] = (out["documents"] / max(int(total["documents"].iloc[0]), 1)).round(4)  # of the kept corpus
    return out


def preparation_fingerprint(config: CorpusConfig) -> Fingerprint:
    """What decides a preparation's files: its settings and the content of its inputs (the manifest pins the raw
    files; a user's corpus and a user's task files are pinned by their own content)."""
    manifest_file = config.raw_dir / "MANIFEST.json"
    manifest_sha = file_digest(manifest_file) if manifest_file.is_file() else ""
    user_shas = [file_digest(f) for s in config.user_corpus if Path(s.get("path") or "").exists()
                 for f in corpus_files(s["path"])]  # fmt: skip
    task_shas = _task_file_digests(task_specs(config), config.raw_dir)
    return config.fingerprint(":".join([manifest_sha, *user_shas, *task_shas]))


def prepare_data(config: CorpusConfig, force: bool = False) -> PreparedData:
    """Prepare the corpus, target splits and reference sets under ``config.out_dir``.

    Reuses the files of an earlier identical run unless ``force`` is true.
    """
    started = time.perf_counter()
    out = config.out_dir
    specs = task_specs(config)
    stamp = preparation_fingerprint(config)
    key = stamp.digest[:16]
    layout = Artifacts("prepare", out, out, out)  # the file names later stages read (equal.artifacts)
    meta_path, stats_path, corpus_path = out / "prep_meta.json", out / "corpus_stats.csv", layout.corpus_file
    if force:
        meta_path.unlink(missing_ok=True)
    # prep_meta.json is the done-marker; the folder also holds later stages' files (each under its own
    # fingerprint), so a stale preparation removes only its marker: every file it writes is rewritten
    finished = reuse_or_reset(out, stamp, meta_path.name, f"data preparation ({out})", stamp="prep_fingerprint.json",
                              log=print if config.progress else None,
                              clear=lambda _: meta_path.unlink(missing_ok=True))  # fmt: skip
    if finished and stats_path.is_file() and corpus_path.is_file():
        return PreparedData(out, corpus_path, pd.read_csv(stats_path), json.loads(meta_path.read_text()),
                            from_cache=True)  # fmt: skip
    meta_path.unlink(missing_ok=True)  # a crash from here on must not leave a stale cache marker
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    # The raw-data folder is needed only for its sources: a user's corpus and tasks alone (equal select) go without.
    task_sources = {ref[len(MANIFEST_PREFIX) :].split("/")[0] for spec in specs.values() for ref in spec.files.values()
                    if ref.startswith(MANIFEST_PREFIX)}  # fmt: skip
    needs_manifest = config.sources != [] or bool(task_sources)
    manifest = load_manifest(config.raw_dir) if needs_manifest else {}
    wanted = [s for s in manifest.values() if s.name in task_sources
              or (s.role == "corpus" and (config.sources is None or s.name in config.sources))]  # fmt: skip
    n_verified = verify_sources(config.raw_dir, wanted, config.fetch_missing, config.progress, config.mirror_url)
    timings["verify_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    target_ctx = ReadContext(on_error=config.on_error)
    loaded = {name: load_task(spec, config.raw_dir, paths.REPO_ROOT, target_ctx) for name, spec in specs.items()}
    tasks = split_tasks(loaded, specs, config.seed)
    units_by_source, info = _parse_sources(config, manifest)
    timings["parse_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    known = [name for name, source in manifest.items() if source.role == "corpus"]
    kept, counts, contaminated = _filter_and_sample(units_by_source, tasks, config, known)
    timings["filter_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    for unit, n_tokens in zip(kept, count_tokens([u["text"] for u in kept], config.tokenizer), strict=True):
        unit["n_chars"] = len(unit["text"])
        unit["n_tokens"] = n_tokens
    timings["tokenize_s"] = time.perf_counter() - tick

    stats = _stats_table(units_by_source, info, counts, kept)
    write_jsonl_atomic(corpus_path, kept)
    for name, task in tasks.items():
        if task.spec.is_benchmark:
            write_jsonl_atomic(layout.evaluation_file(name), task.evaluation)
        if task.spec.is_target:
            write_jsonl_atomic(layout.reference_file(name), task.reference)
            write_jsonl_atomic(layout.heldout_file(name), task.heldout)
    write_json_atomic(layout.tasks_file, {name: {**spec_record(task.spec), "items": task.counts()}
                                          for name, task in tasks.items()})  # fmt: skip
    write_jsonl_atomic(out / "contaminated_units.jsonl", contaminated)
    write_text_atomic(stats_path, stats.to_csv(index=False))
    timings["total_s"] = time.perf_counter() - started
    meta = {
        "cache_key": key,
        "prep_version": PREP_VERSION,
        "config": {k: v for k, v in asdict(config).items()},
        "manifest_sha256": file_digest(manifest) if (manifest := config.raw_dir / "MANIFEST.json").is_file() else "",
        "raw_files_verified": n_verified,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "documents": len(kept),
        "tasks": {name: task.counts() for name, task in tasks.items()},
        "target_skipped_records": dict(target_ctx.report.skipped),
        "skip_examples": {name: i["report"].examples for name, i in info.items() if i["report"].examples},
    }
    write_json_atomic(meta_path, meta)  # written last: its presence marks a complete run
    return PreparedData(out, corpus_path, stats, meta, from_cache=False)
