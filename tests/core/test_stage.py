"""The stage interface and its one runner: records, the status they give, and what makes a stage stale."""

import json
import os
from dataclasses import dataclass
from typing import ClassVar

import pytest

from equal.artifacts import Artifacts
from equal.stage import Stage, read_record, record_file, run_stage, stage_status


@dataclass
class Count:
    """A toy stage: writes ``n`` lines, counting its runs in a file of its own."""

    name: ClassVar[str] = "count"
    after: ClassVar[tuple[str, ...]] = ()
    n: int

    def parameters(self) -> dict:
        return {"n": self.n}

    def run(self, art: Artifacts) -> int:
        (art.data / "count.txt").write_text("\n".join(map(str, range(self.n))))
        return self.n


@dataclass
class Double:
    """A toy stage after ``count``: reads its file, fails on request."""

    name: ClassVar[str] = "double"
    after: ClassVar[tuple[str, ...]] = ("count",)
    fail: bool = False

    def parameters(self) -> dict:
        return {}

    def run(self, art: Artifacts) -> int:
        if self.fail:
            raise RuntimeError("killed")
        return 2 * len((art.data / "count.txt").read_text().splitlines())


@pytest.fixture
def art(tmp_path) -> Artifacts:
    (tmp_path / "data").mkdir()
    return Artifacts("toy", tmp_path / "data", tmp_path / "results", tmp_path / "figures")


def states(art, stages):
    return {s.stage: (s.state, s.why) for s in stage_status(stages, art)}


def test_the_toy_stages_are_stages():
    assert isinstance(Count(3), Stage) and isinstance(Double(), Stage)


def test_a_run_is_recorded_and_then_current(art, capsys):
    assert states(art, [Count(3), Double()]) == {"count": ("not run", "no record in this folder"),
                                                 "double": ("waiting", "on count")}  # fmt: skip
    assert run_stage(Count(3), art) == 3
    assert "first run" in capsys.readouterr().out
    record = read_record(art, "count")
    assert record["state"] == "done" and record["parts"]["parameters.n"] == 3 and record["seconds"] >= 0
    assert "pid" not in record and record["packages"]
    assert run_stage(Double(), art) == 6
    assert {k: v[0] for k, v in states(art, [Count(3), Double()]).items()} == {"count": "current",
                                                                             "double": "current"}  # fmt: skip
    run_stage(Count(3), art)
    assert "inputs unchanged" in capsys.readouterr().out


def test_a_changed_setting_is_named_and_makes_downstream_stale(art, capsys):
    run_stage(Count(3), art)
    run_stage(Double(), art)
    status = states(art, [Count(4), Double()])
    assert status["count"] == ("stale", "changed: parameters.n")
    assert status["double"] == ("stale", "upstream not current: count")
    run_stage(Count(4), art)
    assert "inputs changed since its last run (parameters.n)" in capsys.readouterr().out
    # count finished with other inputs: double's record names the upstream fingerprint that changed
    assert states(art, [Count(4), Double()])["double"] == ("stale", "changed: upstream.count")
    run_stage(Double(), art)
    assert {k: v[0] for k, v in states(art, [Count(4), Double()]).items()} == {"count": "current",
                                                                             "double": "current"}  # fmt: skip


def test_a_crashed_run_is_failed_a_killed_one_interrupted_and_both_resume(art, capsys):
    run_stage(Count(2), art)
    with pytest.raises(RuntimeError):
        run_stage(Double(fail=True), art)
    record = read_record(art, "double")
    assert record["state"] == "failed" and record["error"] == "RuntimeError: killed"
    state, why = states(art, [Count(2), Double()])["double"]
    assert state == "failed" and "RuntimeError: killed" in why
    # a process killed outright (kill -9) leaves its record "running": alive here, gone once its pid is
    record |= {"state": "running", "pid": os.getpid()}
    record_file(art, "double").write_text(json.dumps(record))
    assert states(art, [Count(2), Double()])["double"][0] == "running"
    record["pid"] = 2**22 + 12345  # a process that is gone (above the default pid_max)
    record_file(art, "double").write_text(json.dumps(record))
    state, why = states(art, [Count(2), Double()])["double"]
    assert state == "interrupted" and "never finished" in why
    record |= {"pid": os.getpid(), "host": "another-machine"}  # a folder copied from elsewhere: no live process
    record_file(art, "double").write_text(json.dumps(record))
    assert states(art, [Count(2), Double()])["double"][0] == "interrupted"
    assert run_stage(Double(), art) == 4
    assert "resuming a run that did not finish (running" in capsys.readouterr().out
    assert read_record(art, "double")["state"] == "done"


