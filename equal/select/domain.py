"""Domain-matched controls: selections that aim at the target's domain without OT or a bandit.

"EQUAL beats Random" and "EQUAL beats a domain filter" are different claims: a selection that only picks more
documents of the target's domain can beat Random. These controls pick the target's domain by other means, at the
same document budget, so the comparison can tell EQUAL from them:

* :func:`domain_filter_scores` — a classifier told D_r's items from corpus documents (DCLM-style quality/domain
  filtering: logistic regression on the base embedder's vectors, which the pipeline already computes), negatives a
  seeded sample of the corpus, so that the selection varies with the selection seed as every other method's does;
* :func:`dsir_log_weights` — DSIR (Xie et al. 2023, arXiv 2302.03169) through its authors' package
  ``data-selection``: hashed unigram and bigram features, importance weights log p_target − log p_raw; the
  documents are then drawn by :func:`gumbel_top_k` with the selection seed (DSIR's own resampling, seeded).
  DSIR resamples examples of about one length (the paper's are fixed-length chunks); our documents' lengths vary
  tenfold, and a weight summed over n-grams then picks by length (on 40 GSM8K and MBPP documents toward a GSM8K
  D_r of 30: 8 of the 20 chosen were word problems; per n-gram, 20). Each weight is therefore taken per n-gram and
  scaled to the median document's length: DSIR's weight for a document of typical length;
* :func:`in_domain_sample` — random documents of the target's declared domain (source labels: a reference only,
  since a web corpus carries none).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from equal.errors import ConfigError

#: negatives per D_r item in the domain classifier's training set (DCLM trains on balanced positives and negatives)
NEGATIVES_PER_POSITIVE = 1
DSIR_BUCKETS, DSIR_NGRAMS = 10000, 2  # the package's defaults: hashed unigrams and bigrams
#: Part of every control run's fingerprint: change a setting above (or how one is used) and bump it.
CONTROL_VERSION = f"domain-controls-v1:neg{NEGATIVES_PER_POSITIVE}:dsir{DSIR_BUCKETS}x{DSIR_NGRAMS}:median-length"


def domain_filter_scores(documents: np.ndarray, reference: np.ndarray, seed: int) -> np.ndarray:
    """Each document's log-odds of being a D_r item, from a logistic regression fit on D_r's vectors (positives)
    against a seeded sample of as many corpus documents (negatives); vectors are L2-normalised embeddings."""
    from sklearn.linear_model import LogisticRegression

    if len(reference) == 0 or len(documents) == 0:
        raise ConfigError("the domain filter needs reference items and documents")
    rng = np.random.default_rng([seed, 0xD0C])
    n_neg = min(len(documents), NEGATIVES_PER_POSITIVE * len(reference))
    negatives = documents[rng.choice(len(documents), size=n_neg, replace=False)]
    x = np.vstack([reference, negatives])
    y = np.r_[np.ones(len(reference)), np.zeros(n_neg)]
    model = LogisticRegression(max_iter=1000, random_state=seed).fit(x, y)
    return model.decision_function(documents)


def dsir_log_weights(texts: list[str], reference_texts: list[str], num_buckets: int = DSIR_BUCKETS,
                     ngrams: int = DSIR_NGRAMS) -> np.ndarray:  # fmt: skip
    """DSIR's log importance weight of each text toward the reference texts, computed by the ``data-selection``
    package (hashed n-gram bag-of-words models of both; its default tokenizer, ``wordpunct``, needs no download),
    per n-gram and scaled to the median text's length (see the module docstring)."""
    from data_selection import HashedNgramDSIR

    if not reference_texts or not any(t.strip() for t in reference_texts):
        raise ConfigError("DSIR needs reference texts to resample toward (D_r is empty)")
    with tempfile.TemporaryDirectory(prefix="dsir-") as cache:
        dsir = HashedNgramDSIR(["corpus"], ["reference"], cache_dir=cache,
                               raw_load_dataset_fn=lambda _: ({"text": t} for t in texts),
                               target_load_dataset_fn=lambda _: ({"text": t} for t in reference_texts),
                               num_proc=1, ngrams=ngrams, num_buckets=num_buckets, min_example_length=0)  # fmt: skip
        dsir.fit_importance_estimator(num_tokens_to_fit="all")
        dsir.compute_importance_weights()
        weights = np.load(Path(dsir.log_importance_weights_dir) / "0.npy")
        lengths = np.load(Path(dsir.perexample_metadata_dir) / "0.npy").astype(float)  # tokens, by the package
    per_token = weights / np.maximum(lengths, 1.0)
    return per_token * float(np.median(lengths))


def gumbel_top_k(log_weights: np.ndarray, k: int, seed: int) -> list[int]:
    """``k`` indices drawn without replacement with probability proportional to exp(log_weights) (the Gumbel top-k
    trick DSIR resamples with), seeded."""
    k = min(k, len(log_weights))
    noisy = np.asarray(log_weights, dtype=float) + np.random.default_rng([seed, 0xD512]).gumbel(size=len(log_weights))
    return sorted(int(i) for i in np.argsort(-noisy, kind="stable")[:k])


def in_domain_sample(domains: list[str], domain: str | None, k: int, seed: int) -> list[int]:
    """``k`` documents drawn at random among those labelled ``domain`` (all of them when fewer), seeded."""
    if domain is None:
        raise ConfigError("Random in domain needs the target's declared domain (params/tasks.yaml)")
    members = np.flatnonzero(np.asarray(domains) == domain)
    if not len(members):
        raise ConfigError(f"Random in domain: no document of domain {domain!r} in the corpus")
    rng = np.random.default_rng([seed, 0xD0A1])
    return sorted(int(i) for i in rng.choice(members, size=min(k, len(members)), replace=False))
