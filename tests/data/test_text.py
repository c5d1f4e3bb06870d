from equal.data.text import Block, clean_text, html_to_text, pack_units, paragraphs_of


def test_clean_text_normalises_whitespace_and_controls():
    assert clean_text("\ufeffa  b\x00c\n\n\n\n d ") == "a bc\n\nd"


def test_html_to_text_keeps_paragraphs_and_code():
    text = html_to_text(
        "<p>Hello <b>world</b>&amp; more</p><pre><code>x = 1\ny = 2</code></pre><ul><li>one</li><li>two</li></ul>"
    )
    assert "<" not in text
    assert "Hello world& more" in text
    assert "x = 1\ny = 2" in text
    assert paragraphs_of(text)[-2:] == ["one", "two"]


def test_pack_units_respects_max_and_keeps_paragraphs_whole():
    blocks = [Block(f"paragraph {i} " + "word " * 40) for i in range(30)]
    units = pack_units(blocks, min_chars=200, max_chars=1000)
    assert all(len(text) <= 1000 for _, text in units)
    joined = "\n\n".join(text for _, text in units)
    assert joined == "\n\n".join(b.text for b in blocks)  # nothing lost, nothing cut


def test_pack_units_closes_at_section_boundary_once_long_enough():
    blocks = [Block("A" * 300, new_section=True, section="one"), Block("B" * 300, new_section=True, section="two")]
    units = pack_units(blocks, min_chars=200, max_chars=2000)
    assert units == [("one", "A" * 300), ("two", "B" * 300)]
    # Below min_chars, a small section is merged with the next one instead.
    small = [Block("A" * 50, new_section=True, section="one"), Block("B" * 50, new_section=True, section="two")]
    assert pack_units(small, min_chars=200, max_chars=2000) == [("one", "A" * 50 + "\n\n" + "B" * 50)]


def test_huge_paragraph_without_spaces_is_cut_not_crashed():
    units = pack_units([Block("x" * 50_000)], min_chars=200, max_chars=2000)
    assert len(units) == 25
    assert all(len(text) == 2000 for _, text in units)


def test_long_paragraph_is_cut_at_sentence_boundaries():
    sentence = "This is a sentence of moderate length. "
    units = pack_units([Block(sentence * 200)], min_chars=200, max_chars=1000)
    assert all(len(t) <= 1000 for _, t in units)
    assert all(t.endswith(".") for _, t in units)
