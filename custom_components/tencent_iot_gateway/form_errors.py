"""A form's errors in the user's language: each problem is an error key with its placeholders, never a sentence.

The engine names what is wrong with a value (`FieldProblem`, with values such as a length and its maximum); a
form shows it under the field as its error key, worded by the translations (`error.<problem>` of each flow).
Number fields check their range here, not in the selector: HA's own check would show voluptuous' English
("Value -5.0 is too small") without the range, before the step could say anything.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field as dataclass_field
from typing import Any

from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import NumberSelector
import probatio as vol

from .engine import FieldProblem, InvalidFieldError

BASE = "base"


@dataclass(frozen=True, slots=True)
class FormError:
    """One error of a form: where it shows (a field or `base`), its key, and the key's placeholders."""

    field: str
    key: str
    placeholders: Mapping[str, str] = dataclass_field(default_factory=dict)

    def add_to(self, errors: dict[str, str], placeholders: dict[str, str]) -> None:
        """Put this error into a step's `errors` and `description_placeholders`."""
        errors[self.field] = self.key
        placeholders.update(self.placeholders)


def field_error(err: InvalidFieldError, fields: Collection[str] | None = None) -> FormError:
    """The form error of an engine error; a field the form does not show gets the error at its top."""
    where = err.field if fields is None or err.field in fields else BASE
    return FormError(where, err.problem.value, dict(err.placeholders))


class RangeNumberSelector(NumberSelector):
    """A number field whose min and max the form shows, and whose range `range_error` checks."""

    def __call__(self, data: Any) -> float:
        """A number; its range is checked by the step (see the module's docstring)."""
        value: float = vol.Coerce(float)(data)
        return value


def range_error(schema: vol.Schema, user_input: Mapping[str, Any]) -> FormError | None:
    """The first number of `user_input` outside its field's range (in sections too), or None."""
    for marker, validator in schema.schema.items():
        name = str(marker)
        value = user_input.get(name)
        if isinstance(validator, section):
            inner = range_error(validator.schema, value if isinstance(value, Mapping) else {})
            if inner is not None:
                return inner
            continue
        if not isinstance(validator, RangeNumberSelector) or not isinstance(value, int | float):
            continue
        low, high = validator.config.get("min"), validator.config.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            return FormError(
                name,
                FieldProblem.OUT_OF_RANGE.value,
                {"min": _number(low), "max": _number(high)},
            )
    return None


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
