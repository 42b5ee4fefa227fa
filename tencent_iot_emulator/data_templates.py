"""Data templates: what properties a product has, and the check of a value against them.

A product in IoT Explorer always has a data template (its "物模型"): properties with an identifier, a type, a
mode (`r` read-only, `rw` writable from the cloud) and, by type, a range, an enum's mapping or a string's
length. The cloud refuses a `report` whose property is not in the template, has the wrong type or is out of
range (the whole report, code 406: see docs/data-template-protocol.md), and its console only lets the user
control writable properties with valid values.

The standard categories below follow the identifiers Tencent's standard categories use where
docs/data-template-protocol.md found them (`power_switch`, `brightness`, `color_temp`, `color`,
`current_temp`, `current_humidity`, `battery_percentage`, `contact_state`, `motionAlarm_state`, `control`,
`percent_control`, `percent_state`, `mode`); the ranges, `rgb_color` and the thermostat's `target_temp` are the
emulator's own choice (a category's version changes them; a test or a user can set any template with
`PUT /api/products/{pid}/template`).

Wire types, as Tencent's device SDKs send them: `bool` is the integer 0 or 1 (a JSON true/false is refused, as
the SDKs never send one), `int` and `enum` integers, `float` any number, `string` a string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class TemplateError(ValueError):
    """A template definition that cannot be used."""


class PropertyType(StrEnum):
    """The property types the emulator checks."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    ENUM = "enum"
    STRING = "string"


class PropertyMode(StrEnum):
    """Whether the cloud may write the property (`control`)."""

    READ = "r"
    READ_WRITE = "rw"


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """One property of a data template."""

    id: str
    type: PropertyType
    mode: PropertyMode = PropertyMode.READ_WRITE
    min: float | None = None
    max: float | None = None
    mapping: Mapping[int, str] = field(default_factory=dict)
    max_length: int = 2048

    def check(self, value: object) -> str | None:
        """Why `value` is not a valid value of this property (None when it is)."""
        if isinstance(value, bool):
            return f"{self.id}: a JSON boolean is not a {self.type} value (Tencent's wire form is 0 or 1)"
        match self.type:
            case PropertyType.BOOL:
                if value not in (0, 1) or not isinstance(value, int):
                    return f"{self.id}: a bool property takes 0 or 1, not {value!r}"
            case PropertyType.INT | PropertyType.ENUM:
                if not isinstance(value, int):
                    return f"{self.id}: an {self.type} property takes an integer, not {value!r}"
                if self.type is PropertyType.ENUM and value not in self.mapping:
                    return f"{self.id}: {value} is none of the enum's values {sorted(self.mapping)}"
            case PropertyType.FLOAT:
                if not isinstance(value, int | float):
                    return f"{self.id}: a float property takes a number, not {value!r}"
            case PropertyType.STRING:
                if not isinstance(value, str):
                    return f"{self.id}: a string property takes a string, not {value!r}"
                if len(value) > self.max_length:
                    return f"{self.id}: longer than {self.max_length} characters"
        ranged = isinstance(value, int | float) and self.type in (PropertyType.INT, PropertyType.FLOAT)
        if ranged and not self._in_range(value):
            return f"{self.id}: {value} is outside {self.min}..{self.max}"
        return None

    def _in_range(self, value: object) -> bool:
        assert isinstance(value, int | float)
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        out: dict[str, Any] = {"id": self.id, "type": str(self.type), "mode": str(self.mode)}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.mapping:
            out["mapping"] = {str(k): v for k, v in self.mapping.items()}
        if self.type is PropertyType.STRING:
            out["max_length"] = self.max_length
        return out

    @classmethod
    def from_json(cls, raw: object) -> PropertySpec:
        """Parse one property of `PUT /api/products/{pid}/template`; raises `TemplateError`."""
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise TemplateError("each property needs an id (a non-empty string)")
        try:
            kind = PropertyType(str(raw.get("type")))
            mode = PropertyMode(str(raw.get("mode", "rw")))
        except ValueError:
            raise TemplateError(
                f"{raw['id']}: type is one of {[str(t) for t in PropertyType]}, mode r or rw"
            ) from None
        bounds = [raw.get("min"), raw.get("max")]
        if any(b is not None and (isinstance(b, bool) or not isinstance(b, int | float)) for b in bounds):
            raise TemplateError(f"{raw['id']}: min and max must be numbers")
        mapping_raw = raw.get("mapping", {})
        if not isinstance(mapping_raw, dict):
            raise TemplateError(f"{raw['id']}: mapping must be an object of integer keys")
        try:
            mapping = {int(k): str(v) for k, v in mapping_raw.items()}
        except ValueError:
            raise TemplateError(f"{raw['id']}: mapping keys must be integers") from None
        if kind is PropertyType.ENUM and not mapping:
            raise TemplateError(f"{raw['id']}: an enum needs a mapping")
        max_length = raw.get("max_length", 2048)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise TemplateError(f"{raw['id']}: max_length must be a positive integer")
        return cls(raw["id"], kind, mode, bounds[0], bounds[1], mapping, max_length)


