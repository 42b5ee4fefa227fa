"""scripts/release run for real in a throwaway repository: the commit, the tag, the zip HACS installs, and what
it refuses."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
import shutil
import subprocess
import tomllib
import zipfile

import pytest

TOP = Path(__file__).resolve().parents[2]
INTEGRATION = "custom_components/tencent_iot_gateway"
# What scripts/release reads or writes; the rest of the project plays no part in a release.
RELEASE_INPUTS = (
    "custom_components",
    "scripts/release",
    "scripts/py",
    "CHANGELOG.md",
    "hacs.json",
    "pyproject.toml",
    ".gitignore",
)
REAL_FIELDS: dict[str, object] = {
    "documentation": "https://github.com/example-owner/tencent_iot_gateway",
    "issue_tracker": "https://github.com/example-owner/tencent_iot_gateway/issues",
    "codeowners": ["@example-owner"],
}
ENTRY = "- A change worth releasing."


def git_env() -> dict[str, str]:
    """Git that reads no user or system configuration (no signing, no hooks) and knows who commits."""
    return {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Release Test",
        "GIT_AUTHOR_EMAIL": "release-test@example.invalid",
        "GIT_COMMITTER_NAME": "Release Test",
        "GIT_COMMITTER_EMAIL": "release-test@example.invalid",
    }


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=git_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


def set_manifest_fields(repo: Path, fields: dict[str, object]) -> None:
    path = repo / INTEGRATION / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(fields)
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def add_unreleased_entry(repo: Path) -> None:
    path = repo / "CHANGELOG.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("## [Unreleased]\n", f"## [Unreleased]\n\n### Added\n{ENTRY}\n", 1), encoding="utf-8"
    )


def make_repo(tmp_path: Path, *, real_fields: bool = True) -> Path:
    """A repository of the project's release inputs as they are in this checkout, committed."""
    repo = tmp_path / "repo"
    for name in RELEASE_INPUTS:
        source, target = TOP / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)
    if real_fields:
        set_manifest_fields(repo, REAL_FIELDS)
    add_unreleased_entry(repo)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "The project as it is")
    # Ignored leftovers of a developer's runs in the integration folder: the zip must not carry them.
    stale = repo / INTEGRATION / "__pycache__" / "sensor.cpython-314.pyc"
    stale.parent.mkdir()
    stale.write_bytes(b"stale bytecode")
    (repo / INTEGRATION / "notes.txt.orig").write_text("a merge leftover\n", encoding="utf-8")
    return repo


def run_release(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(repo / "scripts" / "release"), *args],
        cwd=repo,
        env=git_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_release_tags_commits_and_builds_the_zip_hacs_installs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / INTEGRATION / "notes.txt.orig").unlink()  # an untracked file makes the tree unclean; see below
    tracked = sorted(
        name.removeprefix(INTEGRATION + "/") for name in git(repo, "ls-files", INTEGRATION).splitlines()
    )
    before = git(repo, "rev-parse", "HEAD")

    result = run_release(repo, "0.2.0", "--skip-tests")

    assert result.returncode == 0, result.stderr
    assert git(repo, "tag", "--points-at", "HEAD") == "v0.2.0"
    assert git(repo, "cat-file", "-t", "v0.2.0") == "tag"  # annotated, as `git describe` and GitHub expect
    assert git(repo, "rev-parse", "HEAD~1") == before
    assert git(repo, "log", "-1", "--format=%s") == "Release 0.2.0"
    assert git(repo, "status", "--porcelain") == ""

    hacs = json.loads((repo / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["zip_release"] is True
    with zipfile.ZipFile(repo / "dist" / hacs["filename"]) as archive:
        files = sorted(name for name in archive.namelist() if not name.endswith("/"))
        manifest = json.loads(archive.read("manifest.json"))
    assert files == tracked
    assert "__init__.py" in files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc") or "test" in name]
    assert manifest["version"] == "0.2.0"
    assert manifest["documentation"] == REAL_FIELDS["documentation"]

    assert (
        json.loads((repo / INTEGRATION / "manifest.json").read_text(encoding="utf-8"))["version"] == "0.2.0"
    )
    assert (
        tomllib.loads((repo / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"] == "0.2.0"
    )
    changelog = (repo / "CHANGELOG.md").read_text(encoding="utf-8")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert f"## [Unreleased]\n\n## [0.2.0] - {today}\n\n### Added\n{ENTRY}\n" in changelog
    assert ENTRY in (repo / "dist" / "release-notes.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("spoil", "version", "says"),
    [
        pytest.param("placeholders", "0.2.0", "placeholder YOUR-GITHUB-ACCOUNT", id="placeholders"),
        pytest.param("untracked file", "0.2.0", "uncommitted changes", id="dirty-tree"),
        pytest.param("", "0.1.0", "not newer", id="same-version"),
        pytest.param("", "0.2", "must look like", id="malformed-version"),
        pytest.param("empty changelog", "0.2.0", "nothing under", id="no-changelog-entries"),
        pytest.param("existing tag", "0.2.0", "exists already", id="tag-exists"),
        pytest.param("tracked cache", "0.2.0", "must not ship", id="tracked-cache"),
        pytest.param("tracked test", "0.2.0", "must not ship", id="tracked-test"),
    ],
)
def test_release_refuses_and_changes_nothing(tmp_path: Path, spoil: str, version: str, says: str) -> None:
    repo = make_repo(tmp_path, real_fields=spoil != "placeholders")
    if spoil != "untracked file":
        (repo / INTEGRATION / "notes.txt.orig").unlink()
    if spoil == "empty changelog":
        path = repo / "CHANGELOG.md"
        path.write_text(
            path.read_text(encoding="utf-8").replace(f"### Added\n{ENTRY}\n", "", 1).split("### ", 1)[0]
            + "## [0.1.0] - 2026-12-01\n",
            encoding="utf-8",
        )
        git(repo, "commit", "--quiet", "--all", "-m", "Nothing to release")
    if spoil == "existing tag":
        git(repo, "tag", "v0.2.0")
    if spoil in {"tracked cache", "tracked test"}:
        name = "__pycache__/sensor.cpython-314.pyc" if spoil == "tracked cache" else "test_sensor.py"
        (repo / INTEGRATION / name).write_bytes(b"not for users")
        git(repo, "add", "--force", f"{INTEGRATION}/{name}")
        git(repo, "commit", "--quiet", "-m", "Something that must not ship")
    head, tags = git(repo, "rev-parse", "HEAD"), git(repo, "tag")

    result = run_release(repo, version, "--skip-tests")

    assert result.returncode == 1
    assert says in result.stderr
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "tag") == tags
    assert (
        json.loads((repo / INTEGRATION / "manifest.json").read_text(encoding="utf-8"))["version"] == "0.1.0"
    )
    assert not (repo / "dist").exists()
