"""Fine-tuning on several processes through torchrun (one per GPU at paper scale; gloo processes on a CPU).

:func:`equal.train.finetune.finetune` calls :func:`launch` when ``FinetuneConfig.processes`` > 1: the request
(base model, pairs, output folder, configuration) is written to ``<out_dir>/launch/``, then
``python -m torch.distributed.run --standalone --nproc_per_node N -m equal.train.launch <request>`` starts the
processes, each of which runs :func:`finetune` under the Trainer's DDP (or FSDP / DeepSpeed, as configured).
The main process writes the model and ``train_info.json``; a failed launch is an error carrying the log's tail.
An interrupted launch resumes from the Trainer's last checkpoint like a single-process run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from equal.errors import EqualError
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.train.finetune import FinetuneConfig, finetune


class LaunchFailed(EqualError):
    """The distributed training processes exited with an error."""


def train(model_dir: str | Path, pairs: list[dict], out_dir: str | Path, config: FinetuneConfig,
          progress: bool = True) -> list[dict]:  # fmt: skip
    """Fine-tune ``model_dir`` on ``pairs`` into ``out_dir``: in this process, or on ``config.processes`` processes
    started by torchrun (:func:`launch`); return the (main process's) loss log."""
    if config.processes > 1 and "LOCAL_RANK" not in os.environ:
        return launch(model_dir, pairs, out_dir, config, progress)
    return finetune(model_dir, pairs, out_dir, config, progress)


def launch(model_dir: str | Path, pairs: list[dict], out_dir: str | Path, config: FinetuneConfig,
           progress: bool = True) -> list[dict]:  # fmt: skip
    """Run :func:`finetune` on ``config.processes`` processes; return the main process's loss log."""
    out_dir = Path(out_dir)
    request_dir = out_dir / "launch"
    write_jsonl_atomic(request_dir / "pairs.jsonl", pairs)
    request = request_dir / "request.json"
    write_json_atomic(request, {"model_dir": str(model_dir), "pairs": str(request_dir / "pairs.jsonl"),
                                "out_dir": str(out_dir), "config": asdict(config), "progress": progress})  # fmt: skip
    log = request_dir / "torchrun.log"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={config.processes}",
               "-m", "equal.train.launch", str(request)]  # fmt: skip
    # CPU processes share the cores: one thread each unless told otherwise
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")} if config.use_cpu else None
    with open(log, "w", encoding="utf-8") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])
        raise LaunchFailed(f"torchrun with {config.processes} processes failed (exit {done.returncode}); "
                           f"log {log}:\n{tail}")  # fmt: skip
    info = json.loads((out_dir / "train_info.json").read_text(encoding="utf-8"))
    return [{"step": row["step"], "loss": row["loss"]} for row in info["losses"]]


def main() -> None:
    """One process of a launch: read the request and fine-tune (the Trainer reads the rank from the env)."""
    request = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    config = request["config"]
    config["lora_target_modules"] = tuple(config["lora_target_modules"])
    finetune(request["model_dir"], read_jsonl(request["pairs"]), request["out_dir"], FinetuneConfig(**config),
             progress=request["progress"] and os.environ.get("LOCAL_RANK", "0") == "0")  # fmt: skip


if __name__ == "__main__":
    main()