@dataclass(frozen=True, slots=True)
class DataTemplate:
    """A product's properties; `category` names a standard one ("" for a custom template)."""

    properties: tuple[PropertySpec, ...]
    category: str = ""

    def spec(self, property_id: str) -> PropertySpec | None:
        """The property with this identifier."""
        for spec in self.properties:
            if spec.id == property_id:
                return spec
        return None

    def check_report(self, params: Mapping[str, object]) -> str | None:
        """Why the cloud refuses a `report` of `params` (None when every property is valid)."""
        for property_id, value in params.items():
            spec = self.spec(property_id)
            if spec is None:
                return f"{property_id!r} is not a property of the data template"
            reason = spec.check(value)
            if reason is not None:
                return reason
        return None

    def check_control(self, params: Mapping[str, object]) -> str | None:
        """Why the console refuses to send a `control` of `params` (only writable properties, valid values)."""
        reason = self.check_report(params)
        if reason is not None:
            return reason
        for property_id in params:
            spec = self.spec(property_id)
            if spec is not None and spec.mode is not PropertyMode.READ_WRITE:
                return f"{property_id!r} is read-only"
        return None

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        return {"category": self.category, "properties": [p.to_json() for p in self.properties]}

    @classmethod
    def from_json(cls, raw: object) -> DataTemplate:
        """`{"category": NAME}` (a standard one) or `{"properties": [...]}`; raises `TemplateError`."""
        if not isinstance(raw, dict):
            raise TemplateError('a template is {"category": NAME} or {"properties": [...]}')
        category = raw.get("category")
        if category is not None and "properties" not in raw:
            template = STANDARD_TEMPLATES.get(category) if isinstance(category, str) else None
            if template is None:
                raise TemplateError(f"category is one of {sorted(STANDARD_TEMPLATES)}")
            return template
        properties = raw.get("properties")
        if not isinstance(properties, list) or not properties:
            raise TemplateError("properties must be a non-empty list")
        specs = tuple(PropertySpec.from_json(p) for p in properties)
        if len({s.id for s in specs}) != len(specs):
            raise TemplateError("property ids must be unique")
        return cls(specs, category if isinstance(category, str) else "")


def _bool(property_id: str, mode: PropertyMode = PropertyMode.READ_WRITE) -> PropertySpec:
    return PropertySpec(property_id, PropertyType.BOOL, mode)


def _int(property_id: str, low: int, high: int, mode: PropertyMode = PropertyMode.READ_WRITE) -> PropertySpec:
    return PropertySpec(property_id, PropertyType.INT, mode, low, high)


def _enum(
    property_id: str, mapping: dict[int, str], mode: PropertyMode = PropertyMode.READ_WRITE
) -> PropertySpec:
    return PropertySpec(property_id, PropertyType.ENUM, mode, mapping=mapping)


_R = PropertyMode.READ
_BATTERY = _int("battery_percentage", 0, 100, _R)


def _standard(category: str, *properties: PropertySpec) -> tuple[str, DataTemplate]:
    return category, DataTemplate(properties, category)


STANDARD_TEMPLATES: dict[str, DataTemplate] = dict(
    [
        _standard(
            "light",
            _bool("power_switch"),
            _int("brightness", 0, 100),
            _int("color_temp", 2700, 6500),
            _enum("color", {0: "red", 1: "green", 2: "blue"}),
            _int("rgb_color", 0, 0xFFFFFF),
        ),
        _standard("switch", _bool("power_switch")),
        _standard(
            "sensor",
            PropertySpec("current_temp", PropertyType.FLOAT, _R, -40, 125),
            PropertySpec("current_humidity", PropertyType.FLOAT, _R, 0, 100),
            _BATTERY,
        ),
        _standard("contact", _bool("contact_state", _R), _BATTERY),
        _standard("motion", _bool("motionAlarm_state", _R), _BATTERY),
        _standard(
            "cover",
            _enum("control", {0: "open", 1: "close", 2: "stop"}),
            _int("percent_control", 0, 100),
            _int("percent_state", 0, 100, _R),
        ),
        _standard(
            "thermostat",
            _bool("power_switch"),
            _enum("mode", {0: "auto", 1: "cool", 2: "heat", 3: "dry", 4: "fan"}),
            PropertySpec("target_temp", PropertyType.FLOAT, PropertyMode.READ_WRITE, 16, 30),
            PropertySpec("current_temp", PropertyType.FLOAT, _R, -40, 125),
        ),
    ]
)
