"""Text clean-up and splitting long documents into page/section-sized units.

Splitting keeps natural boundaries: a unit never cuts a paragraph unless the paragraph alone is
longer than ``max_chars`` (then it is cut at sentence, then word boundaries), and a unit closes
at a section boundary whenever it is already at least ``min_chars`` long.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from bs4 import BeautifulSoup

_WS = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def clean_text(text: str) -> str:
    """Normalise Unicode (NFC), drop control characters, collapse runs of spaces and blank lines."""
    text = unicodedata.normalize("NFC", text).replace("\ufeff", "")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    lines = [_WS.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment; blocks become paragraphs, code blocks keep their lines."""
    soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style"]):
        tag.decompose()
    for pre in soup.find_all("pre"):
        pre.replace_with("\n\n" + pre.get_text() + "\n\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(["p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr"]):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    return clean_text(soup.get_text())


def paragraphs_of(text: str) -> list[str]:
    """Split text into paragraphs at blank lines (empty paragraphs dropped)."""
    return [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]


@dataclass(frozen=True)
class Block:
    """A paragraph of a document; ``new_section`` marks the first paragraph of a section."""

    text: str
    new_section: bool = False
    section: str = ""


def _split_long(text: str, max_chars: int) -> list[str]:
    """Cut a paragraph longer than ``max_chars`` at sentence, then word, then character boundaries."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > max_chars:
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    # Re-pack the sentences so each piece is as close to max_chars as it can be.
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 1 + len(piece) <= max_chars:
            packed[-1] = f"{packed[-1]} {piece}"
        else:
            packed.append(piece)
    return packed


def pack_units(blocks: list[Block], min_chars: int = 200, max_chars: int = 2000) -> list[tuple[str, str]]:
    """Pack consecutive paragraphs into units of at most ``max_chars`` characters.

    Returns ``(section, text)`` pairs, where ``section`` is the heading of the section the unit
    starts in. A unit is closed early at a section boundary once it holds ``min_chars``; a short
    last unit is merged into the previous one when they fit together.
    """
    if min_chars > max_chars:
        raise ValueError(f"min_chars ({min_chars}) must not exceed max_chars ({max_chars})")
    units: list[tuple[str, str]] = []
    current: list[str] = []
    size = 0
    section = ""

    def flush() -> None:
        nonlocal current, size
        if current:
            units.append((section, "\n\n".join(current)))
        current, size = [], 0

    for block in blocks:
        parts = [block.text] if len(block.text) <= max_chars else _split_long(block.text, max_chars)
        for index, part in enumerate(parts):
            starts_section = block.new_section and index == 0
            if current and (size + 2 + len(part) > max_chars or (starts_section and size >= min_chars)):
                flush()
            if not current:
                section = block.section
            current.append(part)
            size += len(part) + (2 if size else 0)
    flush()
    if len(units) > 1 and len(units[-1][1]) < min_chars and len(units[-2][1]) + 2 + len(units[-1][1]) <= max_chars:
        last = units.pop()
        units[-1] = (units[-1][0], f"{units[-1][1]}\n\n{last[1]}")
    return units
