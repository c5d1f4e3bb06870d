"""Run untrusted Python (a model's solution plus its tests) in a guarded subprocess.

Used for pass@1 on MBPP and HumanEval. The program runs in a fresh isolated interpreter
(``python -I``) inside its own temporary directory, with

* a wall-clock timeout (the whole process group is killed),
* CPU-time and address-space limits (``resource``),
* an audit hook, installed before the program starts and impossible to remove from Python, that
  refuses to write, delete, rename or create files outside the temporary directory, to start
  processes and to open network connections.

This keeps honest mistakes (infinite loops, stray writes, ``os.system``) from harming the machine;
it is not a security boundary against a determined attacker — use a container for that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_GUARD = r"""
import os, resource, sys

_ROOT = os.path.realpath(os.getcwd())
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {{"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                "os.symlink", "os.link", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}}
_FORBIDDEN = {{"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
              "os.kill", "os.killpg", "socket.connect", "socket.bind", "ctypes.dlopen"}}


def _inside(path):
    if isinstance(path, int):
        return True  # an already-open descriptor
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == _ROOT or real.startswith(_ROOT + os.sep)


def _guard(event, args):
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        if writing and not _inside(path):
            raise PermissionError(f"sandbox: writing outside the sandbox is not allowed: {{path!r}}")
    elif event in _PATH_EVENTS:
        for arg in args:
            if isinstance(arg, (str, bytes, os.PathLike)) and not _inside(arg):
                raise PermissionError(f"sandbox: {{event}} outside the sandbox is not allowed: {{arg!r}}")
    elif event in _FORBIDDEN:
        raise PermissionError(f"sandbox: {{event}} is not allowed")


sys.addaudithook(_guard)
del resource
with open("program.py", encoding="utf-8") as _handle:
    _source = _handle.read()
exec(compile(_source, "program.py", "exec"), {{"__name__": "__main__"}})
"""


@dataclass(frozen=True)
class SandboxResult:
    """How a program ended: ``passed`` (exit 0), ``failed`` (an exception / non-zero exit) or ``timeout``."""

    status: str
    stdout: str = ""
    stderr: str = ""

    @property
    def passed(self) -> bool:
        """True when the program (its tests included) ran to the end without an error."""
        return self.status == "passed"


def run_python(
    program: str, timeout: float = 10.0, memory_mb: int = 1024, cpu_seconds: int | None = None
) -> SandboxResult:
    """Run ``program`` in the guarded subprocess and report how it ended (never raises for the program's faults)."""
    cpu = int(cpu_seconds or max(1, int(timeout) + 1))
    with tempfile.TemporaryDirectory(prefix="equal-sandbox-") as folder:
        root = Path(folder)
        (root / "program.py").write_text(program, encoding="utf-8")
        (root / "guard.py").write_text(_GUARD.format(cpu=cpu, memory=memory_mb * 2**20), encoding="utf-8")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"}
        process = subprocess.Popen(
            [sys.executable, "-I", "guard.py"],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: a timeout kills everything it started
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            return SandboxResult("timeout", out[-2000:], err[-2000:])
    return SandboxResult("passed" if process.returncode == 0 else "failed", out[-2000:], err[-2000:])
