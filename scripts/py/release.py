"""`scripts/release VERSION [--skip-tests]`: cut a release of the integration.

In order, and stopping at the first problem (nothing is changed before every check has passed):

1. the work tree is clean, VERSION is `X.Y.Z` and newer than the manifest's, and its tag does not exist;
2. the manifest's `documentation`, `issue_tracker` and `codeowners` are no longer the placeholders (they live
   only in manifest.json; the README's Development section says what to set);
3. CHANGELOG.md has entries under `## [Unreleased]`;
4. `.ci/run` passes (setup, lint, tests), unless `--skip-tests` (for the test that exercises this script);
5. the version goes into manifest.json (the one place that defines it) and pyproject.toml (which follows it),
   the Unreleased entries become `## [VERSION] - today`, and that is committed and tagged `vVERSION`;
6. the zip HACS installs (`hacs.json`: `zip_release`, `filename`) is built from the tag with `git archive`, so
   it holds exactly the integration folder's tracked files, at its root, and never a cache or a stray file
   (a tracked cache or test file there is refused in step 1).

It runs with any Python >= 3.11 on the host (no project dependency), or inside the toolchain root.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
import datetime as dt
import json
from pathlib import Path
import re
import subprocess
import sys

TOP = Path(__file__).resolve().parents[2]
INTEGRATION_DIR = Path("custom_components/tencent_iot_gateway")
MANIFEST = INTEGRATION_DIR / "manifest.json"
PYPROJECT = Path("pyproject.toml")
CHANGELOG = Path("CHANGELOG.md")
HACS_JSON = Path("hacs.json")
DIST_DIR = Path("dist")
# The manifest ships with this account name in its publishing fields until the maintainer sets the real ones.
PLACEHOLDER = "YOUR-GITHUB-ACCOUNT"
PUBLISHING_FIELDS = ("documentation", "issue_tracker", "codeowners")
UNRELEASED_HEADING = "## [Unreleased]"

_VERSION = re.compile(r"\d+\.\d+\.\d+")
_MANIFEST_VERSION = re.compile(r'^(\s*"version"\s*:\s*")([^"]*)(")', re.MULTILINE)
_PYPROJECT_VERSION = re.compile(r'^(version\s*=\s*")([^"]*)(")', re.MULTILINE)
# What a user's Home Assistant must never receive, even if someone forced it into git.
_NOT_SHIPPED = re.compile(
    r"(^|/)(__pycache__|tests?)/|\.py[co]$|(^|/)(test_[^/]*|[^/]*_test)\.py$|(^|/)conftest\.py$"
)


class ReleaseError(Exception):
    """A check failed; the message says what to do, and nothing has been changed."""


@dataclass(frozen=True, slots=True)
class Release:
    """What a release produced."""

    version: str
    tag: str
    zip_path: Path
    notes_path: Path


def git(*args: str, cwd: Path) -> str:
    # git from PATH with this script's own arguments, as a maintainer would type them.
    completed = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)  # noqa: S603, S607
    return completed.stdout.strip()


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def read_manifest(top: Path) -> dict[str, object]:
    manifest: dict[str, object] = json.loads((top / MANIFEST).read_text(encoding="utf-8"))
    return manifest


def placeholder_fields(manifest: dict[str, object]) -> list[str]:
    """The publishing fields that still carry the placeholder (or are missing)."""
    return [
        field
        for field in PUBLISHING_FIELDS
        if field not in manifest or PLACEHOLDER.lower() in json.dumps(manifest[field]).lower()
    ]


def zip_name(top: Path) -> str:
    hacs = json.loads((top / HACS_JSON).read_text(encoding="utf-8"))
    if hacs.get("zip_release") is not True or not hacs.get("filename"):
        raise ReleaseError("hacs.json must set zip_release to true and name the zip in filename")
    return str(hacs["filename"])


def unreleased_entries(changelog: str) -> str:
    """The text between the Unreleased heading and the next version heading."""
    start = changelog.find(UNRELEASED_HEADING + "\n")
    if start < 0:
        raise ReleaseError(f"{CHANGELOG} has no '{UNRELEASED_HEADING}' heading")
    body = changelog[start + len(UNRELEASED_HEADING) + 1 :]
    end = body.find("\n## [")
    return body if end < 0 else body[:end]


def check(top: Path, version: str) -> tuple[str, str]:
    """Every check that needs no test run; returns the zip's file name and the tag."""
    if not _VERSION.fullmatch(version):
        raise ReleaseError(f"VERSION must look like 1.2.3, not {version!r}")
    dirty = git("status", "--porcelain", cwd=top)
    if dirty:
        raise ReleaseError(f"the work tree has uncommitted changes; commit or stash them first:\n{dirty}")
    manifest = read_manifest(top)
    current = str(manifest.get("version", "0.0.0"))
    if version_key(version) <= version_key(current):
        raise ReleaseError(f"{version} is not newer than the manifest's version {current}")
    tag = f"v{version}"
    if git("tag", "--list", tag, cwd=top):
        raise ReleaseError(f"the tag {tag} exists already")
    if fields := placeholder_fields(manifest):
        raise ReleaseError(
            f"{MANIFEST} still has the placeholder {PLACEHOLDER} in {', '.join(fields)}: set the repository's "
            "URL, its issues URL and your GitHub account (see the README's Development section)"
        )
    tracked = git("ls-files", "--", INTEGRATION_DIR.as_posix(), cwd=top).splitlines()
    if stray := [path for path in tracked if _NOT_SHIPPED.search(path)]:
        raise ReleaseError(f"the integration folder tracks files that must not ship: {', '.join(stray)}")
    if not unreleased_entries((top / CHANGELOG).read_text(encoding="utf-8")).strip():
        raise ReleaseError(
            f"{CHANGELOG} has nothing under '{UNRELEASED_HEADING}': say what this release changes"
        )
    return zip_name(top), tag


