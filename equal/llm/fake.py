"""A deterministic stand-in extractor for measuring the machinery around the LLM, never the LLM.

:class:`ScriptedBackend` answers every extraction request with a valid QA pair derived from the document's own
words (a refinement request: its draft in the asked format, reaching the draft's own answer), after a
configurable latency, and can append one line per finished call to a file (``call_log``) so that tests can count
the calls paid across processes and hosts. The scale benchmark and the exactly-once tests use it; no profile can
select it (:func:`equal.llm.backends.make_backend` does not know it — only the scale executor's ``backend``
specifications, built by :func:`equal.scale.executor.build_backend`, do).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

from equal.llm.types import Completion, GenerationParams, Messages
from equal.task import FINAL_ANSWER


class ScriptedBackend:
    """Answers ``{"pairs": [{"question": …, "answer": …}]}`` built from the request, after ``latency_s``."""

    kind = "scripted"

    def __init__(self, latency_s: float = 0.0, call_log: str | Path | None = None, batch_size: int = 1,
                 context_length: int = 4096, n_params: int = 1_000_000) -> None:  # fmt: skip
        self.latency_s = latency_s
        self.call_log = Path(call_log) if call_log else None
        self.batch_size = batch_size
        self.context_length = context_length
        self.n_params = n_params
        self.model_id = "scripted@1"

    def count_tokens(self, text: str) -> int:
        """Whitespace words: deterministic and cheap."""
        return len(text.split())

    def truncate(self, text: str, max_tokens: int) -> str:
        """The first ``max_tokens`` words."""
        words = text.split()
        return text if len(words) <= max_tokens else " ".join(words[:max_tokens])

    def _answer(self, messages: Messages, params: GenerationParams) -> Completion:
        user = messages[-1]["content"]
        if "\nDraft " in user:  # a refinement request (equal.llm.refine): the draft rewritten in the asked format
            return self._refined(user)
        words = [w.strip(".,:;!?\"'()[]{}") for w in user.split()]
        words = [w for w in words if w]
        digest = hashlib.sha256(f"{user}|{params.seed}".encode()).hexdigest()[:8]
        topic = " ".join(words[-6:]) or "this text"
        pair = {"question": f"What does the text say about {topic}?",
                "answer": f"It says: {' '.join(words[-12:])}. Reference {digest}."}  # fmt: skip
        text = json.dumps({"pairs": [pair]})
        return Completion(text, self.count_tokens(user), self.count_tokens(text), self.latency_s, "stop")

    def _refined(self, user: str) -> Completion:
        draft = re.search(r"\nDraft (?:question|task): (.*)\nDraft answer: (.*?)\n", user, re.S)
        question = draft.group(1).strip() if draft else "What is this?"
        reference = re.search(r"The correct final answer is: (.*)\n", user)
        if reference:  # a problem: a worked solution ending on the reference answer
            steps = "We take the facts given.\nWe work it out from them."
            solution = f"{steps}\n{FINAL_ANSWER} {reference.group(1).strip()}"
        elif "```python" in user or "programming task" in user:
            solution = "```python\ndef solve():\n    return 1\n```"
        else:
            solution = f"{draft.group(2).strip() if draft else 'It is so.'} That is the whole answer."
        text = f"Question: {question}\nSolution:\n{solution}"
        return Completion(text, self.count_tokens(user), self.count_tokens(text), self.latency_s, "stop")

    def chat(self, batch: list[Messages], params: GenerationParams) -> list[Completion]:
        """One answer per request, ``latency_s`` per batch (a batch decodes together, as on a real engine)."""
        if self.latency_s:
            time.sleep(self.latency_s)
        answers = [self._answer(messages, params) for messages in batch]
        if self.call_log is not None:
            # one O_APPEND write per line: lines from concurrent processes never interleave
            fd = os.open(self.call_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for messages in batch:
                    line = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
                    os.write(fd, f"{os.getpid()} {line}\n".encode())
            finally:
                os.close(fd)
        return answers
