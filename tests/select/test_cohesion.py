"""The warm-up's claim, measured: split-half OT distance of a cluster's QA pairs (equal.select.cohesion)."""

import numpy as np

from equal.embed.warmup import lexical_overlap
from equal.select.cohesion import RANDOM_PARTITION, cohesion_summary, cohesion_table


class TopicStore:
    """Embeds a QA text by its topic word: pairs of one topic are near each other, other topics far away."""

    def get(self, texts):
        topics = ["apples", "python", "history"]
        rng = np.random.default_rng(0)
        return np.array([np.eye(3)[next(i for i, t in enumerate(topics) if t in text)] + rng.normal(0, 0.05, 3)
                         for text in texts])  # fmt: skip


def test_a_clustering_by_what_documents_yield_beats_a_random_partition():
    topics = ["apples", "python", "history"]
    corpus = [{"id": f"d{i}"} for i in range(30)]
    pairs = [{"doc_id": f"d{i}", "question": f"About {topics[i % 3]}?", "answer": "Yes."} for i in range(30)]
    by_topic = np.array([i % 3 for i in range(30)])  # documents grouped by the pairs they yield
    mixed = np.array([(i // 3) % 3 for i in range(30)])  # groups that ignore it
    table = cohesion_table(pairs, corpus, {"tuned": by_topic, "untuned": mixed}, TopicStore(), seed=0)
    assert set(table["clustering"]) == {"tuned", "untuned", RANDOM_PARTITION}
    summary = cohesion_summary(table).set_index("clustering")
    assert summary.loc["tuned", "mean_split_half_ot"] < 0.1 < summary.loc["untuned", "mean_split_half_ot"]
    assert summary.loc["tuned", "vs_random"] < 0.2 and summary.loc[RANDOM_PARTITION, "vs_random"] == 1.0
    again = cohesion_table(pairs, corpus, {"tuned": by_topic, "untuned": mixed}, TopicStore(), seed=0)
    assert again.equals(table)  # seeded halves


def test_lexical_overlap_tells_a_paraphrase_from_a_copy():
    document = "The train leaves Boston at noon and arrives in Chicago the next morning."
    assert lexical_overlap("When does the train that leaves Boston arrive in Chicago?", document) > 0.5
    assert lexical_overlap("What time is departure from Massachusetts' capital?", document) < 0.5
    assert lexical_overlap("?", document) == 1.0


def test_heldout_retrieval_uses_only_documents_the_warm_up_never_saw():
    from equal.select.cohesion import heldout_retrieval

    topics = ["apples", "python", "history"]
    corpus = [{"id": f"d{i}", "text": f"A page on {topics[i]} and more."} for i in range(3)]
    pairs = [{"doc_id": f"d{i}", "question": f"Which {topics[i]}?", "answer": "This one."} for i in range(3)]
    table = heldout_retrieval(pairs, corpus, {"tuned": TopicStore(), "untuned": TopicStore()}, exclude={"d0"})
    assert list(table["embedder"].unique()) == ["tuned", "untuned"]
    assert (table.loc[table["pairs"] == "unseen documents' pairs", "queries"] == 2).all()  # d0 was a warm-up document
    assert (table["recall@1"] == 1.0).all()
