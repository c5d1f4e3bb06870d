from equal.data.decontam import Decontaminator, word_ngrams
from equal.data.dedup import Deduplicator

DOC = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May? She sold 48/2 = 24 clips in May."
)


def test_exact_duplicates_ignore_case_and_spacing():
    dedup = Deduplicator()
    assert dedup.check("a", DOC) is None
    assert dedup.check("b", DOC.upper().replace(" ", "  ")) == "exact"


def test_near_duplicate_is_caught_and_different_text_kept():
    dedup = Deduplicator(threshold=0.7)
    assert dedup.check("a", DOC + " " + DOC) is None
    assert dedup.check("b", (DOC + " " + DOC).replace("April", "June", 1)) == "near"
    assert dedup.check("c", "Rust's ownership rules: each value has exactly one owner at a time.") is None


def test_dedup_is_deterministic():
    docs = [DOC, DOC.replace("48", "50"), "completely different words here and there", DOC]
    runs = [[Deduplicator(seed=3).check(str(i), d) for i, d in enumerate(docs)] for _ in range(2)]
    assert runs[0] == runs[1]


def test_decontamination_flags_overlap_and_names_the_item():
    decontam = Decontaminator(n=13).fit([("gsm8k-test-0", DOC), ("gsm8k-test-1", "A short item")])
    page = "Some web page. " + DOC[:150] + " More unrelated text follows here."
    assert decontam.match(page) == "gsm8k-test-0"
    assert decontam.match("Python lists support append, extend, insert and pop.") is None
    # A short item (fewer than n words) only matches a text that is exactly that item.
    assert decontam.match("This is a short item inside a longer sentence about many other things entirely") is None
    assert decontam.match("a SHORT item") == "gsm8k-test-1"


def test_word_ngrams():
    assert word_ngrams("a b c d", 2) == {"a b", "b c", "c d"}
    assert word_ngrams("a b", 5) == {"a b"}
    assert word_ngrams("", 5) == set()
