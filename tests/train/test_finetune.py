import pytest

from equal.train.finetune import IGNORE_INDEX, FinetuneConfig, chat_example, finetune
from equal.weights import build_tiny_chat_model

pytestmark = pytest.mark.slow  # real models, servers or whole pipelines: make test, not make test-fast


def test_labels_cover_only_the_answer():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_chat_model())
    example = chat_example(tokenizer, "What is 2 + 2?", "4", max_length=512)
    answer = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(answer).startswith("4")
    assert example["labels"][0] == IGNORE_INDEX and len(example["labels"]) == len(example["input_ids"])


def test_a_tiny_model_trains_and_its_loss_drops(tmp_path):
    pairs = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}."} for i in range(16)]
    config = FinetuneConfig(max_steps=30, batch_size=8, learning_rate=3e-3, lr_scheduler_type="constant", seed=0)
    losses = [row["loss"] for row in finetune(build_tiny_chat_model(), pairs, tmp_path, config, progress=False)]
    assert len(losses) == 30
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])  # from ln(vocab) ≈ 10.8 to about 5.5
    assert (tmp_path / "model" / "config.json").is_file()


def test_micro_batches_compute_the_same_updates_as_whole_batches(tmp_path):
    import pytest
    from safetensors.torch import load_file

    # answers of different lengths: the micro-batches are padded differently, the loss is the same token mean
    pairs = [{"question": f"Sum {i}?", "answer": " ".join(["step"] * (1 + i % 7)) + f" = {i}."} for i in range(16)]
    base = {"max_steps": 4, "batch_size": 8, "learning_rate": 1e-3, "lr_scheduler_type": "constant", "seed": 0}
    whole = finetune(build_tiny_chat_model(), pairs, tmp_path / "a", FinetuneConfig(**base), False)
    micro = finetune(build_tiny_chat_model(), pairs, tmp_path / "b", FinetuneConfig(micro_batch_size=2, **base), False)
    assert [r["loss"] for r in micro] == pytest.approx([r["loss"] for r in whole], rel=1e-4)
    a, b = (
        load_file(tmp_path / "a" / "model" / "model.safetensors"),
        load_file(tmp_path / "b" / "model" / "model.safetensors"),
    )
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    with pytest.raises(ValueError, match="must divide"):
        finetune(build_tiny_chat_model(), pairs, tmp_path / "c", FinetuneConfig(micro_batch_size=3, **base), False)


def test_an_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    pairs = [{"question": f"Name {i}?", "answer": f"It is {i}."} for i in range(12)]
    base = {"batch_size": 4, "learning_rate": 1e-3, "lr_scheduler_type": "constant", "save_steps": 3, "seed": 1}
    straight = finetune(build_tiny_chat_model(), pairs, tmp_path / "a", FinetuneConfig(max_steps=9, **base), False)
    first = finetune(build_tiny_chat_model(), pairs, tmp_path / "b", FinetuneConfig(max_steps=6, **base), False)
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-6").is_dir()
    resumed = finetune(build_tiny_chat_model(), pairs, tmp_path / "b", FinetuneConfig(max_steps=9, **base), False)
    assert [r["step"] for r in resumed] == list(range(1, 10))
    assert [r["loss"] for r in resumed[:6]] == [r["loss"] for r in first]  # steps 1-6 were not trained again
    assert [round(r["loss"], 3) for r in resumed] == [round(r["loss"], 3) for r in straight]


def test_lora_trains_adapters_and_saves_a_merged_model(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    pairs = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}."} for i in range(16)]
    config = FinetuneConfig(method="lora", lora_r=16, lora_alpha=32, max_steps=30, batch_size=8, learning_rate=2e-2,
                            lr_scheduler_type="constant", seed=0, keep_checkpoints=False)  # fmt: skip
    losses = [row["loss"] for row in finetune(build_tiny_chat_model(), pairs, tmp_path, config, progress=False)]
    # the tiny random model's frozen embeddings keep it near ln(vocab); the adapters still lower the loss
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05
    base = AutoModelForCausalLM.from_pretrained(build_tiny_chat_model()).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "model").state_dict()  # a plain model: adapters merged
    assert set(merged) == set(base)
    assert not torch.equal(
        merged["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])  # not a LoRA target
    assert not (tmp_path / "checkpoints").exists()


def test_two_gloo_processes_train_one_model_through_torchrun(tmp_path):
    """The paper-scale path on a CPU: torchrun starts two processes, the Trainer runs DDP over gloo, each process
    sees half of every epoch, the main process saves one model."""
    import json

    from transformers import AutoModelForCausalLM

    pairs = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}."} for i in range(16)]
    config = FinetuneConfig(epochs=1, batch_size=2, learning_rate=1e-3, lr_scheduler_type="constant", seed=0,
                            processes=2, ddp_backend="gloo")  # fmt: skip
    from equal.train.launch import train

    losses = train(build_tiny_chat_model(), pairs, tmp_path, config, progress=False)
    info = json.loads((tmp_path / "train_info.json").read_text())
    assert info["world_size"] == 2
    assert info["steps"] == len(losses) == 4  # 16 pairs / (2 per process × 2 processes)
    AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert (tmp_path / "launch" / "torchrun.log").is_file()


def test_a_failed_launch_is_an_error_with_the_log(tmp_path):
    import pytest

    from equal.errors import ConfigError
    from equal.train.launch import LaunchFailed, train

    config = FinetuneConfig(max_steps=1, processes=2, ddp_backend="no-such-backend")
    with pytest.raises(LaunchFailed, match="torchrun with 2 processes failed"):
        train(build_tiny_chat_model(), [{"question": "q", "answer": "a"}], tmp_path, config, progress=False)
    with pytest.raises(ConfigError, match=r"equal\.train\.launch\.train"):  # finetune alone would train one process
        finetune(build_tiny_chat_model(), [{"question": "q", "answer": "a"}], tmp_path, config, progress=False)