def replace_version(text: str, pattern: re.Pattern[str], version: str, where: Path) -> str:
    new_text, count = pattern.subn(lambda match: f"{match[1]}{version}{match[3]}", text, count=1)
    if count != 1:
        raise ReleaseError(f"no version found in {where}")
    return new_text


def bump_files(top: Path, version: str, today: dt.date) -> list[Path]:
    """Writes the version and the changelog heading; returns the files changed."""
    # Text substitution rather than a JSON round trip keeps the manifest's layout as it is.
    manifest = replace_version(
        (top / MANIFEST).read_text(encoding="utf-8"), _MANIFEST_VERSION, version, MANIFEST
    )
    if json.loads(manifest).get("version") != version:
        raise ReleaseError(f"could not set the version in {MANIFEST}")
    (top / MANIFEST).write_text(manifest, encoding="utf-8")
    pyproject = (top / PYPROJECT).read_text(encoding="utf-8")
    (top / PYPROJECT).write_text(
        replace_version(pyproject, _PYPROJECT_VERSION, version, PYPROJECT), encoding="utf-8"
    )
    changelog = (top / CHANGELOG).read_text(encoding="utf-8")
    (top / CHANGELOG).write_text(
        changelog.replace(
            UNRELEASED_HEADING + "\n", f"{UNRELEASED_HEADING}\n\n## [{version}] - {today.isoformat()}\n", 1
        ),
        encoding="utf-8",
    )
    return [MANIFEST, PYPROJECT, CHANGELOG]


def build_zip(top: Path, tag: str, name: str) -> Path:
    (top / DIST_DIR).mkdir(exist_ok=True)
    zip_path = top / DIST_DIR / name
    # `TAG:folder` archives that folder's tree at the zip's root, which is where HACS expects manifest.json.
    git("archive", "--format=zip", f"--output={zip_path}", f"{tag}:{INTEGRATION_DIR.as_posix()}", cwd=top)
    return zip_path


def write_notes(top: Path, entries: str) -> Path:
    """The release's changelog entries, for the GitHub release's description."""
    notes = top / DIST_DIR / "release-notes.md"
    notes.write_text(entries.strip() + "\n", encoding="utf-8")
    return notes


def release(top: Path, version: str, *, run_tests: bool, today: dt.date) -> Release:
    name, tag = check(top, version)
    entries = unreleased_entries((top / CHANGELOG).read_text(encoding="utf-8"))
    if run_tests:
        print("Running .ci/run (setup, lint, tests) before releasing", flush=True)
        if subprocess.run([str(top / ".ci" / "run")], cwd=top, check=False).returncode != 0:  # noqa: S603
            raise ReleaseError(".ci/run failed: nothing was released")
    changed = bump_files(top, version, today)
    git("add", "--", *(path.as_posix() for path in changed), cwd=top)
    git("commit", "--quiet", "-m", f"Release {version}", cwd=top)
    git("tag", "--annotate", tag, "-m", f"Release {version}", cwd=top)
    zip_path = build_zip(top, tag, name)
    return Release(version, tag, zip_path, write_notes(top, entries))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/release", description=__doc__.split("\n", 1)[0])
    parser.add_argument("version", help="the new version, X.Y.Z (newer than manifest.json's)")
    parser.add_argument(
        "--skip-tests", action="store_true", help="do not run .ci/run first (for the test of this script)"
    )
    args = parser.parse_args(argv)
    try:
        done = release(TOP, args.version, run_tests=not args.skip_tests, today=dt.datetime.now(dt.UTC).date())
    except ReleaseError as err:
        print(f"scripts/release: {err}", file=sys.stderr)
        return 1
    print(f"Released {done.version}: tagged {done.tag}, built {done.zip_path.relative_to(TOP)}")
    print(
        f"Next: git push origin HEAD {done.tag} && gh release create {done.tag} "
        f"{done.zip_path.relative_to(TOP)} --title {done.version} --notes-file {done.notes_path.relative_to(TOP)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
