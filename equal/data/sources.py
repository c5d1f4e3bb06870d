"""One parser per corpus source, each reading its own upstream format into documents.

A parser yields :class:`RawDocument` objects: a title and a list of paragraphs (``Block``) with
section starts marked, plus where the document came from (file and record/line). Splitting
into units and everything after happens in :mod:`equal.data.corpus`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from bs4 import BeautifulSoup
from lxml import etree

from equal.data.cnxml import collection_order, parse_cnxml
from equal.data.manifest import Source
from equal.data.reading import ReadContext, iter_jsonl, read_text_file, require_str
from equal.data.text import Block, clean_text, html_to_text, paragraphs_of
from equal.registry import Registry


@dataclass
class RawDocument:
    """A document before splitting: title, paragraphs and provenance."""

    title: str
    blocks: list[Block]
    file: str  # path relative to the raw-data folder
    locator: str = ""  # record inside the file: "line 12", "Id=345", "" for whole-file documents
    domain: str | None = None  # only for user corpora whose records name their own domain
    metadata: dict | None = None  # a user record's own fields (its id, source, ...): kept with every unit of it


Parser = Callable[[Source, Path, ReadContext, int | None], Iterator[RawDocument]]
PARSERS: Registry = Registry("corpus source parser")


def parser(name: str) -> Callable[[Parser], Parser]:
    """Register a parser for the manifest source ``name``."""
    return PARSERS.register(name)


def _text_blocks(text: str, ctx: ReadContext) -> list[Block]:
    return [Block(p) for p in paragraphs_of(clean_text(ctx.limit(text)))]


def _files(source: Source, raw_dir: Path, max_files: int | None) -> list[tuple[str, Path]]:
    files = [(f.local_path, raw_dir / f.local_path) for f in source.data_files]
    return files[:max_files] if max_files else files


def _xml_root(path: Path, rel: str, ctx: ReadContext) -> etree._Element | None:
    try:
        return etree.parse(str(path), etree.XMLParser(resolve_entities=False, huge_tree=True)).getroot()
    except etree.XMLSyntaxError as exc:
        ctx.problem(rel, exc.lineno, f"invalid XML ({exc.msg})", "invalid_xml")
        return None


# ----------------------------------------------------------------------------- math sources


@parser("asdiv")
def parse_asdiv(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """ASDiv XML: one word problem (body, question, formula, answer) per document."""
    for rel, path in _files(source, raw_dir, max_files):
        root = _xml_root(path, rel, ctx)
        if root is None:
            continue
        for problem in root.iter("Problem"):
            fields = {child.tag: clean_text(child.text or "") for child in problem if isinstance(child.tag, str)}
            body, question = fields.get("Body", ""), fields.get("Question", "")
            if not question:
                ctx.problem(rel, problem.sourceline, f"problem {problem.get('ID')} has no <Question>", "bad_record")
                continue
            text = f"{body} {question}".strip()
            if fields.get("Formula"):
                text += f"\n\nSolution: {fields['Formula']}"
            if fields.get("Answer"):
                text += f"\n\nAnswer: {fields['Answer']}"
            kind = fields.get("Solution-Type", "Arithmetic")
            ctx.report.records += 1
            yield RawDocument(
                title=f"{kind} word problem (grade {problem.get('Grade', '?')})",
                blocks=_text_blocks(text, ctx),
                file=rel,
                locator=f"ID={problem.get('ID')}",
            )


def _as_text(value: object) -> str:
    if isinstance(value, list):
        return "\n\n".join(_as_text(v) for v in value if v not in (None, ""))
    return "" if value is None else str(value).strip()


@parser("math_eval_collections")
def parse_math_collections(
    source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None
) -> Iterator[RawDocument]:
    """Competition / college maths JSONL (one set per file): problem, worked solution, answer."""
    for rel, path in _files(source, raw_dir, max_files):
        collection = Path(rel).parent.name
        for line_no, obj in iter_jsonl(path, ctx):
            question = next((obj[k] for k in ("problem", "question", "content") if _as_text(obj.get(k))), None)
            if question is None:
                ctx.problem(rel, line_no, "no 'problem', 'question' or 'content' field", "bad_record")
                continue
            parts = [_as_text(obj.get("context")), _as_text(question)]
            if _as_text(obj.get("options")):
                parts.append("Options: " + _as_text(obj["options"]))
            solution = _as_text(obj.get("solution")) or _as_text(obj.get("steps"))
            if solution:
                parts.append("Solution: " + solution)
            answer = next((_as_text(obj[k]) for k in ("answer", "final_answer", "Answer") if _as_text(obj.get(k))), "")
            if answer:
                parts.append("Answer: " + answer)
            ctx.report.records += 1
            yield RawDocument(
                title=f"{collection} problem {obj.get('id', obj.get('idx', line_no))}",
                blocks=_text_blocks("\n\n".join(p for p in parts if p), ctx),
                file=rel,
                locator=f"line {line_no}",
            )


def _cnxml_books(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """OpenStax books: one document per section module, in the book's table-of-contents order."""
    files = _files(source, raw_dir, None)
    toc = source.file("table_of_contents")
    if toc is not None:
        order = {
            module: index for index, module in enumerate(collection_order((raw_dir / toc.local_path).read_bytes()))
        }
        files.sort(key=lambda item: order.get(Path(item[0]).parent.name, len(order)))
    for rel, path in files[:max_files] if max_files else files:
        try:
            title, blocks = parse_cnxml(path.read_bytes())
        except etree.XMLSyntaxError as exc:
            ctx.problem(rel, exc.lineno, f"invalid CNXML ({exc.msg})", "invalid_xml")
            continue
        ctx.report.records += 1
        yield RawDocument(
            title=title, blocks=[Block(ctx.limit(b.text), b.new_section, b.section) for b in blocks], file=rel
        )


