"""Every corpus parser on the real upstream files (../shared/data), a few files each."""

import re

import pytest

from equal.data.reading import ReadContext
from equal.data.sources import PARSERS


def parse(manifest, raw_dir, name, max_files=2):
    ctx = ReadContext(on_error="raise")
    docs = list(PARSERS.get(name)(manifest[name], raw_dir, ctx, max_files))
    return docs, ctx.report


def text_of(doc):
    return "\n\n".join(b.text for b in doc.blocks)


def test_every_corpus_source_has_a_parser(manifest):
    corpus = {name for name, source in manifest.items() if source.role == "corpus"}
    assert corpus <= set(PARSERS), corpus - set(PARSERS)


@pytest.mark.parametrize(
    "name",
    [
        "asdiv",
        "math_eval_collections",
        "openstax_prealgebra",
        "khan_exercises",
        "matheducators_stackexchange",
        "conala",
        "python_api_docs",
        "python_peps",
        "tldr_pages",
        "openstax_python",
        "rust_book",
        "wikitext2",
        "openstax_philosophy",
        "openstax_us_history",
    ],
)
@pytest.mark.slow
def test_parser_yields_clean_documents(manifest, raw_dir, name):
    docs, report = parse(manifest, raw_dir, name)
    assert docs and report.records >= 1 and report.skipped_total == 0
    for doc in docs[:50]:
        text = text_of(doc)
        assert text.strip(), doc
        assert doc.file.startswith("raw/")
        assert not re.search(r"</?(p|div|para|row|m:math)\b", text), f"markup left in {doc.file}: {text[:200]}"


def test_asdiv_problem_has_question_solution_answer(manifest, raw_dir):
    docs, _ = parse(manifest, raw_dir, "asdiv")
    first = text_of(docs[0])
    assert first.startswith("Seven red apples and two green apples are in the basket. How many apples")
    assert "Solution: 7+2=9" in first and "Answer: 9 (apples)" in first
    assert docs[0].locator == "ID=nluds-0001"
    assert len(docs) == 2305


@pytest.mark.slow
def test_stackexchange_html_bodies_become_text(manifest, raw_dir):
    docs, report = parse(manifest, raw_dir, "matheducators_stackexchange")
    assert docs[0].title == "Encouraging class participation"
    assert "I teach calculus to college students" in text_of(docs[0])
    assert any(d.title.startswith("Answer to: ") for d in docs)
    assert report.records == 397 + 1507


@pytest.mark.slow
def test_cnxml_renders_mathml_linearly(manifest, raw_dir):
    docs, _ = parse(manifest, raw_dir, "openstax_prealgebra", max_files=None)
    section = next(d for d in docs if d.file.endswith("m81243/index.cnxml"))
    text = text_of(section)
    assert "counting numbers" in text
    assert "1/4" in text  # <m:mfrac><m:mn>1</m:mn><m:mn>4</m:mn></m:mfrac>
    assert any(b.new_section for b in section.blocks)


def test_khan_keeps_template_text_and_drops_javascript(manifest, raw_dir):
    docs, _ = parse(manifest, raw_dir, "khan_exercises", max_files=1)
    text = text_of(docs[0])
    assert docs[0].title == "Finding absolute values"
    assert "{commafy(NUMBER)}" in text
    assert "randRange" not in text and "numberLine" not in text


def test_wikitext_is_detokenized_into_articles(manifest, raw_dir):
    docs, report = parse(manifest, raw_dir, "wikitext2", max_files=None)
    assert report.records == 122
    assert docs[0].title == "Homarus gammarus"
    text = text_of(docs[0])
    assert "@-@" not in text and "@,@" not in text and " , " not in text
    assert "4,386" in text


def test_peps_tldr_rust_conala_api_docs(manifest, raw_dir):
    peps, _ = parse(manifest, raw_dir, "python_peps", max_files=1)
    assert peps[0].title.startswith("PEP 1: ")
    tldr, _ = parse(manifest, raw_dir, "tldr_pages", max_files=1)
    assert tldr[0].title == "am (android)"
    rust, _ = parse(manifest, raw_dir, "rust_book", max_files=None)
    assert all("{{#" not in text_of(d) for d in rust)
    assert not any(d.file.endswith("SUMMARY.md") for d in rust)
    conala, report = parse(manifest, raw_dir, "conala")
    assert "```python" in text_of(conala[0])
    assert report.records == 2879
    api, report = parse(manifest, raw_dir, "python_api_docs")
    assert api[0].title == "Python standard library: abc"
    assert report.records == 12958
