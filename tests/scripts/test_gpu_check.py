"""scripts/gpu_check.py: its CPU dry run (every step through the real code paths, tiny sizes) and its answer on a
machine without CUDA."""

import importlib.util
import json

import pytest

from equal.paths import REPO_ROOT


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_cpu_dry_run_passes_every_step_it_can_run(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert _script().main(["--device", "cpu", "--small", "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    assert len(steps) == 7 and summary["passed"] and summary["versions"]["packages"]["torch"]
    assert steps["evaluation lm-eval vllm"]["status"] == "skip"  # vLLM: GPUs only
    for name in ("finetune full bf16", "finetune lora bf16", "finetune gradient checkpointing"):
        assert steps[name]["status"] == "pass" and steps[name]["last_loss"] < steps[name]["first_loss"], name
        assert steps[name]["saved_dtypes"] == ["torch.bfloat16"], name
    assert steps["gaussian w2 batched"]["max_relative_difference"] <= 1e-6
    assert steps["embeddings"]["max_abs_difference"] <= 1e-3
    assert steps["evaluation lm-eval hf"]["metrics"]["bits_per_byte"] > 0


def test_without_cuda_it_says_so_and_exits_0(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert _script().main(["--out", str(tmp_path / "x.json")]) == 0
    assert "no CUDA device" in capsys.readouterr().out and not (tmp_path / "x.json").exists()
