"""A target task's declaration: the contract between data preparation (01), selection (04) and evaluation (06).

Declared in YAML (``params/tasks.yaml`` and a profile's ``tasks``; read by :mod:`equal.data.tasks`), written by
notebook 01 to ``tasks.json`` beside the prepared files and read back by the later stages through
:meth:`equal.artifacts.Artifacts.load_tasks`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The final-answer line every problem's solution ends with: training pairs (the extraction prompt asks for it),
#: D_r, the D_r control and the evaluation gold text share it, so that no set is favoured by its format.
FINAL_ANSWER = "The answer is:"


def with_final_answer(solution: str, answer: str) -> str:
    """``solution`` ending with the final-answer line (added when it has none)."""
    solution = solution.rstrip()
    return solution if FINAL_ANSWER.lower() in solution.lower() else f"{solution}\n{FINAL_ANSWER} {answer}".lstrip()


METRICS = ("numeric", "boxed", "code_tests", "code_function", "multiple_choice", "free_text")
#: Fields a record must have after mapping, per metric (``solution`` is what bits per byte scores).
REQUIRED_FIELDS = {
    "numeric": ("question", "solution", "answer"),
    "boxed": ("question", "solution", "answer"),
    "code_tests": ("question", "solution", "test_list"),
    "code_function": ("question", "solution", "test", "entry_point"),
    "multiple_choice": ("question", "choices", "answer"),
    "free_text": ("question", "solution"),
}


@dataclass(frozen=True)
class TaskSpec:
    """One declared target task (the YAML form is in :mod:`equal.data.tasks`)."""

    name: str
    domain: str
    metric: str
    files: dict[str, str]
    label: str = ""
    format: str = "jsonl"
    fields: dict[str, str] = field(default_factory=dict)
    reference: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    exclude: tuple[str, ...] = ()  # splits used for nothing, but kept out of the corpus like evaluation items
    seed: int = 0
    source: str = ""  # where it was declared (for error messages)

    @property
    def title(self) -> str:
        """The name tables show."""
        return self.label or self.name

    @property
    def is_target(self) -> bool:
        """Whether it has a reference set D_r (a bandit can select for it)."""
        return self.reference is not None

    @property
    def is_benchmark(self) -> bool:
        """Whether models are evaluated on it."""
        return self.evaluation is not None


#: The generative metric lm-eval reports for each kind (bits per byte is computed for every kind as well).
METRIC_NAMES = {"numeric": "exact_match", "boxed": "exact_match", "code_tests": "pass@1",
                "code_function": "pass@1", "multiple_choice": "acc", "free_text": None}  # fmt: skip


def spec_record(spec: TaskSpec) -> dict[str, Any]:
    """A declaration as plain data (``tasks.json``; read back by :func:`spec_from_record`)."""
    return {**asdict(spec), "exclude": list(spec.exclude)}


def spec_from_record(record: dict[str, Any]) -> TaskSpec:
    """The inverse of :func:`spec_record`."""
    return TaskSpec(**{**record, "exclude": tuple(record.get("exclude", ()))})
