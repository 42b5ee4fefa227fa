"""Every string of strings.json and translations/*.json passes the checks hassfest applies, in every language."""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string

from homeassistant.helpers import config_validation as cv
import probatio as vol
import pytest

BASE = Path(__file__).parents[2] / "custom_components" / "tencent_iot_gateway"
FILES = (
    "strings.json",
    *(f"translations/{path.name}" for path in sorted((BASE / "translations").glob("*.json"))),
)
# hassfest's own rules besides `string_with_no_html` (script/hassfest/translations.py, which HA's wheel omits).
_SINGLE_QUOTED_PLACEHOLDER = re.compile(r"'\{\w+\}'")
_COMBINED_REFERENCE = re.compile(r"(.+\[%)|(%\]. +)")


def _strings(tree: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _strings(value, (*path, key))
    else:
        assert isinstance(tree, str), (path, tree)
        yield path, tree


def _load(name: str) -> dict[tuple[str, ...], str]:
    return dict(_strings(json.loads((BASE / name).read_text(encoding="utf-8"))))


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def test_languages_present() -> None:
    """English and Simplified Chinese are shipped (the strings below are checked for every shipped file)."""
    assert {"translations/en.json", "translations/zh-Hans.json"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_every_string_passes_hassfest_rules(name: str) -> None:
    """No HTML-like text (`<host>`), no quoted placeholders, no combined references, no outer whitespace."""
    problems: list[str] = []
    for path, text in _load(name).items():
        try:
            cv.string_with_no_html(text)
        except vol.Invalid as err:
            problems.append(f"{'.'.join(path)}: {err}")
        if _SINGLE_QUOTED_PLACEHOLDER.search(text):
            problems.append(f"{'.'.join(path)}: single-quoted placeholder")
        if _COMBINED_REFERENCE.search(text):
            problems.append(f"{'.'.join(path)}: combined translation reference")
        if text != text.strip() or not text:
            problems.append(f"{'.'.join(path)}: empty or leading/trailing whitespace")
    assert not problems, problems


def test_english_translation_is_strings_json() -> None:
    """A custom integration ships strings.json's English as translations/en.json: they must not drift."""
    assert _load("translations/en.json") == _load("strings.json")


@pytest.mark.parametrize("name", [name for name in FILES if name != "strings.json"])
def test_same_keys_and_placeholders_as_strings_json(name: str) -> None:
    """Every language has exactly the keys of strings.json, each with the same placeholders."""
    source = _load("strings.json")
    translated = _load(name)
    assert set(translated) - set(source) == set(), "keys that strings.json does not have"
    assert set(source) - set(translated) == set(), "keys without a translation"
    mismatched = {
        ".".join(path): (_placeholders(text), _placeholders(translated[path]))
        for path, text in source.items()
        if _placeholders(text) != _placeholders(translated[path])
    }
    assert not mismatched, mismatched
