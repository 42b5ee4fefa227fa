"""What the scripts say on the first start of a new checkout: one true thing (issue 11, demo rough edges).

The shared toolchain is current but the checkout has no broker plugin of its own yet: the scripts say that only
the plugin is built, not that the environment is missing. Run for real in a throwaway checkout in host mode,
with the toolchain's programs stood in for by small scripts on PATH (the real ones live in the shared root).
"""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess

TOP = Path(__file__).resolve().parents[2]
PLUGIN = "tencent_iot_emulator/broker_plugin/tencent_auth.c"
# Host mode wants Python >= 3.14.2 (this one), mosquitto >= 2.1 with its header, and gcc.
FAKE_MOSQUITTO = "#!/bin/sh\necho 'mosquitto version 2.1.0'\n"
FAKE_GCC = """#!/bin/sh
while [ $# -gt 0 ]; do
  if [ "$1" = -o ]; then echo plugin >"$2"; fi
  shift
done
"""


def _checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    for name in ("scripts/lib/toolchain.sh", "scripts/setup", "requirements_test.txt", PLUGIN):
        target = checkout / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TOP / name, target)
    return checkout


def _environment(tmp_path: Path) -> dict[str, str]:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, text in (("mosquitto", FAKE_MOSQUITTO), ("gcc", FAKE_GCC)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    shutil.copy2(os.path.realpath(shutil.which("python3") or "python3"), tools / "python3")
    return {
        "PATH": f"{tools}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TENCENT_IOT_TOOLCHAIN_CACHE": str(tmp_path / "cache"),
        "TENCENT_IOT_FORCE_ROOT": "0",
    }


def _bash(checkout: Path, env: dict[str, str], script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"source scripts/lib/toolchain.sh; {script}"],
        cwd=checkout,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_new_checkout_of_a_current_toolchain_hears_only_that_its_plugin_is_built(tmp_path: Path) -> None:
    checkout, env = _checkout(tmp_path), _environment(tmp_path)
    assert _bash(checkout, env, "toolchain_mode").stdout.strip() == "host"
    (checkout / ".venv").mkdir()
    stamp = _bash(checkout, env, "wanted_stamp").stdout
    (checkout / ".venv" / ".setup-stamp").write_text(stamp)  # the toolchain is current

    first = _bash(checkout, env, "ensure_environment")

    assert first.returncode == 0, first.stderr
    assert (checkout / "build" / "tencent_auth_plugin.so").read_text() == "plugin\n"
    assert "missing or older than requirements" not in first.stderr
    assert "The toolchain is up to date (host mode); this checkout's broker plugin is missing" in first.stderr
    second = _bash(checkout, env, "ensure_environment")
    assert (second.returncode, second.stderr) == (0, "")