def test_the_profile_stages_are_built_from_the_typed_tree_without_loading_anything(tmp_path):
    from equal.config import STAGES, load_config
    from equal.stages import profile_stages

    config = load_config("smoke", overrides={"data_dir": str(tmp_path)}, stage="data")
    art = Artifacts.for_profile(config.profile, str(tmp_path), str(tmp_path / "r"), str(tmp_path / "f"))
    stages = profile_stages(config, art)
    assert [s.name for s in stages] == [s for s in STAGES if s != "figures"]
    for stage in stages:
        assert isinstance(stage, Stage)
        assert all(a in [s.name for s in stages] for a in stage.after)
        json.dumps(stage.parameters(), default=str)  # fingerprintable
    status = stage_status(stages, art)
    assert [s.state for s in status] == ["not run"] + ["waiting"] * 5
    assert status[3].work.startswith("0 of ") and status[4].work.startswith("0 of ")


def test_a_setting_of_a_stage_changes_only_its_own_fingerprint(tmp_path):
    """(The stages after it follow through the upstream record: test_a_changed_setting_is_named_….)"""
    from equal.config import load_config
    from equal.stage import stage_fingerprint
    from equal.stages import profile_stages

    art = Artifacts.for_profile("smoke", str(tmp_path), str(tmp_path / "r"), str(tmp_path / "f"))
    before = {s.name: stage_fingerprint(s, art).digest for s in profile_stages(load_config("smoke"), art)}
    changed = load_config("smoke", stage="clustering", overrides={"k": 3})
    after = {s.name: stage_fingerprint(s, art).digest for s in profile_stages(changed, art)}
    assert [name for name in before if before[name] != after[name]] == ["clustering"]


def test_every_stage_notebook_runs_its_stage_through_the_runner():
    """The notebooks tell the stages' stories; the work is the stage's, run and recorded by run_stage."""
    from equal.pipeline import notebook_stage, numbered_notebooks

    for path in numbered_notebooks():
        if notebook_stage(path) != "figures":
            assert "run_stage(" in path.read_text(encoding="utf-8"), path.name


def test_the_stage_diagram_of_design_md_is_drawn_from_the_stages():
    """docs/design.md shows the stages as equal.stages declares them (python -m equal.stages redraws it)."""
    from equal.paths import REPO_ROOT
    from equal.stages import stage_diagram

    text = (REPO_ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert stage_diagram() in text, "docs/design.md's stage diagram is stale: run python -m equal.stages"


def test_scheduling_and_display_settings_do_not_make_selection_stale(tmp_path):
    from equal.config import load_config
    from equal.stage import stage_fingerprint
    from equal.stages import SelectionStage

    art = Artifacts.for_profile("smoke", str(tmp_path), str(tmp_path / "r"), str(tmp_path / "f"))
    digest = stage_fingerprint(SelectionStage.from_config(load_config("smoke"), art), art).digest
    shown = load_config("smoke", stage="selection", overrides={"sample_pairs": 3, "parallel_runs": 2})
    assert stage_fingerprint(SelectionStage.from_config(shown, art), art).digest == digest
    pulled = load_config("smoke", stage="selection", overrides={"arms_per_round": 3})
    assert stage_fingerprint(SelectionStage.from_config(pulled, art), art).digest != digest


def test_a_new_pairs_version_makes_the_warm_up_stale(tmp_path, monkeypatch):
    """The warm-up's pairs are made the way every run's are: a change in how answers become pairs redoes them."""
    from equal.config import load_config
    from equal.llm import extract
    from equal.stage import stage_fingerprint
    from equal.stages import WarmupStage

    art = Artifacts.for_profile("smoke", str(tmp_path), str(tmp_path / "r"), str(tmp_path / "f"))
    stage = WarmupStage.from_config(load_config("smoke"), art)
    digest = stage_fingerprint(stage, art).digest
    monkeypatch.setattr(extract, "PAIRS_VERSION", extract.PAIRS_VERSION + 1)
    assert stage_fingerprint(stage, art).digest != digest
