"""Extraction prompts, in one place and versioned (refinement's are in :mod:`equal.llm.refine`).

Every prompt is kept under its version (:data:`PROMPTS`); the version is part of every cache key, so
answers to one prompt are never reused for another, and a run can be repeated with an older prompt.
Change a prompt only by adding a new version. The instruction comes before the document so that
backends with prefix caching (llama.cpp, vLLM) evaluate it once for all documents.
"""

from __future__ import annotations

from dataclasses import dataclass

from equal.errors import ConfigError
from equal.llm.quality import FINAL_ANSWER
from equal.llm.types import Messages


@dataclass(frozen=True)
class Prompt:
    """One version of the extraction prompts."""

    version: str
    system: str
    extract: str  # formatted with max_pairs, followed by the document
    retry_note: str = (
        "\n\nYour previous reply was not valid JSON in the required format. Reply with the JSON object only."
    )


_FORMAT = 'Format: {{"pairs": [{{"question": "...", "answer": "..."}}]}}'

PROMPTS = {
    # The first prompt: short instructions; answers came out terse (a number, one line).
    "qa-extract-v1": Prompt(
        "qa-extract-v1",
        system="You turn documents into question-answer pairs for instruction tuning. Reply with JSON only.",
        extract=(
            "Write up to {max_pairs} question-answer pairs that the document below supports.\n"
            "- Each question must be self-contained: answerable without seeing the document.\n"
            "- Each answer must be correct and complete; keep the document's worked steps when it has them.\n"
            "- Skip boilerplate and references.\n" + _FORMAT + "\n\nDocument:\n"
        ),
    ),
    # Pairs fit for instruction tuning: self-contained questions, worked solutions with one final-answer line
    # (the convention D_r and the evaluation gold text share), working code, prose explanations.
    "qa-extract-v2": Prompt(
        "qa-extract-v2",
        system="You write instruction-tuning data: questions a student could ask and the answers a good teacher "
        "would give. Reply with JSON only.",
        extract=(
            "Using the document below, write up to {max_pairs} question-answer pairs.\n"
            "- Each question stands alone: it states every number, name and fact needed to answer it, and never "
            "mentions the document, the text or the passage.\n"
            "- For a problem to solve (arithmetic, algebra, a word problem), the answer solves it step by step, one "
            f"short step per line, and its last line is '{FINAL_ANSWER} <final answer>'.\n"
            "- For a programming task, the answer is complete, working Python code in a ```python block.\n"
            "- For a question about a concept or a fact, the answer explains it in two to four sentences.\n"
            "- Prefer the problems and tasks the document teaches; skip boilerplate, navigation and references.\n"
            + _FORMAT
            + "\n\nDocument:\n"
        ),
    ),
}


@dataclass(frozen=True)
class ChatPrompt:
    """One version of a prompt for a call other than extraction (rating, rewriting): a system message and a user
    template; kept under its version like the extraction prompts, the version being part of every cache key."""

    version: str
    system: str
    user: str  # a str.format template

    def messages(self, **fields) -> Messages:
        """The chat messages with ``fields`` filled into the user template."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user.format(**fields)}]


def pick_prompt(prompts: dict[str, ChatPrompt], version: str, kind: str) -> ChatPrompt:
    """The ``kind`` prompt of ``version`` from ``prompts``; an unknown version names the known ones."""
    if version not in prompts:
        raise ConfigError(f"unknown {kind} prompt {version!r}; known: {sorted(prompts)}")
    return prompts[version]


#: The default prompt version (profiles may name another: ``extraction.prompt_version``).
PROMPT_VERSION = "qa-extract-v1"


def get_prompt(version: str) -> Prompt:
    """The prompt of ``version``; an unknown version names the known ones."""
    if version not in PROMPTS:
        raise ConfigError(f"unknown prompt version {version!r}; known: {sorted(PROMPTS)}")
    return PROMPTS[version]


def qa_schema(max_pairs: int) -> dict:
    """JSON schema of an answer: ``{"pairs": [{"question": str, "answer": str}, ...]}``."""
    pair = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"],
    }
    return {
        "type": "object",
        "properties": {"pairs": {"type": "array", "items": pair, "maxItems": max_pairs}},
        "required": ["pairs"],
    }


def extraction_messages(document: str, max_pairs: int, retry: bool = False, version: str = PROMPT_VERSION) -> Messages:
    """Chat messages asking for the QA pairs of ``document``."""
    prompt = get_prompt(version)
    user = prompt.extract.format(max_pairs=max_pairs) + document + (prompt.retry_note if retry else "")
    return [{"role": "system", "content": prompt.system}, {"role": "user", "content": user}]


def prompt_overhead(max_pairs: int, version: str = PROMPT_VERSION) -> str:
    """The fixed text around a document (to budget the document's share of the context)."""
    prompt = get_prompt(version)
    return prompt.system + prompt.extract.format(max_pairs=max_pairs) + prompt.retry_note
