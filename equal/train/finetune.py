"""Supervised fine-tuning of a causal LM on an extracted QA set, with transformers' Trainer.

Each pair becomes a chat (user: question, assistant: answer) in the model's own template; the loss
covers the assistant's tokens only. Training checkpoints land in ``<out_dir>/checkpoints`` and an
interrupted run resumes from the last one; the final model is saved in ``<out_dir>/model``.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from equal.chat_format import IGNORE_INDEX, PadCollator, chat_example
from equal.errors import ConfigError
from equal.io import write_json_atomic

__all__ = ["IGNORE_INDEX", "FinetuneConfig", "PadCollator", "chat_example", "finetune"]


@dataclass(frozen=True)
class FinetuneConfig:
    """The training regime (the same for every method within a profile)."""

    epochs: float = 2.0  # paper: 2 (full fine-tuning)
    max_steps: int = -1  # > 0 overrides epochs
    batch_size: int = 8
    # examples per forward/backward pass (0: the whole batch): a batch of 8 is computed as 2 micro-batches of 4
    # whose gradients add up to the same update (the loss is the token mean over the whole batch either way, the
    # batches are the same examples). On 2 CPU cores: half the padding, a quarter less memory, and a pass of
    # 4 × 300 tokens costs ~2.8 ms per token against ~5 for 8 × 300 (results/benchmarks/training.json)
    micro_batch_size: int = 0
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5  # paper: 1e-5
    lr_scheduler_type: str = "cosine"  # paper: cosine
    max_length: int = 512
    warmup_steps: float = 0  # steps, or a fraction of all steps when < 1
    save_steps: int = 50
    seed: int = 0
    bf16: bool = False  # mixed precision (CPU autocast): ~1.6x faster on CPUs with AVX-512 BF16
    # batches of similar lengths (transformers' LengthGroupedSampler): fewer padded tokens than "random"
    # (scripts/benchmark_training.py measures both)
    sampling: str = "group_by_length"
    method: str = "full"  # full | lora (paper: both; LoRA adapters are merged into the saved model)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    save_dtype: str = "float32"  # float32 | bfloat16 (halves the disk of every saved model)
    use_cpu: bool = True  # False on a GPU box
    keep_checkpoints: bool = True  # False: delete <out>/checkpoints once the final model is saved
    # Several processes (one per GPU, or CPU processes with gloo): launched with torchrun (equal.train.launch);
    # the Trainer then runs DDP, or FSDP / DeepSpeed when configured. The effective batch is
    # batch_size × gradient_accumulation_steps × processes.
    processes: int = 1
    ddp_backend: str | None = None  # "nccl" on GPUs, "gloo" on CPUs (None: torch's default)
    fsdp: str = ""  # e.g. "full_shard auto_wrap" (TrainingArguments.fsdp)
    fsdp_config: str | None = None  # a JSON file (e.g. params/fsdp_llama.json)
    deepspeed: str | None = None  # a DeepSpeed JSON file, instead of FSDP
    gradient_checkpointing: bool = False  # memory for compute: an 8B model on 80 GB GPUs

    def __post_init__(self) -> None:
        # checked where the regime is read (notebook 05, a profile), not in each model's training process
        if self.method not in ("full", "lora"):
            raise ValueError(f"fine-tuning method {self.method!r}: expected 'full' or 'lora'")
        if self.batch_size % (self.micro_batch_size or self.batch_size):
            raise ValueError(f"micro_batch_size {self.micro_batch_size} must divide batch_size {self.batch_size}")
        if self.sampling not in ("group_by_length", "random", "sequential"):
            raise ValueError(f"fine-tuning sampling {self.sampling!r}: expected 'group_by_length', 'random' or "
                             "'sequential'")  # fmt: skip


def _config_file(name: str | None) -> str | None:
    """A launcher configuration file: a path, or the name of one shipped in params/ (e.g. ``fsdp_llama.json``)."""
    if name is None or Path(name).is_file():
        return name
    from equal.paths import resource_dir

    shipped = resource_dir("params") / name
    if not shipped.is_file():
        raise FileNotFoundError(f"{name}: no such file, here or in {resource_dir('params')}")
    return str(shipped)


def _with_lora(model, config: FinetuneConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def finetune(
    model_dir: str | Path, pairs: list[dict], out_dir: str | Path, config: FinetuneConfig, progress: bool = True
) -> list[dict]:
    """Fine-tune the model in ``model_dir`` on ``pairs`` (question/answer dicts); return the loss log.

    Writes ``<out_dir>/model`` (LoRA adapters merged in) and ``<out_dir>/train_info.json`` (losses,
    tokens seen, the Trainer's FLOP estimate, wall time, the configuration).
    """
    import os
    import time

    if config.processes > 1 and "LOCAL_RANK" not in os.environ:  # not inside a launch: it would train alone
        raise ConfigError(f"processes = {config.processes}: train through equal.train.launch.train, which starts "
                          "them with torchrun")  # fmt: skip

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    if not pairs:
        raise ValueError("no QA pairs to fine-tune on")
    micro = config.micro_batch_size or config.batch_size
    started = time.perf_counter()
    set_seed(config.seed)
    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = [chat_example(tokenizer, p["question"], p["answer"], config.max_length) for p in pairs]
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if config.method == "lora":
        model = _with_lora(model, config)
    checkpoints = out_dir / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=micro,
        # the trainer groups lengths over per-device batch × accumulation: the same batches as without micro-batches
        gradient_accumulation_steps=config.gradient_accumulation_steps * (config.batch_size // micro),
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        bf16=config.bf16,
        include_num_input_tokens_seen=True,
        train_sampling_strategy=config.sampling,
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        use_cpu=config.use_cpu,
        disable_tqdm=not progress,
        ddp_backend=config.ddp_backend,
        fsdp=config.fsdp,
        fsdp_config=_config_file(config.fsdp_config),
        deepspeed=_config_file(config.deepspeed),
        **({"activation_checkpointing": True} if config.gradient_checkpointing else {}),  # transformers' new name
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=Dataset.from_list(examples), data_collator=PadCollator(pad_id)
    )
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    sharded = bool(config.fsdp or config.deepspeed)
    if sharded and config.method == "full":  # the Trainer gathers the shards on the main process
        trainer.save_model(str(out_dir / "model"))
    elif trainer.is_world_process_zero():
        final = trainer.model.merge_and_unload() if config.method == "lora" else trainer.model
        final = final.to(getattr(torch, config.save_dtype))
        final.save_pretrained(out_dir / "model")
    losses = [row for row in trainer.state.log_history if "loss" in row]
    if not trainer.is_world_process_zero():
        return losses
    tokenizer.save_pretrained(out_dir / "model")
    write_json_atomic(
        out_dir / "train_info.json",
        {
            "config": asdict(config),
            "examples": len(examples),
            "world_size": args.world_size,
            "steps": trainer.state.global_step,
            "tokens_seen": int(trainer.state.num_input_tokens_seen),
            "train_flops": float(trainer.state.total_flos),
            "wall_s": round(time.perf_counter() - started, 1),
            "resumed_from": Path(last).name if last else None,
            "losses": [{"step": r["step"], "loss": r["loss"]} for r in losses],
        },
    )
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return losses
