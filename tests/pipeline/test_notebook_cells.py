"""The notebooks as files: one parameters cell holding the profile and this run's overrides, one stage each."""

import json

import nbformat
from papermill.translators import PythonTranslator

from equal.config import STAGES, load_config
from equal.pipeline import notebook_stage, numbered_notebooks


def test_every_notebook_has_a_parameters_cell():
    for path in numbered_notebooks():
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path
        assert all("id" in c for c in json.loads(path.read_text())["cells"]), f"{path.name}: a cell has no id"
        nbformat.validate(nb)


def test_every_stage_has_one_notebook_that_names_it():
    """A notebook says which stage's story it tells (metadata.equal.stage); that, not its file name, decides the
    settings it loads."""
    assert [notebook_stage(path) for path in numbered_notebooks()] == list(STAGES)


def parameters_cell(path) -> tuple[dict, str]:
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    namespace: dict = {}
    exec(cell.source, {}, namespace)  # a parameters cell holds literals only
    return namespace, cell


def test_a_parameters_cell_holds_the_profile_and_overrides_not_a_copy_of_the_profile():
    """The settings live in params/ only: a notebook's parameters cell names the profile and, empty by default, the
    few settings a reader changes for a run; papermill can read both (`papermill --help-notebook`)."""
    for path in numbered_notebooks():
        values, cell = parameters_cell(path)
        assert values == {"profile": "default", "overrides": {}}, f"{path.name}: {values}"
        assert {p.name for p in PythonTranslator.inspect(cell)} == {"profile", "overrides"}, path.name
        # the example the cell gives is a real setting of its stage (or of common)
        example = json.loads(cell.source.split("overrides = ", 1)[1].split(", and re-run")[0])
        load_config("default", stage=notebook_stage(path), overrides=example)
