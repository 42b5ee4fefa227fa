"""The README renders in HACS: its images are absolute URLs (HACS does not resolve relative ones)."""

from __future__ import annotations

import json
from pathlib import Path
import re

TOP = Path(__file__).parents[2]
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")


def test_readme_images_are_absolute_links_to_files_of_this_repository() -> None:
    manifest = json.loads((TOP / "custom_components/tencent_iot_gateway/manifest.json").read_text())
    repository = manifest["documentation"].removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{repository}/main/"
    images = _IMAGE.findall((TOP / "README.md").read_text(encoding="utf-8"))
    assert images
    for url in images:
        assert url.startswith(prefix), url
        assert (TOP / url.removeprefix(prefix)).is_file(), url
