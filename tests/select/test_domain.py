"""The domain-matched controls on real task text: a classifier, DSIR and random documents of the target's domain."""

import numpy as np
import pytest
from conftest import problem_corpus

from equal.errors import ConfigError
from equal.select.domain import domain_filter_scores, dsir_log_weights, gumbel_top_k, in_domain_sample
from equal.select.methods import METHODS, run_inputs


@pytest.fixture(scope="module")
def corpus(builtin_splits):
    return problem_corpus(builtin_splits, 20)  # 20 GSM8K problems, then 20 MBPP tasks, with solutions


@pytest.fixture(scope="module")
def reference(builtin_splits):
    return [f"{i['question']}\n{i['solution']}" for i in builtin_splits["gsm8k_train"][200:230]]


def test_dsir_weights_word_problems_above_code_toward_a_gsm8k_reference(corpus, reference):
    weights = dsir_log_weights([d["text"] for d in corpus], reference)
    assert weights.shape == (40,)
    chosen = gumbel_top_k(weights, 20, seed=0)
    math = sum(corpus[i]["domain"] == "math" for i in chosen)
    assert math >= 18, f"DSIR chose {math} of 20 word problems"
    assert chosen == gumbel_top_k(weights, 20, seed=0) and len(set(chosen)) == 20


def test_gumbel_top_k_samples_in_proportion_to_the_weights():
    weights = np.log([8.0, 1.0, 1.0])
    firsts = [gumbel_top_k(weights, 1, seed) for seed in range(400)]
    share = sum(f == [0] for f in firsts) / 400
    assert 0.72 < share < 0.88  # 8 / 10 expected
    assert gumbel_top_k(weights, 5, seed=0) == [0, 1, 2]  # never more than there are


def test_the_domain_filter_ranks_documents_like_the_reference_first():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    near = centre + 0.3 * rng.normal(size=(30, 16))
    far = -centre + 0.3 * rng.normal(size=(70, 16))
    reference = centre + 0.3 * rng.normal(size=(20, 16))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    documents = unit(np.vstack([near, far]))
    scores = domain_filter_scores(documents, unit(reference), seed=1)
    assert np.argsort(-scores)[:30].max() < 30  # the 30 near documents come first
    # the negatives are a seeded sample: another seed, another classifier (selections vary with the seed)
    assert not np.allclose(scores, domain_filter_scores(documents, unit(reference), seed=2))


def test_random_in_domain_draws_only_the_targets_domain_and_says_when_it_cannot(corpus):
    domains = [d["domain"] for d in corpus]
    chosen = in_domain_sample(domains, "math", 5, seed=3)
    assert len(chosen) == 5 and all(domains[i] == "math" for i in chosen)
    assert chosen != in_domain_sample(domains, "math", 5, seed=4)
    assert len(in_domain_sample(domains, "math", 100, seed=0)) == 20  # all of them, never another domain's
    with pytest.raises(ConfigError, match="no document of domain 'law'"):
        in_domain_sample(domains, "law", 5, seed=0)
    with pytest.raises(ConfigError, match="declared domain"):
        in_domain_sample(domains, None, 5, seed=0)


def test_the_controls_are_registered_with_their_inputs():
    rules = {name: METHODS.get(name).rule for name in ("Domain filter", "DSIR", "Random in domain")}
    assert rules == {"Domain filter": "classifier", "DSIR": "dsir", "Random in domain": "in_domain"}
    assert METHODS.get("Domain filter").uses_embeddings and not METHODS.get("DSIR").uses_embeddings
    assert "reference" in METHODS.get("DSIR").inputs and "target_domain" in METHODS.get("Random in domain").inputs

    class Context:  # what run_inputs reads for the in-domain control
        @staticmethod
        def target_domain(target):
            return {"gsm8k": "math"}[target]

    class Request:
        target = "gsm8k"

    from equal.select.domain import CONTROL_VERSION

    assert run_inputs(METHODS.get("Random in domain"), Context(), Request()) == {
        "target_domain": "math", "rule": "in_domain", "control_version": CONTROL_VERSION}  # fmt: skip


def test_bad_control_settings_are_clear_errors():
    from equal.select.methods import DomainControlMethod, DomainQuantileMethod

    with pytest.raises(ConfigError, match="unknown rule 'topk'"):
        DomainControlMethod("X", rule="topk")
    with pytest.raises(ConfigError, match="0 < share ≤ 1"):
        DomainQuantileMethod("Q", quantile=1, share=1.5)
    with pytest.raises(ConfigError, match="1 ≤ quantile ≤ quantiles"):
        DomainQuantileMethod("Q", quantile=5, quantiles=4)
    with pytest.raises(ConfigError, match="D_r is empty"):
        dsir_log_weights(["Tom has 3 apples."], [])
