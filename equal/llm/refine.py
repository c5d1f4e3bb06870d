"""The paper's refinement pass: every extracted pair rewritten once into a pair fit for tuning, and verified.

The paper does not train on raw extractions: its extractor's pairs go through one pass that fixes the format,
fills in missing answers and corrects errors (as MAmmoTH2 does). Here each pair is refined on its own, by the
extractor or another model (``llm.refiner``), with a versioned prompt (:data:`REFINE_PROMPTS`) that sees the
document, the draft question and answer, and a few solutions of the target's reference set D_r as examples of the
style to write in. What a pair becomes depends on its kind (:func:`pair_kind`):

* a **problem** gets a worked solution in D_r's style whose last line is the final-answer line; it is accepted
  only when that final answer equals the draft's (:func:`equal.llm.verify.answers_match`), every inline
  calculation is right (:func:`equal.llm.verify.wrong_calculations`) and it shows its working (two steps, or one
  calculation written out: a one-operation problem has one step);
* a **programming task** gets complete code in a ```python block, which must parse and pass the document's own
  ``assert`` lines where it has some (:func:`equal.llm.verify.code_check`);
* a **concept question** gets a two-to-four sentence explanation.

Every question is rewritten to stand alone. Up to ``attempts`` calls are made per pair — greedy first, sampled
after, each seeded — until one is accepted; a pair none of them fixes is dropped (``on_failure: drop``) or keeps
its draft (``keep_draft``). Each pair keeps ``draft_question``, ``draft_answer``, ``reference_answer``, its kind and
how it was refined. Every call goes through the exactly-once cache and is charged to the ledger (stage
``refine``), like extraction's.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction

from equal.errors import ConfigError
from equal.llm.program import (
    CONSTANTS,
    ProgramRun,
    agreeing,
    numbers_in,
    program_of,
    run_program,
    unstated_numbers,
    vote,
)
from equal.llm.quality import _CODE_TASK, _PROBLEM, code_blocks, has_steps, is_degenerate
from equal.llm.types import Completion, GenerationParams, Messages
from equal.llm.verify import (
    _FENCED,
    answers_match,
    as_number,
    code_check,
    document_answer,
    final_answer,
    inline_calculations,
    reference_answer,
    wrong_calculations,
)
from equal.task import FINAL_ANSWER

KINDS = ("problem", "code", "concept")
POLICIES = ("drop", "keep_draft")
#: How a refined pair ended: accepted (verified problem, working code, explanation) or not, and why.
OUTCOMES = ("verified", "accepted", "kept_draft", "no_reference", "wrong_answer", "wrong_arithmetic", "no_steps",
            "code_fails", "malformed", "truncated", "degenerate",
            # refine-v4's: programs that do not agree, an answer other than the document's, a question that needs
            # numbers it does not state or points at a text, prompt scaffolding in the pair, an answer its document
            # does not support, code without tests or with prose around it, a final answer the working does not reach
            "no_agreement", "disagrees_with_document", "not_self_contained", "leak", "unsupported", "no_tests",
            "code_prose", "answer_not_worked",
            # a problem whose question states no number or numbers its document does not; a kind the profile does
            # not keep; code whose functions take nothing or return a constant
            "invented_numbers", "kind_not_kept", "trivial_code")  # fmt: skip


@dataclass(frozen=True)
class RefinePrompt:
    """One version of the refinement prompts: a system message and one user template per pair kind."""

    version: str
    system: str
    problem: str
    code: str
    concept: str
    example: str = "Question: {question}\nSolution:\n{solution}"
    # few-shot as chat turns (the examples asked as users and answered as the assistant, in the asked reply
    # format) rather than listed inside one message: small models copy a shown turn far more faithfully
    few_shot: bool = False
    example_user: dict[str, str] = field(default_factory=dict)  # per kind: an example's request
    # program-aided answers (refine-v4): a problem's answer is computed by programs that vote (equal.llm.program),
    # checked against the answer its document states, and only then is its worked solution written to that answer;
    # every kind is held to the strict checks (:func:`strict_failures`)
    program_answers: bool = False
    program_system: str = ""  # writes the stand-alone question and a program, seeing the document
    program: str = ""
    vote_system: str = ""  # writes a program from the question alone (a sampled vote)
    vote: str = ""
    example_code: str = "Question: {question}\nSolution:\n{solution}"  # a code example's reply


_REPLY = "Reply in exactly this format and nothing else:\nQuestion: <the question>\nSolution:\n<the solution>"

REFINE_PROMPTS = {
    "refine-v1": RefinePrompt(
        "refine-v1",
        system="You turn rough question-answer pairs into clean training examples for a student. You follow the "
        "requested format exactly.",
        problem=(
            "Rewrite the draft below as one problem and its solution.\n"
            "- The question stands alone: it states every number and fact needed and never mentions a document, a "
            "text or a passage.\n"
            "- Solve it in the style of the examples: one short plain sentence per line, each calculation written "
            "inline (like 48 / 2 = 24), no numbering, no bullets, no headings.\n"
            f"- The last line is exactly '{FINAL_ANSWER} {{reference}}'.\n"
            "{examples}{document}Draft question: {question}\nDraft answer: {answer}\n"
            "The correct final answer is: {reference}\n\n" + _REPLY
        ),
        code=(
            "Rewrite the draft below as one programming task and its solution.\n"
            "- The task stands alone: it names the function to write, its inputs and what it returns, and never "
            "mentions a document or a text.\n"
            "- The solution is complete, working Python code in one ```python block, in the style of the examples.\n"
            "{examples}{document}Draft task: {question}\nDraft answer: {answer}\n\n" + _REPLY
        ),
        concept=(
            "Rewrite the draft below as one question and its answer.\n"
            "- The question stands alone and never mentions a document, a text or a passage.\n"
            "- The answer explains it correctly in two to four plain sentences.\n"
            "{examples}{document}Draft question: {question}\nDraft answer: {answer}\n\n" + _REPLY
        ),
    ),
    # v2 (after the pilot of v1, where both refiners copied the draft answer into the solution): a problem is shown
    # with its final answer only, not its draft, and the examples as problems with solutions
    "refine-v2": RefinePrompt(
        "refine-v2",
        system="You are a patient math and programming teacher. You write clear worked solutions and follow the "
        "requested format exactly.",
        problem=(
            "{examples}Now a new problem. First restate it so that it stands alone (every number and fact it needs, "
            "no mention of a document or a text). Then solve it in the style of the examples above: one short plain "
            "sentence per line, each calculation written inline (like 48 / 2 = 24), no numbering, no bullets. Its "
            f"final answer is {{reference}}, so the last line is exactly '{FINAL_ANSWER} {{reference}}'.\n"
            "{document}Problem: {question}\n\n" + _REPLY
        ),
        code=(
            "{examples}Now a new programming task. Restate it so that it stands alone (the function to write, its "
            "inputs and what it returns, no mention of a document or a text), then write complete, working Python "
            "code for it in one ```python block, in the style of the examples above.\n"
            "{document}Task: {question}\nNotes (may be incomplete or wrong): {answer}\n\n" + _REPLY
        ),
        concept=(
            "Restate the question below so that it stands alone (no mention of a document, a text or a passage), "
            "then answer it correctly in two to four plain sentences of your own.\n"
            "{document}Question: {question}\nNotes (may be incomplete or wrong): {answer}\n\n" + _REPLY
        ),
        example="Problem: {question}\nSolution:\n{solution}",
    ),
    # v3 (after v2 verified 1 of 16 problems: the 1.5B answered "97" or "2 + 9 = 11" with no steps and no final
    # line, ignoring examples listed inside the message): the D_r examples are earlier chat turns answered in the
    # reply format, and every request ends with the final answer the solution must reach
    "refine-v3": RefinePrompt(
        "refine-v3",
        system="You are a patient math and programming teacher. For each problem you are given, you restate it so "
        "that it stands alone (every number and fact it needs, no mention of a document or a text) and write a "
        "worked solution in the same style as your earlier solutions: one short plain sentence per line, each "
        f"calculation written inline (like 48 / 2 = 24), and the last line '{FINAL_ANSWER} <final answer>'. For a "
        "programming task you write complete, working Python code in one ```python block. You always reply in "
        "exactly this format:\nQuestion: <the question>\nSolution:\n<the solution>",
        problem="{document}Problem: {question}\nFinal answer: {reference}",
        code="{document}Task: {question}\nNotes (may be incomplete or wrong): {answer}",
        concept=(
            "Restate the question below so that it stands alone (no mention of a document, a text or a passage), "
            "then answer it correctly in two to four plain sentences of your own.\n"
            "{document}Question: {question}\nNotes (may be incomplete or wrong): {answer}\n\n" + _REPLY
        ),
        few_shot=True,
        example_user={"problem": "Problem: {question}\nFinal answer: {answer}", "code": "Task: {question}"},
    ),
    # v4 (issue 39: v3 let the 0.5B draft's answer decide, and the refiner bent its arithmetic to reach it): the
    # answer is what programs print and agree on, checked against the document's own answer; the worked solution
    # is then written to it; code comes with tests that run; concepts must be supported by their document
    "refine-v4": RefinePrompt(
        "refine-v4",
        system="You are a patient math and programming teacher. For each problem you are given, you write a worked "
        "solution in the same style as your earlier solutions: one short plain sentence per line, each calculation "
        f"written inline (like 48 / 2 = 24), and the last line '{FINAL_ANSWER} <final answer>'. For a programming "
        "task you write one Python function in one ```python block, with no prose, no print and no example calls, "
        "then a few assert lines that test it. You always reply in exactly the format of your earlier replies.",
        problem="Problem: {question}\nFinal answer: {reference}",
        code="{document}Task: {question}",
        concept=(
            "Restate the question below so that it stands alone and names what it is about (no mention of a "
            "document, a text, a passage or an author), then answer it in two to four plain sentences, using only "
            "what the source document says.\n{document}Question: {question}\n\n" + _REPLY
        ),
        example_user={"problem": "Problem: {question}\nFinal answer: {answer}", "code": "Task: {question}"},
        few_shot=True,
        example_code="Question: {question}\nSolution:\n{solution}\nTests:\n```python\n{tests}\n```",
        program_answers=True,
        program_system="You turn a draft question about a source document into one math word problem that stands "
        "alone, and you solve it with a short Python program. The problem states every number and fact it needs "
        "and never mentions a document, a text or a passage. The program computes the answer step by step and "
        "ends by printing only the final answer, a number. Reply in exactly this format and nothing else:\n"
        "Question: <the problem>\nProgram:\n```python\n<the program>\n```",
        program="Source document (for facts only):\n{document}\n\nDraft question: {question}",
        vote_system="You solve math word problems with short Python programs. The program computes the answer step "
        "by step and ends by printing only the final answer, a number. Reply with one ```python block and "
        "nothing else.",
        vote="Problem: {question}",
    ),
}

_SHORT_ANSWER_CHARS = 40
_QUANTITY_QUESTION = re.compile(r"\bhow (?:many|much|long|far|old)\b", re.IGNORECASE)
_YEAR = re.compile(r"1[0-9]{3}|20[0-9]{2}")
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
_COMPUTED_RESULT = re.compile(r"=\s*(-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)(?![\w])")  # the right-hand side of "… = N"
_FORMULA = re.compile(r"\\(?:frac|sqrt|int|sum|cdot|times)|[=^]|\d\s*[-+*/×÷]\s*\d|\b[a-z]\s*[-+*/^=]\s*\d", re.I)
_REPLY_PARTS = re.compile(
    r"^\s*\**(?:question|problem|task)\s*:\s*\**\s*(.+?)\n\s*\**(?:solution|answer)\s*:\s*\**\s*\n?(.*)$",
    re.S | re.IGNORECASE,
)  # fmt: skip  (bold headers too: "**Question:** …"; the request's own "Problem:" / "Task:")
_LAST_RESULT = re.compile(r"[=≈]\s*\$?-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")  # "= 26", "≈ 26", "= 1/2"
_EXPONENT_OR_BRACKET = re.compile(r"\^\s*\d+|[²³]|\([^()]*\)")
_WRITTEN_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?(?![\w])")  # "52", "1/2", "1,200.5"
_SENTENCE = re.compile(r"[.!?](?:\s|$)")


def get_refine_prompt(version: str) -> RefinePrompt:
    """The refinement prompt of ``version``; an unknown version names the known ones."""
    if version not in REFINE_PROMPTS:
        raise ConfigError(f"unknown refinement prompt {version!r}; known: {sorted(REFINE_PROMPTS)}")
    return REFINE_PROMPTS[version]


_ASKS_QUANTITY = re.compile(
    r"\bhow (?:many|much|long|far|old|fast|tall|high|heavy)\b|\bwhat (?:is|was|are|were) the (?:total|sum|difference|"
    r"product|cost|price|number|average|mean|area|perimeter|volume|value|amount|speed|distance|ratio|percentage|"
    r"remainder|result)\b|\b(?:calculate|compute|find|determine)\b",
    re.IGNORECASE,
)  # fmt: skip


def word_problem(question: str, document: str) -> bool:
    """A question asking for a quantity whose numbers are in its document (two or more, not years): a word problem
    to restate with those numbers and solve, however its draft answered it."""
    numbers = [n for n in _NUMBER_IN_TEXT.findall(document) if not _YEAR.fullmatch(n)]
    return bool(_ASKS_QUANTITY.search(question)) and len(numbers) >= 2


def pair_kind(question: str, answer: str, document: str | None = None) -> str:
    """With ``document``, the document decides first: a snippet document (:func:`snippet_document`) gives ``code``,
    one stating a numeric answer (:func:`states_numeric_answer`) ``problem``. Otherwise ``code`` (a programming
    task, or an answer holding code), ``problem`` (something to work out from numbers the question gives: two
    numbers or a formula, or one number and a numeric final answer; or a quantity asked for — how many, how much, …
    — and answered with a number; with ``document``, also a quantity asked about a document giving two numbers or
    more, :func:`word_problem`) or ``concept`` (everything else: a fact or an explanation, whatever its answer's
    last line says)."""
    problem = bool(_PROBLEM.search(question))
    if code_blocks(answer) or (problem and _CODE_TASK.search(question)):
        return "code"
    # with its document (refine-v4), the document decides first, whatever the draft says: a snippet (a task and its
    # code: CoNaLa's) is a programming task; a document stating one numeric answer (ASDiv's "Answer: 18", a
    # "#### 18") is a problem whose answer is checked against that one (issue 39's audit read both demoted to
    # one-line concept answers)
    if document is not None and snippet_document(document):
        return "code"
    if document is not None and states_numeric_answer(document):
        return "problem"
    # quantities to compute with: a year ("in 1857", "the war of 1812") is a date, not a quantity
    numbers = [n for n in _NUMBER_IN_TEXT.findall(question) if not _YEAR.fullmatch(n)]
    formula = bool(_FORMULA.search(question))
    stated = reference_answer(answer)
    numeric = stated is not None and as_number(stated) is not None
    computed = numeric and _bare(stated) not in numbers
    # a stated answer that is a long sentence, not a quantity, cannot be verified: it is explained, not solved
    sentence = stated is not None and len(stated) > _SHORT_ANSWER_CHARS and not numeric
    if (
        (problem or "?" in question)
        and not sentence
        and (len(numbers) >= 2 or formula or (len(numbers) == 1 and computed))
    ):
        return "problem"
    # "How many buses should be rented?" — "26": a word problem whose numbers are in the document (or spelled out,
    # "nine shelves"); a quantity asked for and a quantity answered make it a problem, never a year
    if numeric and _QUANTITY_QUESTION.search(question) and not _YEAR.fullmatch(_bare(stated)):
        return "problem"
    # with its document (refine-v4): a quantity asked about a document that gives the numbers is a problem even
    # when the draft answered in words; its answer is computed, so a misjudged concept costs calls, never a pair
    if document is not None and word_problem(question, document):
        return "problem"
    return "concept"


_SNIPPET_PROSE_CHARS = 300


_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[ \t]*\n.*?^```[ \t]*$", re.M | re.S)  # a line-anchored fenced block


def snippet_document(document: str) -> bool:
    """A document that is Python code with at most a line or two of prose around it (a task and its snippet, or
    two, as CoNaLa's): what it teaches is a programming task. A block in another language (```rust) is not."""
    languages = _FENCE.findall(document)
    prose = _FENCE.sub("", document).strip()
    return bool(languages) and all(lang.lower() in ("", "python", "py") for lang in languages) and len(
        prose) <= _SNIPPET_PROSE_CHARS  # fmt: skip


def states_numeric_answer(document: str) -> bool:
    """Whether ``document`` states one final answer that is a number (:func:`equal.llm.verify.document_answer`)."""
    stated = document_answer(document)
    return stated is not None and as_number(stated) is not None


def _bare(text: str) -> str:
    number = _NUMBER_IN_TEXT.search(text)
    return number.group(0) if number else text


_ANSWER_LINE = re.compile(r"^\s*\**(?:final answer|answer)\**\s*[:：]\s*\**\s*(.+?)\s*$", re.IGNORECASE)


def with_final_line(solution: str) -> str:
    """``solution`` ending with the final-answer line: a last line written another way (``Answer: 4``,
    ``**Final answer:** 4``) is rewritten to ``The answer is: 4``; the answer itself is not touched (it is verified
    afterwards)."""
    lines = solution.rstrip().splitlines()
    if not lines or lines[-1].strip().lower().startswith(FINAL_ANSWER.lower()):
        return solution.rstrip()
    match = _ANSWER_LINE.match(lines[-1])
    if match:
        lines[-1] = f"{FINAL_ANSWER} {match.group(1).strip().strip('$').strip()}"
    return "\n".join(lines)


_ECHO = re.compile(r"^\s*\**(?:task|problem|source document)\b|notes \(may be incomplete", re.IGNORECASE)
_SOLUTION_ONLY = re.compile(r"^\s*\**solution\s*:\s*\**\s*\n?(.*)$", re.S | re.IGNORECASE)


def parse_refined(text: str, draft_question: str | None = None) -> tuple[str, str] | None:
    """(question, solution) from a refinement reply; None when it is not in the asked format.

    With ``draft_question``, a reply that answers without restating the question (only a ``Solution:``, or the
    solution alone) keeps the draft's question: small refiners often skip the restatement, and what the answer
    says is verified afterwards either way. A reply that echoes the request back is never a solution."""
    stripped = text.strip()
    match = _REPLY_PARTS.match(stripped)
    if match:
        question, solution = match.group(1).strip(), match.group(2).strip()
        return (question, solution) if question and solution else None
    if draft_question is None or not stripped or _ECHO.search(stripped):
        return None
    only = _SOLUTION_ONLY.match(stripped)
    solution = only.group(1).strip() if only else stripped
    return (draft_question, solution) if solution and not _REPLY_PARTS.match(solution) else None


@dataclass(frozen=True)
class RefinementConfig:
    """Refinement settings (those that shape a call are part of its cache key through the messages and params)."""

    prompt_version: str = "refine-v1"
    attempts: int = 4  # calls per pair at most: greedy first, then sampled
    examples: int = 3  # D_r solutions shown per problem / programming task
    max_tokens: int = 384
    temperature: float = 0.7  # of the sampled attempts
    repeat_penalty: float = 1.1
    # what the prompt shows, cut to these: on a CPU, evaluating the prompt costs more than writing the answer
    max_document_tokens: int = 256
    max_draft_tokens: int = 256
    on_failure: str = "drop"  # drop | keep_draft: a pair no attempt fixes
    seed: int = 0
    # program-aided answers (prompts with program_answers): programs written per problem (the first greedy and seeing
    # the document, the others sampled from the question alone), how many must print the same answer, their budget
    votes: int = 4
    min_agree: int = 3
    program_tokens: int = 256
    # a concept answer is kept when at least this share of its content words occur in its document
    min_support: float = 0.6
    # the pair kinds refined and kept; a draft of another kind is dropped before any call (outcome kind_not_kept)
    kinds: tuple[str, ...] = KINDS

    def __post_init__(self) -> None:
        get_refine_prompt(self.prompt_version)
        if self.on_failure not in POLICIES:
            raise ConfigError(f"refinement.on_failure must be one of {POLICIES}, got {self.on_failure!r}")
        if self.attempts < 1:
            raise ConfigError(f"refinement.attempts must be at least 1, got {self.attempts}")
        if self.examples < 0:
            raise ConfigError(f"refinement.examples must be 0 or more, got {self.examples}")
        if not 1 <= self.min_agree <= self.votes:
            raise ConfigError(f"refinement.min_agree must be between 1 and votes ({self.votes}), got {self.min_agree}")
        if not 0.0 <= self.min_support <= 1.0:
            raise ConfigError(f"refinement.min_support must be a share in [0, 1], got {self.min_support}")
        given = [self.kinds] if isinstance(self.kinds, str) else list(self.kinds)  # a profile's YAML list
        if not given or set(given) - set(KINDS):
            raise ConfigError(f"refinement.kinds must be a list of some of {list(KINDS)}, got {self.kinds!r}")
        object.__setattr__(self, "kinds", tuple(k for k in KINDS if k in given))  # one order: one identity


@dataclass
class RefinedPair:
    """One draft pair's refinement: the pair to keep (None: dropped), its outcome and what was paid."""

    draft: dict
    kind: str
    reference: str | None
    pair: dict | None = None
    outcome: str = "malformed"
    attempts: int = 0
    records: list = field(default_factory=list)  # (completion, cached) of every call, in order
    hit_limit: bool = False
    # program-aided answers: the stand-alone question, the agreeing program, the vote and the document's answer
    provenance: dict = field(default_factory=dict)


def pick_examples(references: list[dict], count: int, seed: int = 0, with_tests: bool = False) -> list[dict]:
    """``count`` D_r items (``question`` and ``solution``) picked with a seed: the style examples; ``with_tests``
    keeps a programming task's ``test_list`` as ``tests`` (the asserts refine-v4 asks code to come with)."""
    usable = [r for r in references if r.get("question") and (r.get("solution") or r.get("answer"))]
    chosen = random.Random(seed).sample(usable, k=min(count, len(usable)))
    examples = [{"question": r["question"], "solution": r.get("solution") or r["answer"]} for r in chosen]
    if with_tests:
        for example, reference in zip(examples, chosen, strict=True):
            if reference.get("test_list"):
                example["tests"] = "\n".join(reference["test_list"])
    return examples


_LEAK = re.compile(
    r"notes \(may be|source document|draft (?:question|answer|task)|<unk>|<\|im_(?:start|end)\|>"
    r"|^\s*\**(?:problem|task|question|solution|program|final answer)\s*:",
    re.IGNORECASE | re.M,
)  # fmt: skip  (the request's scaffolding copied into a pair)
_POINTS_AT_TEXT = re.compile(
    r"\b(?:the|this|that|above|below|following|given|provided|attached)\s+(?:document|text|passage|article|excerpt|"
    r"section|paragraph|page|snippet|source|context|author|example|code|table|figure)\b|\baccording to\b"
    r"|\b(?:mentioned|described|shown|given|provided|discussed) (?:above|below|earlier|here)\b",
    re.IGNORECASE,
)  # fmt: skip
#: a concept question about something it never names, for the reader who has not seen the document: "this PEP",
#: "the crux of the matter", "point A", "What did Howard tell me before?" ("How do I …" asks in general and stays)
_UNNAMED_REFERENT = re.compile(
    r"\b(?:this|these)\s+(?!is\b|are\b|was\b|were\b)[a-z]+"
    r"|\bthe (?:matter|above|following|former|latter|author|speaker|narrator|writer)\b"
    r"|\b(?:me|my)\b"  # "we" and "us" are often general ("How do we compute the mean?", "the US")
    # a first-person "I" (case-sensitive, never "World War I", "Article I", "Type I", "I/O")
    r"|(?-i:(?<!how do )(?<!how can )(?<!how should )(?<!can )(?<!should )(?<!do )(?<!War )(?<!Article )(?<!Type )"
    r"(?<!Part )(?<!Title )(?<!Chapter )(?<!Section )(?<!Book )(?<!Act )\bI\b(?![/.\w]))"
    r"|(?-i:\bpoint [A-Z]\b)|\b(?:figure|table|line|step|exercise|example|graph|equation)\s+\d"
    r"|^\W*(?:what|how|why|when|where|who|whom)\s+(?:did|does|do|is|was|were|are|will|would|can|should|has|had)\s+"
    r"(?:he|she|they|him|her|it|his|their)\b",
    re.IGNORECASE,
)  # fmt: skip
#: a request phrased as an order rather than a question ("Explain why …", "List the …"): a concept question may be one
_IMPERATIVE = re.compile(
    r"^\W*(?:explain|describe|name|list|give|define|compare|contrast|summari[sz]e|identify|state|outline|discuss|"
    r"distinguish|tell|show|find|calculate|compute|write|suggest|provide|recommend)\b",
    re.IGNORECASE,
)  # fmt: skip
_STOP_WORDS = (
    "about above after again also although among another because been before being between both could does doing "
    "down during each either every from further have having here into itself just like make makes many more most "
    "much must need only other over same should since some such than that their them then there these they this "
    "those through under until upon used uses using very what when where which while will with within would your "
    "answer question called known means way ways thing things"
)  # fmt: skip
_STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry its content: 4+ letters, not a function word, cut to a 5-letter stem."""
    return [w[:5] for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _STOP]


def support_share(answer: str, document: str) -> float:
    """The share of ``answer``'s content words that occur in ``document`` (by 5-letter stem): how much of an
    explanation its document supports (1.0 for an answer with no content word)."""
    words = content_words(answer)
    if not words:
        return 1.0
    known = set(content_words(document))
    return sum(w in known for w in words) / len(words)


_NAME = re.compile(r"(?<![.!?:]\s)(?<!^)(?<!\n)\b([A-Z][a-zA-Z]+(?:[ -][A-Z][a-zA-Z]+)*)\b")  # not a sentence's start


def unstated_facts(answer: str, document: str) -> list[str]:
    """The names (capitalised words inside a sentence) and numbers of ``answer`` its document never states: a
    concept answer that names "Lieutenant Colonel John McIlveen" or "Operation Little Brother" where the document
    names no one (wikitext's ``<unk>`` stands where a rare name was) is the refiner's invention, however many of
    its other words the document holds."""
    words = set(re.findall(r"[a-z0-9]+", document.lower()))
    numbers = {n.replace(",", "") for n in _NUMBER_IN_TEXT.findall(document)}
    names = [part for m in _NAME.finditer(answer) for part in m.group(1).replace("-", " ").split()]
    return [w for w in names if w.lower() not in words] + [
        n for n in _NUMBER_IN_TEXT.findall(answer) if n.replace(",", "") not in numbers
    ]


def strict_failures(question: str, answer: str, kind: str) -> list[str]:
    """What makes a pair unfit to train on whatever its content (refine-v4's checks): prompt scaffolding or
    ``<unk>`` in it (``leak``), a question pointing at a text the reader cannot see or, for a concept, at something it
    never names (``not_self_contained``), a
    concept "question" that neither ends in a question mark nor asks for something (``not_a_question``), more
    than one final-answer line or text after it (``malformed``)."""
    failures = []
    if _LEAK.search(question) or _LEAK.search(answer):
        failures.append("leak")
    if _POINTS_AT_TEXT.search(question):
        failures.append("not_self_contained")
    if kind == "problem" and not ("?" in question or _PROBLEM.search(question)):
        failures.append("not_self_contained")  # "Carla has $20.": a statement, nothing asked
    if kind == "concept" and _UNNAMED_REFERENT.search(question) and "not_self_contained" not in failures:
        failures.append("not_self_contained")
    if kind == "concept" and not (question.rstrip().endswith("?") or _IMPERATIVE.match(question)):
        failures.append("not_a_question")  # "What you might need is a good moral theory. …": the document, restated
    if kind == "problem" and inline_calculations(question):
        failures.append("leak")  # "… so that's 1.5+1.5 = 3 miles": the document's solution pasted into the question
    if kind == "problem" and answer:
        lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
        finals = [i for i, line in enumerate(lines) if line.lower().startswith(FINAL_ANSWER.lower())]
        if len(finals) != 1 or finals[0] != len(lines) - 1:
            failures.append("malformed")
        elif not answer_in_working(answer, question):
            failures.append("answer_not_worked")
    return failures


def answer_in_working(solution: str, question: str = "") -> bool:
    """Whether a worked solution reaches its final answer: when the working computes anything (``… = N``), the
    answer must be one of its results; otherwise it must at least appear in it. "4 episodes * 1 hour = 4 hours. The
    answer is: 2" reaches its answer by no step it shows; nor does "2 * 5 = 10 fish. In five years, he will have 12
    fish. The answer is: 12", which asserts a number it never computed (read in the known-answer probe's pairs).
    The working's last number must be the answer too: "Therefore, 27 buses. The answer is: 26" contradicts itself."""
    stated = final_answer(solution)
    target = as_number(stated) if stated else None
    if target is None:
        return True  # not a number: nothing to look for
    body = solution.rsplit(FINAL_ANSWER, 1)[0].replace("$", " ")

    def same(n: Fraction | None) -> bool:
        return n is not None and (n == target or n == target * 100 or n / 100 == target)

    results = [as_number(n) for n in _COMPUTED_RESULT.findall(body)]
    numbers = [n for n in results if n is not None] or [as_number(n) for n in _NUMBER_IN_TEXT.findall(body)]
    if not any(same(n) for n in numbers):
        return False
    # and nothing after its last result contradicts it: "1,230 ÷ 48 ≈ 26 … Therefore, 27 buses should be rented.
    # The answer is: 26" concludes one number and states another (read in the default's pairs). A number written
    # after the last result may be the answer, one the question gives or a small constant ("25 m^2", "to 2 decimal
    # places", "per 1 hour"); exponents and brackets are not read.
    ends = [match.end() for match in _LAST_RESULT.finditer(body)]
    tail = _EXPONENT_OR_BRACKET.sub(" ", body[ends[-1] :] if ends else "")
    allowed = numbers_in(question) | set(CONSTANTS)
    later = [n for n in (as_number(m) for m in _WRITTEN_NUMBER.findall(tail)) if n is not None]
    return all(same(n) or abs(n) in allowed for n in later)


def plain_dollars(text: str) -> str:
    """``text`` with LaTeX's escaped dollar (``\\$50``, copied from a maths source) written as plain text's ``$50``:
    a word problem is plain text (read in issue 39's second audit)."""
    return text.replace("\\$", "$")


def invented_numbers(question: str, document: str) -> list[str]:
    """The numbers of a problem's ``question`` its document never states (in digits or words; unit constants such
    as 60 or 100 aside): a word problem invented beside a Rust chapter or a CoNaLa snippet (read in issue 39's audit)
    teaches nothing its document holds."""
    stated = numbers_in(document) | set(CONSTANTS)
    return [n for n in _NUMBER_IN_TEXT.findall(question)
            if (value := as_number(n)) is not None and abs(value) not in stated]  # fmt: skip


def ungrounded_problem(question: str, document: str) -> bool:
    """Whether a problem's question is not its document's: it states no number at all ("the difference between ℶ₀
    and ℶ₁", answered 1 from the subscripts: read twice in issue 39's audits) or numbers its document never states
    (:func:`invented_numbers`)."""
    return not numbers_in(question) or bool(invented_numbers(question, document))


_TESTS = re.compile(r"\n\s*\**tests?\s*:?\**\s*\n(.*)$", re.S | re.IGNORECASE)


def split_tests(solution: str) -> tuple[str, list[str]]:
    """A code reply's solution without its ``Tests:`` section, and the assert lines of that section."""
    match = _TESTS.search(solution)
    if not match:
        return solution.strip(), []
    tests = re.findall(r"^\s*(assert\s+.+)$", match.group(1), re.M)
    return solution[: match.start()].strip(), tests


def constant_function(function: ast.FunctionDef) -> bool:
    """Whether a function computes nothing: it takes no argument, or its body only returns a literal
    (``def common_data_types(): return ['int', 'float', …]``, tested against that same list: read on 2026-12-08
    among the refiner's code answers, whose self-written tests it passes)."""
    arguments = function.args
    if not (arguments.args or arguments.posonlyargs or arguments.kwonlyargs or arguments.vararg or arguments.kwarg):
        return True
    body = [node for node in function.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        return False
    try:
        ast.literal_eval(body[0].value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # not a literal (or an odd one)
        return False
    return True


def code_failure(solution: str, tests: list[str], document: str) -> str | None:
    """Why a refined code answer is unfit (None: fit): not exactly one ```python block with nothing around it, a
    print or an answer line inside (``code_prose``), no function, only functions that compute nothing
    (``trivial_code``), no test (``no_tests``: the document's asserts,
    else the refiner's own), or tests that fail (``code_fails``)."""
    blocks = _FENCED.findall(solution)
    outside = _FENCED.sub("", solution).strip()
    if len(blocks) != 1 or outside:
        return "code_prose"
    code = blocks[0]
    if "print(" in code or FINAL_ANSWER.lower() in code.lower():
        return "code_prose"
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return "code_fails"
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    defined = {n.name for n in functions}
    if not defined:
        return "code_prose"
    if all(constant_function(f) for f in functions):
        return "trivial_code"  # its tests can only repeat the constant it returns
    asserts = [a for a in re.findall(r"^\s*(assert\s+.+)$", document, re.M) if any(f"{n}(" in a for n in defined)]
    asserts = asserts or [a for a in tests if any(f"{n}(" in a for n in defined)]
    if not asserts:
        return "no_tests"
    from equal.sandbox import run_python

    result = run_python(code + "\n\n" + "\n".join(asserts) + "\n", timeout=10.0)
    return None if result.passed else "code_fails"


class PairRefiner:
    """Refine and verify the pairs of extracted documents with one backend, the shared cache and a config.

    ``examples`` maps a pair kind (``problem``, ``code``) to the D_r items shown as style examples (from
    :func:`pick_examples`); a kind without examples is refined from the instructions alone.
    """

    def __init__(self, backend, cache, config: RefinementConfig | None = None,
                 examples: dict[str, list[dict]] | None = None) -> None:  # fmt: skip
        self.backend = backend
        self.cache = cache
        self.config = config or RefinementConfig()
        self.prompt = get_refine_prompt(self.config.prompt_version)
        unknown = set(examples or {}) - set(KINDS)
        if unknown:
            raise ConfigError(f"refinement examples for unknown pair kinds {sorted(unknown)}; kinds: {KINDS}")
        self.examples = {k: list(v)[: self.config.examples] for k, v in (examples or {}).items()}

    @property
    def identity(self) -> dict:
        """What the refined pairs depend on besides the drafts (for run fingerprints)."""
        config = asdict(self.config)
        if not self.prompt.program_answers:  # settings only program-aided prompts read: earlier runs keep their keys
            for name in _PROGRAM_SETTINGS:
                config.pop(name)
        if tuple(config["kinds"]) == KINDS:  # every kind, as before the setting: earlier runs keep their keys
            config.pop("kinds")
        else:
            config["kinds"] = list(config["kinds"])
        return {"model": self.backend.model_id, "config": config, "examples": self.examples}

    def _program_params(self, vote: int) -> GenerationParams:
        """A program's decoding: the first greedy, each vote after it sampled with its own seed."""
        return GenerationParams(max_tokens=self.config.program_tokens,
                                temperature=self.config.temperature if vote else 0.0,
                                seed=self.config.seed + vote, repeat_penalty=self.config.repeat_penalty)  # fmt: skip

    def program_messages(self, document: str, draft: dict) -> Messages:
        """The request for a problem's stand-alone question and its program, with (part of) its document."""
        room = self.backend.context_length - self.config.program_tokens - 64
        fixed = self.backend.count_tokens(self.prompt.program_system + self.prompt.program + draft["question"]) + 8
        budget = min(self.config.max_document_tokens, max(0, room - fixed))
        text = self.backend.truncate(document, budget) if document and budget >= 32 else ""
        question = self.backend.truncate(draft["question"], self.config.max_draft_tokens)
        return [{"role": "system", "content": self.prompt.program_system},
                {"role": "user", "content": self.prompt.program.format(document=text, question=question)}]  # fmt: skip

    def vote_messages(self, question: str) -> Messages:
        """The request for one more program, from the stand-alone question alone (no document, no draft)."""
        return [{"role": "system", "content": self.prompt.vote_system},
                {"role": "user", "content": self.prompt.vote.format(question=question)}]  # fmt: skip

    def _params(self, attempt: int) -> GenerationParams:
        sampled = attempt > 0
        return GenerationParams(max_tokens=self.config.max_tokens,
                                temperature=self.config.temperature if sampled else 0.0,
                                seed=self.config.seed + attempt, repeat_penalty=self.config.repeat_penalty)  # fmt: skip

    def messages(self, document: str, draft: dict, kind: str, reference: str | None) -> Messages:
        """The refinement request for one draft pair, fitted to the refiner's context: the document gets what the
        instructions, examples, draft and answer budget leave (at most ``max_document_tokens``); where even that is
        not enough, examples are left out, then the draft is cut further."""
        shown = self.examples.get(kind, [])
        if kind == "code":  # D_r's code is bare; the asked format (and so the example) is a ```python block
            shown = [{**e, "solution": e["solution"] if "```" in e["solution"] else f"```python\n{e['solution']}\n```"}
                     for e in shown]  # fmt: skip
        template = getattr(self.prompt, kind)
        room = self.backend.context_length - self.config.max_tokens - 64  # 64: the chat template's own tokens
        answer = self.backend.truncate(draft["answer"], self.config.max_draft_tokens)

        few_shot = self.prompt.few_shot and kind in self.prompt.example_user

        def build(examples: list[dict], document_text: str, answer_text: str) -> Messages:
            listed = ""
            if examples and not few_shot:
                listed = ("\nExamples of the style to write in:\n\n"
                          + "\n\n".join(self.prompt.example.format(**e) for e in examples) + "\n\n")  # fmt: skip
            shown_document = f"\nSource document (for facts only):\n{document_text}\n\n" if document_text else "\n"
            if few_shot:
                shown_document = shown_document.lstrip("\n")
            request = template.format(examples=listed, document=shown_document, question=draft["question"],
                                      answer=answer_text, reference=reference or "")  # fmt: skip
            turns: Messages = [{"role": "system", "content": self.prompt.system}]
            for e in examples if few_shot else []:
                final = final_answer(e["solution"]) or ""
                turns.append({"role": "user", "content": self.prompt.example_user[kind].format(
                    question=e["question"], answer=final)})  # fmt: skip
                reply = self.prompt.example
                if kind == "code" and self.prompt.program_answers and e.get("tests"):
                    reply = self.prompt.example_code
                turns.append({"role": "assistant", "content": reply.format(**e)})
            turns.append({"role": "user", "content": request})
            return turns

        def size(turns: Messages) -> int:
            return sum(self.backend.count_tokens(t["content"]) + 4 for t in turns)  # 4: each turn's markers

        used = size(build(shown, "", answer))
        while shown and used > room:
            shown = shown[:-1]
            used = size(build(shown, "", answer))
        left = room - used
        if left < 0:  # the draft alone is too long: cut it to what is left
            answer = self.backend.truncate(answer, max(16, self.backend.count_tokens(answer) + left))
            left = 0
        budget = min(self.config.max_document_tokens, left)
        text = self.backend.truncate(document, budget) if document and budget >= 32 else ""
        return build(shown, text, answer)

    def judge(self, item: RefinedPair, completion: Completion, document: str) -> tuple[str, dict | None]:
        """The outcome of one refinement answer and, when accepted, the pair it gives."""
        if completion.error is not None:
            return "malformed", None
        if completion.finish_reason == "length":
            return "truncated", None
        parsed = parse_refined(completion.text, item.draft["question"])
        if parsed is None:
            return "malformed", None
        question, solution = parsed
        if is_degenerate(question) or is_degenerate(solution):
            return "degenerate", None
        strict = self.prompt.program_answers
        if strict and item.kind == "problem":
            question = item.provenance.get("question", question)  # the question the programs answered
        if strict and item.kind != "code":
            failures = strict_failures(question, with_final_line(solution) if item.kind == "problem" else solution,
                                       item.kind)  # fmt: skip
            if failures:
                return failures[0], None
        if item.kind == "problem":
            solution = with_final_line(solution)
            stated = final_answer(solution)
            if stated is None or not answers_match(item.reference or "", stated):
                return "wrong_answer", None
            if wrong_calculations(solution, with_units=strict):
                return "wrong_arithmetic", None
            if not (has_steps(solution) or inline_calculations(solution)):
                return "no_steps", None  # a bare answer teaches nothing of how to reach it; one sum shown does
            outcome = "verified"
        elif item.kind == "code" and strict:
            solution, tests = split_tests(solution)
            failures = strict_failures(question, "", "code")
            failure = failures[0] if failures else code_failure(solution, tests, document)
            if failure is not None:
                return failure, None
            outcome = "accepted"
        elif item.kind == "code":
            works, _ = code_check(solution, document)
            if not works:
                return "code_fails", None
            outcome = "accepted"
        else:
            sentences = len(_SENTENCE.findall(solution.rstrip() + " "))
            if not 1 <= sentences <= 6 or code_blocks(solution):
                return "malformed", None
            if strict and (support_share(solution, document) < self.config.min_support
                           or unstated_facts(solution, document)):  # fmt: skip
                return "unsupported", None
            outcome = "accepted"
        if strict and item.kind == "problem":
            question, solution = plain_dollars(question), plain_dollars(solution)
        return outcome, {"question": question, "answer": solution}

    def refine(self, documents: list[str], drafts: list[list[dict]], call) -> list[list[RefinedPair]]:
        """Refine every draft pair of every document (``drafts[i]`` are the pairs of ``documents[i]``).

        ``call(requests, params)`` answers chat requests through the shared cache, returning ``(completion,
        cached)`` per request (:meth:`equal.llm.extract.QAExtractor.ask`'s contract for this backend).
        """
        items: list[list[RefinedPair]] = []
        for document, pairs in zip(documents, drafts, strict=True):
            row = []
            for draft in pairs:
                seen = document if self.prompt.program_answers else None  # v1-v3 runs keep their kinds
                kind = pair_kind(draft["question"], draft["answer"], seen)
                reference = reference_answer(draft["answer"]) if kind == "problem" else None
                if self.prompt.program_answers:
                    reference = None  # computed by programs (_answer_problems), never the draft's
                item = RefinedPair(dict(draft), kind, reference)
                if kind not in self.config.kinds:
                    item.outcome = "kind_not_kept"  # dropped unpaid: its kind cannot be verified or is not wanted
                row.append(item)
            items.append(row)
        if self.prompt.program_answers:
            self._answer_problems(documents, items, call)
        # grouped by kind: one batch then shares its instructions and examples (a cached prompt prefix)
        kept = self.config.kinds
        pending = sorted(((d, p) for d, row in enumerate(items) for p, item in enumerate(row)
                          if item.kind in kept and not (item.kind == "problem" and item.reference is None)),
                         key=lambda dp: KINDS.index(items[dp[0]][dp[1]].kind))  # fmt: skip
        for row in items:
            for item in row:
                if (
                    item.kind == "problem"
                    and item.reference is None
                    and not self.prompt.program_answers
                    and item.outcome != "kind_not_kept"
                ):
                    item.outcome = "no_reference"  # nothing to verify against: no call is paid for it
        for attempt in range(self.config.attempts):
            if not pending:
                break
            requests = [self.messages(documents[d], self._shown_draft(items[d][p]), items[d][p].kind,
                                      items[d][p].reference) for d, p in pending]  # fmt: skip
            still = []
            for (d, p), (completion, cached) in zip(pending, call(requests, self._params(attempt)), strict=True):
                item = items[d][p]
                item.attempts += 1
                item.records.append((completion, cached))
                outcome, pair = self.judge(item, completion, documents[d])
                item.outcome = outcome
                if pair is not None:
                    item.pair, item.hit_limit = pair, completion.finish_reason == "length"
                else:
                    still.append((d, p))
            pending = still
        for row in items:
            for item in row:
                if item.pair is None and self.config.on_failure == "keep_draft" and item.outcome != "kind_not_kept":
                    item.pair = {"question": item.draft["question"], "answer": item.draft["answer"]}
                    item.outcome = f"kept_draft:{item.outcome}"
        return items

    @staticmethod
    def _shown_draft(item: RefinedPair) -> dict:
        """The draft a solution is asked for: a program-aided problem's with the question its programs answered."""
        if "question" in item.provenance:
            return {**item.draft, "question": item.provenance["question"]}
        return item.draft

    def _answer_problems(self, documents: list[str], items: list[list[RefinedPair]], call) -> None:
        """Compute each problem's answer (refine-v4): a greedy call, seeing the document, writes the stand-alone
        question and a program; ``votes - 1`` sampled calls write programs from that question alone; the sandbox
        runs them all. A problem gets its ``reference`` only when ``min_agree`` programs print the same answer,
        that answer equals the one its document states (where it states one), and an agreeing program computes
        with numbers its question gives; otherwise its outcome says why and no solution is paid for."""
        problems = [(d, p) for d, row in enumerate(items) for p, item in enumerate(row)
                    if item.kind == "problem" and item.outcome != "kind_not_kept"]  # fmt: skip
        first: dict[tuple[int, int], tuple[str, str]] = {}
        pending = problems
        for attempt in range(2):  # an unreadable first reply gets one sampled retry
            if not pending:
                break
            requests = [self.program_messages(documents[d], items[d][p].draft) for d, p in pending]
            params = self._program_params(0) if attempt == 0 else replace(
                self._program_params(1), seed=self.config.seed + self.config.votes)  # fmt: skip
            still = []
            for (d, p), (completion, cached) in zip(pending, call(requests, params), strict=True):
                item = items[d][p]
                item.attempts += 1
                item.records.append((completion, cached))
                parsed = parse_program_reply(completion.text) if completion.error is None else None
                if completion.finish_reason == "length" and parsed is None:
                    item.outcome = "truncated"
                elif parsed is None or is_degenerate(parsed[0]):
                    item.outcome = "malformed"
                else:
                    first[(d, p)] = parsed
                    continue
                still.append((d, p))
            pending = still
        keys = list(first)
        programs = {k: [first[k][1]] for k in keys}
        runs: dict[tuple[int, int], list[ProgramRun]] = {k: [] for k in keys}
        self._run_programs(programs, runs)
        for v in range(1, self.config.votes):
            # a problem no answer can reach min_agree on any more is asked no further vote (its outcome is
            # no_agreement whatever they say): the calls it would pay buy nothing
            left = self.config.votes - v
            asking = [k for k in keys if vote([r.answer for r in runs[k]], 1).votes + left >= self.config.min_agree]
            if not asking:
                break
            answers = call([self.vote_messages(first[k][0]) for k in asking], self._program_params(v))
            for k, (completion, cached) in zip(asking, answers, strict=True):
                items[k[0]][k[1]].attempts += 1
                items[k[0]][k[1]].records.append((completion, cached))
                usable = completion.error is None and completion.finish_reason != "length"
                programs[k].append(program_of(completion.text) if usable else None)
            self._run_programs(programs, runs)
        for k in keys:
            d, p = k
            item = items[d][p]
            question, _ = first[k]
            result = vote([r.answer for r in runs[k]], self.config.min_agree)
            stated = document_answer(documents[d])
            drafted = reference_answer(item.draft["answer"])
            item.provenance = {"question": question, "votes": [r.answer for r in runs[k]],
                               "document_answer": stated, "draft_reference": drafted}  # fmt: skip
            if result.answer is None:
                item.outcome = "no_agreement"
                continue
            if stated is not None and not answers_match(stated, result.answer):
                item.outcome = "disagrees_with_document"
                continue
            grounded = [c for c in agreeing(programs[k], runs[k], result.answer) if not unstated_numbers(c, question)]
            failures = strict_failures(question, "", "problem")
            if not grounded or failures:
                item.outcome = failures[0] if failures else "not_self_contained"
                continue
            if ungrounded_problem(question, documents[d]):
                item.outcome = "invented_numbers"
                continue
            item.reference = result.answer
            item.provenance["program"] = grounded[0]

    @staticmethod
    def _run_programs(programs: dict[tuple[int, int], list], runs: dict[tuple[int, int], list[ProgramRun]]) -> None:
        """Run in the sandbox every program not yet run (``runs[k]`` follows ``programs[k]``), several at once."""
        todo = [(k, code) for k, codes in programs.items() for code in codes[len(runs[k]) :]]
        with ThreadPoolExecutor(max_workers=4) as pool:  # each run is a subprocess: wait on several at once
            ran = list(pool.map(lambda kc: run_program(kc[1]), todo))
        for (k, _), run in zip(todo, ran, strict=True):
            runs[k].append(run)


_PROGRAM_SETTINGS = ("votes", "min_agree", "program_tokens", "min_support")
_PROGRAM_REPLY = re.compile(r"^\s*\**(?:question|problem)\s*:\s*\**\s*(.+?)\n\s*\**program\s*:\s*\**\s*\n?(.*)$",
                            re.S | re.IGNORECASE)  # fmt: skip


def parse_program_reply(text: str) -> tuple[str, str] | None:
    """(question, program) from a program-step reply (``Question: … Program: ```python …```"``); None when it is
    not in that format or its program does not parse."""
    match = _PROGRAM_REPLY.match(text.strip())
    if not match:
        return None
    question, program = match.group(1).strip(), program_of(match.group(2))
    return (question, program) if question and program else None


def finished_pair(item: RefinedPair, model_id: str) -> dict:
    """The pair to keep with its provenance: draft, reference answer, kind and how it was refined."""
    pair = {**item.pair, "draft_question": item.draft["question"], "draft_answer": item.draft["answer"],
            "reference_answer": item.reference, "kind": item.kind, "refinement": item.outcome,
            "refine_attempts": item.attempts, "refiner": model_id}  # fmt: skip
    if "program" in item.provenance:  # how the answer was computed: provenance, not training text
        pair.update({"program": item.provenance["program"], "votes": item.provenance["votes"],
                     "document_answer": item.provenance["document_answer"]})  # fmt: skip
    return pair


def describe(settings: dict) -> str:
    """One sentence on how a refinement (its profile settings) verifies pairs, for dataset cards."""
    if not settings or not settings.get("enabled", True):
        return "Pairs were not refined: they are the extractor's drafts, checked only by the quality gate."
    config = RefinementConfig(**{k: v for k, v in settings.items() if k in RefinementConfig.__dataclass_fields__})
    kinds = " and ".join(config.kinds)
    kept = "" if config.kinds == KINDS else f" Only {kinds} pairs were kept: drafts of other kinds were not refined."
    if get_refine_prompt(config.prompt_version).program_answers:
        return (f"Each pair was rewritten to stand alone ({config.prompt_version}). A problem's answer was computed, "
                f"not taken from the draft: {config.votes} Python programs (the first seeing the document, the others "
                f"only the question) ran in a sandbox and at least {config.min_agree} had to print the same answer, "
                "which had to equal the answer the document states where it states one; its worked solution was then "
                "written to that answer, with every inline calculation checked. Code had to be one function whose "
                "tests (the document's asserts, else the refiner's) pass; an explanation had to use words of its "
                f"document (at least {config.min_support:.0%} of its content words).{kept}")  # fmt: skip
    return (f"Each pair was rewritten once ({config.prompt_version}); a problem was kept only when its worked solution "
            "reached the draft's own final answer with every inline calculation right, code when it parsed and "
            f"passed the document's asserts.{kept}")  # fmt: skip


def verification_table(pairs: list[dict]) -> list[dict]:
    """Per kind of kept pair: how many, and how their answers were checked (computed by agreeing programs; equal to
    the answer their document states)."""
    rows = []
    for kind in KINDS:
        mine = [p for p in pairs if p.get("kind") == kind]
        if not mine:
            continue
        row = {"kind": kind, "pairs": len(mine), "verified or accepted": sum(
            str(p.get("refinement")) in ("verified", "accepted") for p in mine)}  # fmt: skip
        if kind == "problem":
            row["answer computed by programs"] = sum(bool(p.get("program")) for p in mine)
            row["answer equal to the document's"] = sum(p.get("document_answer") is not None for p in mine)
        rows.append(row)
    return rows


def outcome_counts(items: list[RefinedPair]) -> Counter:
    """Outcomes counted per ``kind/outcome``."""
    return Counter(f"{item.kind}/{item.outcome}" for item in items)


def outcome_table(counts: dict[str, int]) -> list[dict]:
    """``{"kind/outcome": n}`` (a run summary's ``refinement``) as rows: kind, pairs, and the count and share of
    each outcome."""
    kinds: dict[str, Counter] = {}
    for key, n in counts.items():
        kind, outcome = key.split("/", 1)
        kinds.setdefault(kind, Counter())[outcome] += n
    rows = []
    for kind in sorted(kinds, key=lambda k: KINDS.index(k) if k in KINDS else len(KINDS)):
        total = sum(kinds[kind].values())
        accepted = kinds[kind]["verified"] + kinds[kind]["accepted"]
        refined = total - kinds[kind]["kind_not_kept"]  # a kind the profile does not keep was never refined
        share = round(accepted / refined, 4) if refined else None
        rows.append({"kind": kind, "drafts": total, "accepted": accepted, "accepted_share": share,
                     **{outcome: n for outcome, n in sorted(kinds[kind].items())}})  # fmt: skip
    return rows
