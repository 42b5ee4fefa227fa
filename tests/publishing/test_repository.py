"""The repository's publishing files: workflows that GitHub can run, one version, a changelog that has it."""

from __future__ import annotations

import json
from pathlib import Path
import re
import tomllib
from typing import Any

from homeassistant.util.yaml import parse_yaml
import pytest

TOP = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((TOP / ".github" / "workflows").glob("*.yml"))
# owner/repo[/path]@ref, where ref is a release tag (v7, v7.0.1, 22.5.0) or a full commit; never a branch.
PINNED_ACTION = re.compile(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|\d+\.\d+\.\d+|[0-9a-f]{40})")


def load_workflow(path: Path) -> dict[Any, Any]:
    # PyYAML underneath, as GitHub's loader: YAML 1.1.
    workflow = parse_yaml(path.read_text(encoding="utf-8"))
    assert isinstance(workflow, dict)
    return workflow


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_there_are_workflows() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "validate.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_is_valid_and_pins_every_action(path: Path) -> None:
    workflow = load_workflow(path)
    # YAML 1.1 reads the key `on` as true; GitHub reads it as `on`.
    assert workflow.get("on", workflow.get(True)), "no trigger"
    assert workflow["jobs"]
    for job in workflow["jobs"].values():
        assert str(job["runs-on"]).startswith("ubuntu-")
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "uses" in step:
                assert PINNED_ACTION.fullmatch(step["uses"]), f"{step['uses']} is not pinned to a release"


def test_validate_runs_hassfest_and_hacs_for_an_integration() -> None:
    validate = load_workflow(TOP / ".github" / "workflows" / "validate.yml")
    uses = {step["uses"].split("@")[0]: step for step in steps(validate) if "uses" in step}
    assert "home-assistant/actions/hassfest" in uses
    assert uses["hacs/action"]["with"]["category"] == "integration"


def test_ci_runs_exactly_the_ci_script() -> None:
    ci = load_workflow(TOP / ".github" / "workflows" / "ci.yml")
    assert [step["run"] for step in steps(ci) if "run" in step] == ["bash .ci/run"]


def test_manifest_is_the_one_version_and_pyproject_and_changelog_follow_it() -> None:
    manifest = json.loads((TOP / "custom_components" / "tencent_iot_gateway" / "manifest.json").read_text())
    pyproject = tomllib.loads((TOP / "pyproject.toml").read_text(encoding="utf-8"))
    changelog = (TOP / "CHANGELOG.md").read_text(encoding="utf-8")
    assert pyproject["project"]["version"] == manifest["version"]
    assert "## [Unreleased]\n" in changelog
    assert f"\n## [{manifest['version']}] - " in changelog


def test_hacs_installs_the_release_zip() -> None:
    hacs = json.loads((TOP / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["zip_release"] is True
    assert hacs["filename"].endswith(".zip")
