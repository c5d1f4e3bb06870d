"""Chat-formatted training examples: a QA pair in a model's own chat template, the loss on the answer only.

Shared by fine-tuning (``equal.train``) and by the gradient scores of the Influence baselines (``equal.select``), so
that a pair is scored exactly as it is trained.
"""

from __future__ import annotations

IGNORE_INDEX = -100  # label of prompt and padding tokens: no loss


def _ids(encoded) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); 4.x a list
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def chat_example(tokenizer, question: str, answer: str, max_length: int) -> dict[str, list[int]]:
    """Token ids of one chat-formatted pair, with labels only on the assistant's answer."""
    user = [{"role": "user", "content": question}]
    prompt = _ids(tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=True))
    full = _ids(tokenizer.apply_chat_template([*user, {"role": "assistant", "content": answer}], tokenize=True))
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template does not render the prompt as a prefix of the conversation")
    labels = [IGNORE_INDEX] * len(prompt) + full[len(prompt) :]
    return {"input_ids": full[:max_length], "labels": labels[:max_length]}


class PadCollator:
    """Right-pads a batch: input ids with the pad token, labels with IGNORE_INDEX."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(b["input_ids"]) for b in batch)

        def pad(values: list[int], fill: int) -> list[int]:
            return values + [fill] * (width - len(values))

        return {
            "input_ids": torch.tensor([pad(b["input_ids"], self.pad_id) for b in batch]),
            "labels": torch.tensor([pad(b["labels"], IGNORE_INDEX) for b in batch]),
            "attention_mask": torch.tensor([pad([1] * len(b["input_ids"]), 0) for b in batch]),
        }
