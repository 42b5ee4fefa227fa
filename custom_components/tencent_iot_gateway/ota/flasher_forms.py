"""One form per flasher kind: its fields with HA selectors, and the way between a form and the stored settings.

The stored shape is unchanged (the engine's `to_dict()` output with `kind`, as the earlier object editor
stored it), so existing subentries need no migration: `suggested_values` shows any stored object on its form.
Checks that need the file system (the program exists and is executable, the directory exists) run in the
executor and name their field, as the engine's parser does for every other field.

No field is required by the schema: the flow puts the flasher kind on each form, so that the user can switch
to another kind without filling in this one (HA's frontend refuses to submit a form with an empty required
field). The fields a kind needs are checked here instead, each named with its own error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
import os
from pathlib import Path
import re
import shutil
from typing import Any, Final, Literal

from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from custom_components.tencent_iot_gateway.engine import (
    CommandFlasherConfig,
    FileFlasherConfig,
    HttpFlasherConfig,
    HttpMethod,
    InvalidFieldError,
)
from custom_components.tencent_iot_gateway.form_errors import (
    FormError,
    RangeNumberSelector,
    field_error,
    range_error,
)

from .automation_flasher import DEFAULT_TIMEOUT_S as AUTOMATION_TIMEOUT_S, KIND as AUTOMATION_KIND
from .flasher_settings import parse_flasher_settings

KIND: Final = "kind"
# The http flasher's bearer token: never shown on the form, kept when left empty.
BEARER: Final = "token"
# Settings a form may leave empty: they are then not stored (the engine's default applies).
_OPTIONAL_TEXT: Final = frozenset({BEARER, "version_url"})
# Addresses a device is reached at: without a scheme ("192.168.1.50/ota") the user gets a plain hint.
_URL_FIELDS: Final = ("url", "version_url")
_INDEXED_FIELD = re.compile(r"(\w+)\[\d+\]")


class FlasherFieldError(Exception):
    """A form error of a flasher's form (a field or `base`, its translation key and placeholders)."""

    def __init__(self, error: FormError) -> None:
        super().__init__(error.key)
        self.error = error

    @property
    def field(self) -> str:
        """Where the error shows."""
        return self.error.field

    @property
    def key(self) -> str:
        """The error's translation key."""
        return self.error.key


def _seconds(maximum: float, *, step: float | Literal["any"] = 1) -> RangeNumberSelector:
    return RangeNumberSelector(
        NumberSelectorConfig(
            min=1 if step == 1 else 0.1,
            max=maximum,
            step=step,
            unit_of_measurement="s",
            mode=NumberSelectorMode.BOX,
        )
    )


_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_TEXT = TextSelector()
_TEXT_LIST = TextSelector(TextSelectorConfig(multiple=True))
_METHOD = SelectSelector(
    SelectSelectorConfig(options=[method.value for method in HttpMethod], mode=SelectSelectorMode.LIST)
)


def _command_schema() -> vol.Schema:
    defaults = CommandFlasherConfig(program="program")
    return vol.Schema(
        {
            vol.Optional("program"): _TEXT,
            vol.Optional("args"): _TEXT_LIST,
            vol.Required("timeout_s", default=defaults.timeout_s): _seconds(86_400),
        }
    )


def _http_schema() -> vol.Schema:
    defaults = HttpFlasherConfig(url="http://device")
    return vol.Schema(
        {
            vol.Optional("url"): _URL,
            vol.Required("method", default=defaults.method.value): _METHOD,
            vol.Optional(BEARER): _PASSWORD,
            vol.Optional("version_url"): _URL,
            vol.Required("poll_interval_s", default=defaults.poll_interval_s): _seconds(3600, step="any"),
            vol.Required("timeout_s", default=defaults.timeout_s): _seconds(86_400),
            vol.Required("version_timeout_s", default=defaults.version_timeout_s): _seconds(86_400),
        }
    )


def _file_schema() -> vol.Schema:
    return vol.Schema({vol.Optional("directory"): _TEXT})


def _automation_schema() -> vol.Schema:
    return vol.Schema({vol.Required("timeout_s", default=AUTOMATION_TIMEOUT_S): _seconds(86_400)})


def _program_problem(program: str) -> str | None:
    """None when `program` can be run: a path to an executable file, or a name found on PATH."""
    if os.sep in program:
        path = Path(program)
        return None if path.is_file() and os.access(path, os.X_OK) else "program_not_found"
    return None if shutil.which(program) is not None else "program_not_found"


def _directory_problem(directory: str) -> str | None:
    path = Path(directory)
    if not path.exists():
        return "directory_not_found"
    if not path.is_dir():
        return "not_a_directory"
    return None


@dataclass(frozen=True, slots=True)
class FlasherForm:
    """The form of one flasher kind: its schema, the fields it needs, and the file-system check of one field."""

    kind: str
    schema: Callable[[], vol.Schema]
    required: tuple[str, ...] = ()
    checked_field: str | None = None
    check: Callable[[str], str | None] | None = None


FORMS: Final[dict[str, FlasherForm]] = {
    form.kind: form
    for form in (
        FlasherForm(CommandFlasherConfig.kind, _command_schema, ("program",), "program", _program_problem),
        FlasherForm(HttpFlasherConfig.kind, _http_schema, ("url",)),
        FlasherForm(FileFlasherConfig.kind, _file_schema, ("directory",), "directory", _directory_problem),
        FlasherForm(AUTOMATION_KIND, _automation_schema),
    )
}


def step_id(kind: str) -> str:
    """The subentry flow's step for `kind`'s form."""
    return f"flasher_{kind}"


def suggested_values(stored: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """What the form shows for stored settings of `kind` (nothing for another kind; never the token)."""
    if stored is None or stored.get(KIND) != kind:
        return {}
    return {
        key: value
        for key, value in stored.items()
        if key not in (KIND, BEARER) and value is not None and value not in ("", [])
    }


async def async_settings_from_form(
    hass: HomeAssistant, kind: str, user_input: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The settings to store for this form input; raises `FlasherFieldError` naming the field.

    An empty token keeps the stored one (the form never shows it), as the device secret does.
    """
    form = FORMS[kind]
    if (out_of_range := range_error(form.schema(), user_input)) is not None:
        raise FlasherFieldError(out_of_range)
    settings: dict[str, Any] = {KIND: kind}
    for key, entered in user_input.items():
        value = entered.strip() if isinstance(entered, str) else entered
        if key in _OPTIONAL_TEXT and not value:
            continue
        if key == "args":
            value = [str(arg) for arg in value if str(arg).strip()]
        settings[key] = value
    for key in form.required:
        if not settings.get(key):
            raise FlasherFieldError(FormError(key, "required_setting"))
    for key in _URL_FIELDS:
        if isinstance(settings.get(key), str) and "://" not in settings[key]:
            raise FlasherFieldError(FormError(key, "url_without_scheme"))
    if BEARER not in settings and stored is not None and stored.get(KIND) == kind and stored.get(BEARER):
        settings[BEARER] = stored[BEARER]
    try:
        parsed = parse_flasher_settings(settings)
    except InvalidFieldError as err:
        match = _INDEXED_FIELD.fullmatch(err.field)
        field = match[1] if match else err.field
        fields = {str(marker) for marker in form.schema().schema}
        error = field_error(err, fields)
        raise FlasherFieldError(replace(error, field=field) if field in fields else error) from None
    if form.check is not None and form.checked_field is not None:
        problem = await hass.async_add_executor_job(form.check, parsed[form.checked_field])
        if problem is not None:
            raise FlasherFieldError(FormError(form.checked_field, problem))
    return parsed
