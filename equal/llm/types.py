"""What every backend takes and returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

Messages = list[dict[str, str]]  # OpenAI-style chat messages
#: The identity rule of batched decoding: its numerics differ from one-at-a-time, so its answers are keyed apart
BATCHED_SUFFIX = "/batched"


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings; all of them are part of the cache key."""

    max_tokens: int = 320
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    json_schema: dict | None = field(default=None, hash=False)  # constrain the output where supported
    repeat_penalty: float = 1.0  # > 1 discourages repeating recent tokens (small models loop without it)

    def key(self) -> dict:
        """A JSON-able form for cache keys (``repeat_penalty`` only when set, so older answers keep their keys)."""
        fields = asdict(self)
        if fields["repeat_penalty"] == 1.0:
            del fields["repeat_penalty"]
        return fields


@dataclass
class Completion:
    """One generated answer with its cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    wall_s: float
    finish_reason: str = "stop"  # "stop", "length" or "error"
    error: str | None = None


class LLMBackend(Protocol):
    """One protocol for in-process GGUF, local transformers models and OpenAI-compatible servers."""

    kind: str  # "llama_cpp", "transformers" or "openai"
    model_id: str  # stable identity for cache keys: name plus file hash or server model name
    n_params: int  # parameters, for FLOP estimates
    context_length: int  # tokens the model can attend to (prompt + completion)
    batch_size: int  # how many requests :meth:`chat` handles at once efficiently

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens."""
        ...

    def chat(self, batch: list[Messages], params: GenerationParams) -> list[Completion]:
        """Generate one completion per conversation; errors are returned, not raised."""
        ...
