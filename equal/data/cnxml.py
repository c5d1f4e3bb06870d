"""OpenStax CNXML (textbook sections with MathML) to plain-text paragraphs.

Maths is rendered as readable linear text (``3/4``, ``x^2``, ``sqrt(2)``) because the extractor
LLM and the embedder read plain text; tables become one line per row.
"""

from __future__ import annotations

from lxml import etree

from equal.data.text import Block, clean_text

CNXML_NS = "http://cnx.rice.edu/cnxml"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
COLLXML_NS = "http://cnx.rice.edu/collxml"

# Elements whose whole content is one paragraph.
_LEAF_BLOCKS = {"para", "title", "equation", "caption", "item", "code", "preformat", "term", "meaning", "label"}
# Elements that are skipped entirely (media, metadata, cross-reference boilerplate).
_SKIPPED = {"metadata", "media", "image", "glossary"}


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def mathml_to_text(element: etree._Element) -> str:
    """Linear text of a MathML element: fractions as a/b, powers as a^b, roots as sqrt(a)."""
    name = _local(element.tag)
    children = [c for c in element if isinstance(c.tag, str)]
    parts = [mathml_to_text(c) for c in children]
    if name == "mfrac" and len(parts) == 2:
        return f"({parts[0]})/({parts[1]})" if any(len(p) > 1 for p in parts) else f"{parts[0]}/{parts[1]}"
    if name == "msup" and len(parts) == 2:
        return f"{parts[0]}^{parts[1]}"
    if name == "msub" and len(parts) == 2:
        return f"{parts[0]}_{parts[1]}"
    if name == "msubsup" and len(parts) == 3:
        return f"{parts[0]}_{parts[1]}^{parts[2]}"
    if name == "msqrt":
        return f"sqrt({''.join(parts)})"
    if name == "mroot" and len(parts) == 2:
        return f"root{parts[1]}({parts[0]})"
    if name == "mspace":
        return " "
    if name in {"mn", "mi", "mo", "mtext", "ms"}:
        return (element.text or "").strip() if name != "mtext" else (element.text or "")
    if name in {"mtr"}:
        return " ".join(parts) + "; "
    if name in {"annotation", "annotation-xml"}:
        return ""
    return "".join(parts)


def _inline_text(element: etree._Element) -> str:
    """Text of an element and its descendants, with maths rendered linearly."""
    pieces: list[str] = [element.text or ""]
    for child in element:
        if not isinstance(child.tag, str):
            pieces.append(child.tail or "")
            continue
        if etree.QName(child.tag).namespace == MATHML_NS:
            pieces.append(mathml_to_text(child))
        elif _local(child.tag) == "newline":
            pieces.append("\n")
        elif _local(child.tag) not in _SKIPPED:
            pieces.append(_inline_text(child))
        pieces.append(child.tail or "")
    return "".join(pieces)


def _blocks(element: etree._Element, section: str, out: list[Block], depth: int) -> None:
    for child in element:
        if not isinstance(child.tag, str):
            continue
        name = _local(child.tag)
        if name in _SKIPPED:
            continue
        if etree.QName(child.tag).namespace == MATHML_NS:
            text = clean_text(mathml_to_text(child))
            if text:
                out.append(Block(text, section=section))
        elif name == "section":
            title = child.find(f"{{{CNXML_NS}}}title")
            heading = clean_text(_inline_text(title)) if title is not None else section
            heading = heading if depth == 0 else section
            start = len(out)
            _blocks(child, heading, out, depth + 1)
            if len(out) > start:
                out[start] = Block(out[start].text, new_section=True, section=heading)
        elif name == "table":
            for row in child.iter(f"{{{CNXML_NS}}}row"):
                cells = [clean_text(_inline_text(e)) for e in row if _local(e.tag) == "entry"]
                line = " | ".join(c for c in cells)
                if line.strip(" |"):
                    out.append(Block(line, section=section))
        elif name in _LEAF_BLOCKS:
            text = clean_text(_inline_text(child))
            if text:
                out.append(Block(text, section=section))
        else:  # containers: content, note, example, exercise, problem, solution, list, figure, ...
            _blocks(child, section, out, depth)


def parse_cnxml(data: bytes) -> tuple[str, list[Block]]:
    """Title and paragraphs of one ``index.cnxml`` (raises ``etree.XMLSyntaxError`` on bad XML)."""
    root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, huge_tree=True))
    title_el = root.find(f"{{{CNXML_NS}}}title")
    title = clean_text(_inline_text(title_el)) if title_el is not None else ""
    content = root.find(f"{{{CNXML_NS}}}content")
    blocks: list[Block] = []
    if content is not None:
        _blocks(content, title, blocks, depth=0)
    return title, blocks


def collection_order(data: bytes) -> list[str]:
    """Module ids (``mNNNNN``) in book order, from a ``*.collection.xml`` table of contents."""
    root = etree.fromstring(data)
    return [m.get("document") for m in root.iter(f"{{{COLLXML_NS}}}module") if m.get("document")]