for _book in ("openstax_prealgebra", "openstax_python", "openstax_philosophy", "openstax_us_history"):
    parser(_book)(_cnxml_books)


@parser("khan_exercises")
def parse_khan(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """Khan Academy exercise templates: problems and hints; ``<var>`` expressions shown as ``{expr}``."""
    for rel, path in _files(source, raw_dir, max_files):
        html = read_text_file(path, ctx)
        if html is None:
            continue
        soup = BeautifulSoup(html, "lxml")
        title = clean_text(soup.title.get_text()) if soup.title else Path(rel).stem.replace("_", " ")
        for tag in soup.select("script, style, div.vars, div.graphie, .graphie"):
            tag.decompose()
        for var in soup.find_all("var"):
            var.replace_with("{" + var.get_text(strip=True) + "}")
        # Most templates keep questions in div.problems and hints in div.hints; a few only in the body.
        parts = [html_to_text(str(div)) for div in soup.select("div.problems, div.hints")]
        if not any(parts) and soup.body is not None:
            parts = [html_to_text(str(soup.body))]
        text = "\n\n".join(p for p in parts if p)
        if not text:
            ctx.skip("empty")
            continue
        ctx.report.records += 1
        yield RawDocument(title=title, blocks=_text_blocks(text, ctx), file=rel)


@parser("matheducators_stackexchange")
def parse_stackexchange(
    source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None
) -> Iterator[RawDocument]:
    """Stack Exchange ``Posts.xml``: one document per question or answer, HTML bodies as text."""
    for rel, path in _files(source, raw_dir, max_files):
        root = _xml_root(path, rel, ctx)
        if root is None:
            continue
        rows = list(root.iter("row"))
        titles = {row.get("Id"): row.get("Title", "") for row in rows if row.get("PostTypeId") == "1"}
        for row in rows:
            post_type = row.get("PostTypeId")
            if post_type not in ("1", "2"):
                continue  # tag wikis and other housekeeping posts are not documents
            body = row.get("Body")
            if not body or not body.strip():
                ctx.skip("empty")
                continue
            title = titles.get(row.get("Id") if post_type == "1" else row.get("ParentId"), "")
            text = html_to_text(body)
            if post_type == "1" and title:
                text = f"{title}\n\n{text}"
            ctx.report.records += 1
            yield RawDocument(
                title=title if post_type == "1" else f"Answer to: {title}",
                blocks=_text_blocks(text, ctx),
                file=rel,
                locator=f"Id={row.get('Id')}",
            )


# ----------------------------------------------------------------------------- code sources


@parser("conala")
def parse_conala(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """CoNaLa: the intent/snippet pairs of one StackOverflow question form one document."""
    for rel, path in _files(source, raw_dir, max_files):
        raw = read_text_file(path, ctx)
        if raw is None:
            continue
        try:
            records = json.loads(raw)
        except json.JSONDecodeError as exc:
            ctx.problem(rel, exc.lineno, f"invalid JSON ({exc.msg})", "invalid_json")
            continue
        if not isinstance(records, list):
            ctx.problem(rel, 1, "expected a JSON array of intent/snippet objects", "not_an_array")
            continue
        valid = []
        for index, rec in enumerate(records):
            where = f"record {index}"
            if not isinstance(rec, dict):
                ctx.problem(rel, where, "expected an object", "not_an_object")
                continue
            intent = require_str(rec, "intent", Path(rel), where, ctx)
            snippet = require_str(rec, "snippet", Path(rel), where, ctx) if intent else None
            if intent and snippet:
                valid.append((index, rec, intent, snippet))
        for question_id, group in groupby(valid, key=lambda item: item[1].get("question_id")):
            group = list(group)
            blocks = [
                Block(f"{rec.get('rewritten_intent') or intent}\n```python\n{snippet}\n```")
                for _, rec, intent, snippet in group
            ]
            ctx.report.records += len(group)
            yield RawDocument(title=group[0][2], blocks=blocks, file=rel, locator=f"question_id={question_id}")


@parser("python_api_docs")
def parse_python_api_docs(
    source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None
) -> Iterator[RawDocument]:
    """Python API one-liners, grouped by top-level module into reference pages."""
    for rel, path in _files(source, raw_dir, max_files):
        entries = []
        for line_no, obj in iter_jsonl(path, ctx):
            snippet = require_str(obj, "snippet", Path(rel), line_no, ctx)
            intent = require_str(obj, "intent", Path(rel), line_no, ctx) if snippet else None
            if snippet and intent:
                entries.append((line_no, snippet, intent))
        for module, group in groupby(entries, key=lambda entry: entry[1].split("(")[0].split(".")[0]):
            group = list(group)
            ctx.report.records += len(group)
            yield RawDocument(
                title=f"Python standard library: {module}",
                blocks=[Block(f"{snippet}: {intent}") for _, snippet, intent in group],
                file=rel,
                locator=f"lines {group[0][0]}-{group[-1][0]}",
            )


_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


def _rst_blocks(body: str) -> list[Block]:
    blocks: list[Block] = []
    section = ""
    for paragraph in paragraphs_of(body):
        lines = paragraph.split("\n")
        if len(lines) >= 2 and _RST_UNDERLINE.match(lines[1]) and len(lines[1].strip()) >= len(lines[0].strip()) > 0:
            section = lines[0].strip()
            rest = "\n".join(lines[2:]).strip()
            blocks.append(Block(section if not rest else f"{section}\n{rest}", new_section=True, section=section))
        else:
            blocks.append(Block(paragraph, section=section))
    return blocks


@parser("python_peps")
def parse_peps(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """PEPs (reStructuredText): header block gives the title, sections split at underlined headings."""
    for rel, path in _files(source, raw_dir, max_files):
        text = read_text_file(path, ctx)
        if text is None:
            continue
        header, _, body = text.replace("\r\n", "\n").partition("\n\n")
        match = re.search(r"^Title:\s*(.+(?:\n[ \t]+.+)*)", header, flags=re.MULTILINE)
        number = re.search(r"^PEP:\s*(\d+)", header, flags=re.MULTILINE)
        if not match:
            ctx.problem(rel, 1, "PEP header has no 'Title:' line", "bad_header")
            continue
        title = f"PEP {number.group(1) if number else '?'}: {' '.join(match.group(1).split())}"
        blocks = _rst_blocks(ctx.limit(body))
        if not blocks:
            ctx.skip("empty")
            continue
        ctx.report.records += 1
        yield RawDocument(title=title, blocks=blocks, file=rel)


_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_blocks(text: str) -> list[Block]:
    """Paragraphs of Markdown; fenced code stays whole; ``#`` headings start sections."""
    blocks: list[Block] = []
    section, buffer, in_fence = "", [], False

    def flush() -> None:
        if buffer and "\n".join(buffer).strip():
            paragraph = "\n".join(buffer).strip()
            blocks.append(Block(paragraph, section=section))
        buffer.clear()

    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            buffer.append(line)
            continue
        if in_fence:
            buffer.append(line)
        elif not line.strip():
            flush()
        elif line.startswith("#"):
            flush()
            section = line.lstrip("#").strip()
            blocks.append(Block(section, new_section=True, section=section))
        else:
            buffer.append(line)
    flush()
    return blocks


@parser("tldr_pages")
def parse_tldr(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """tldr pages: one Markdown help page (description + examples) per document."""
    for rel, path in _files(source, raw_dir, max_files):
        text = read_text_file(path, ctx)
        if text is None:
            continue
        if not text.strip():
            ctx.skip("empty")
            continue
        command = text.lstrip().split("\n", 1)[0].lstrip("# ").strip()
        platform = Path(rel).parent.name
        ctx.report.records += 1
        yield RawDocument(
            title=f"{command} ({platform})",
            blocks=[Block(clean_text(b.text)) for b in markdown_blocks(ctx.limit(text))],
            file=rel,
        )


@parser("rust_book")
def parse_rust_book(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """The Rust book (mdBook Markdown); include directives whose targets are absent are dropped."""
    files = [(rel, path) for rel, path in _files(source, raw_dir, None) if Path(rel).name != "SUMMARY.md"]
    for rel, path in files[:max_files] if max_files else files:
        text = read_text_file(path, ctx)
        if text is None:
            continue
        text = re.sub(r"^.*\{\{#(rustdoc_include|include)[^}]*\}\}.*$", "", text, flags=re.MULTILINE)
        blocks = markdown_blocks(ctx.limit(text))
        if not blocks:
            ctx.skip("empty")
            continue
        title = next((b.section for b in blocks if b.new_section), Path(rel).stem)
        ctx.report.records += 1
        yield RawDocument(title=title, blocks=blocks, file=rel)


# ----------------------------------------------------------------------------- general sources

_WIKI_TITLE = re.compile(r"^ = ([^=].*?) = $")
_WIKI_HEADING = re.compile(r"^ (= )+(.*?)( =)+ $")


def detokenize_wikitext(text: str) -> str:
    """Undo WikiText tokenisation: ``1 @,@ 000`` → ``1,000``, ``a @-@ b`` → ``a-b``, `` , `` → ``, ``."""
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    text = re.sub(r" ([.,;:!?%)\]}'])", r"\1", text)
    text = re.sub(r"([(\[{]) ", r"\1", text)
    text = re.sub(r'" (.*?) "', r'"\1"', text)
    return text.replace(" 's", "'s").strip()


@parser("wikitext2")
def parse_wikitext(source: Source, raw_dir: Path, ctx: ReadContext, max_files: int | None) -> Iterator[RawDocument]:
    """WikiText-2: one document per article (`` = Title = `` lines), sections at `` = = H = = ``."""
    for rel, path in _files(source, raw_dir, max_files):
        text = read_text_file(path, ctx)
        if text is None:
            continue
        articles: list[tuple[str, int, list[Block]]] = []  # (title, first line, paragraphs)
        section = ""
        for line_no, line in enumerate(text.split("\n"), start=1):
            if (match := _WIKI_TITLE.match(line)) is not None:
                articles.append((detokenize_wikitext(match.group(1)), line_no, []))
                section = ""
            elif not articles:
                continue  # text before the first title belongs to no article
            elif (match := _WIKI_HEADING.match(line)) is not None:
                section = detokenize_wikitext(match.group(2))
                articles[-1][2].append(Block(section, new_section=True, section=section))
            elif line.strip():
                articles[-1][2].append(Block(ctx.limit(detokenize_wikitext(line)), section=section))
        for title, start_line, blocks in articles:
            if not blocks:
                ctx.skip("empty")
                continue
            ctx.report.records += 1
            yield RawDocument(title=title, blocks=blocks, file=rel, locator=f"line {start_line}")


# ----------------------------------------------------------------------------- a user's own corpus


def parse_user_corpus(path: Path, ctx: ReadContext, text_field: str = "text", id_field: str = "id",
                      source_field: str = "source") -> Iterator[RawDocument]:  # fmt: skip
    """A user corpus (JSONL, .jsonl.gz, Parquet or a folder of them): ``text_field`` required, optional
    ``id``, ``title``, ``domain``; every other field is kept as the document's metadata."""
    from equal.data.user_corpus import iter_documents

    for doc in iter_documents(path, ctx, text_field, id_field, source_field):
        yield RawDocument(
            title=doc["title"],
            blocks=_text_blocks(doc["text"], ctx),
            file=doc["file"],
            locator=doc["locator"],
            domain=doc["domain"],
            metadata=doc["metadata"] or None,
        )


def parse_user_jsonl(path: Path, ctx: ReadContext) -> Iterator[RawDocument]:
    """A user corpus in JSONL with a ``text`` field (see :func:`parse_user_corpus`)."""
    return parse_user_corpus(path, ctx)
