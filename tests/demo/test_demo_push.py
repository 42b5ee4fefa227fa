"""The demo scripts tell the truth: what each light runs, what was pushed to whom, what to push next."""

from __future__ import annotations

import pytest

from demo_support.demo_push import Push, next_version, push_report

RUNNING_0_1 = {"light1": "0.1", "light2": "0.1", "light3": "0.1"}


@pytest.mark.parametrize(
    ("running", "expected"),
    [
        (["0.1", "0.1", "0.1"], "V100R0001"),
        (["V100R0001", "0.1", "V100R0001"], "V100R0002"),
        (["V100R0009"], "V100R0010"),
        ([], "V100R0001"),
    ],
)
def test_next_version_follows_the_newest_running(running: list[str], expected: str) -> None:
    assert next_version(running) == expected


def test_a_push_names_each_light_and_whom_it_offers_the_version_to() -> None:
    running = {"light1": "V100R0001", "light2": "0.1", "light3": "0.1"}
    pushed = Push("LIGHTPID01", "V100R0001", "task-1", running, "0" * 32, 4 * 1024 * 1024)
    report = push_report(pushed, "http://127.0.0.1:1")
    assert "light1 runs V100R0001, light2 runs 0.1, light3 runs 0.1" in report
    assert "offers it to light2, light3." in report
    assert pushed.from_versions == ("0.1",)
    assert "4.0 MiB" in report
    assert "press Update" in report
    assert "Install" not in report  # HA's button says Update


def test_a_push_of_what_every_light_runs_creates_no_task_and_says_what_next() -> None:
    running = dict.fromkeys(RUNNING_0_1, "V100R0001")
    pushed = Push("LIGHTPID01", "V100R0001", None, running, "0" * 32, 1024 * 1024)
    report = push_report(pushed, "http://127.0.0.1:1")
    assert pushed.offered_to == ()
    assert "Every light already runs V100R0001: no task was created" in report
    assert "scripts/demo-push V100R0002" in report
    assert "Pushed" not in report
