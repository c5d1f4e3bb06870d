from equal.data.reading import ReadContext
from equal.data.targets import (
    draw_reference_sets,
    evaluation_items,
    gsm8k_final_answer,
    load_targets,
    shared_questions,
    strip_calculator,
)


def test_gsm8k_answer_parsing():
    solution = "She sold 48/2 = <<48/2=24>>24 clips in May.\n#### 1,072"
    assert gsm8k_final_answer(solution) == "1072"
    assert strip_calculator(solution).startswith("She sold 48/2 = 24 clips")


def test_targets_have_the_standard_splits(manifest, raw_dir):
    targets = load_targets(manifest, raw_dir, ReadContext())
    sizes = {name: len(items) for name, items in targets.items()}
    assert sizes == {
        "gsm8k_train": 7473,
        "gsm8k_test": 1319,
        "math500_test": 500,
        "mbpp_train": 374,
        "mbpp_test": 500,
        "mbpp_heldout": 100,
        "humaneval_test": 164,
    }
    assert {int(i["id"].split("-")[1]) for i in targets["mbpp_test"]} == set(range(11, 511))
    assert all("\r" not in i["solution"] for i in targets["mbpp_train"])
    assert targets["humaneval_test"][0]["entry_point"]


def test_reference_sets_are_seeded_and_disjoint(manifest, raw_dir):
    targets = load_targets(manifest, raw_dir, ReadContext())
    first = draw_reference_sets(targets, size=100, heldout_size=200, seed=0)
    again = draw_reference_sets(targets, size=100, heldout_size=200, seed=0)
    other = draw_reference_sets(targets, size=100, heldout_size=200, seed=1)
    assert [i["id"] for i in first["reference_math"]] == [i["id"] for i in again["reference_math"]]
    assert [i["id"] for i in first["reference_math"]] != [i["id"] for i in other["reference_math"]]
    assert len(first["reference_math"]) == 100 and len(first["heldout_code"]) == 200
    assert all(i["split"] == "train" for i in first["reference_math"] + first["reference_code"])
    evaluation = evaluation_items(targets)
    for items in first.values():
        assert not shared_questions(items, evaluation)
    assert not shared_questions(first["reference_math"], first["heldout_math"])
