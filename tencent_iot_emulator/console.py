"""The console: its page at `/` (console_page.py), its API (JSON under /api) and Tencent's dynamic registration
endpoint (spec §1)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields, replace
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .broker import Broker, BrokerLimits
from .cloud import Cloud
from .console_page import (
    ConsoleSnapshot,
    ControlView,
    DeviceRow,
    PropertyRow,
    TaskDeviceRow,
    TaskView,
    ThingView,
    content_security_policy,
    render_page,
    value_text,
)
from .data_templates import PropertyMode, PropertySpec, PropertyType
from .drops import DropError
from .registry import (
    BindingConflictError,
    Device,
    DeviceRequest,
    Registry,
    RegistryError,
    UnknownDeviceError,
    device_key,
    parse_key,
    validate_device_name,
    validate_product_id,
)
from .tasks import TaskError, TaskSpec

REGISTER_PATH = "/device/register"
REGISTER_CLOCK_SKEW_S = 300
_AES_BLOCK = 16


class Console:
    """Routes of E1's half of the console."""

    def __init__(
        self,
        registry: Registry,
        cloud: Cloud,
        firmware_exists: Callable[[str, str], bool],
        broker: Broker | None = None,
    ) -> None:
        """`firmware_exists(product_id, version) -> bool` tells whether a task's image was uploaded."""
        self._registry = registry
        self._cloud = cloud
        self._firmware_exists = firmware_exists
        self._broker = broker

    def register_routes(self, app: web.Application) -> None:
        """Mount the console's page, its API and the dynamic registration endpoint on `app`."""
        app.router.add_get("/", self._page)
        app.router.add_post("/api/products", self._post_product)
        app.router.add_post("/api/devices", self._post_device)
        app.router.add_post("/api/devices/batch", self._post_devices)
        app.router.add_get("/api/devices", self._list_devices)
        app.router.add_get("/api/devices/{pid}/{dn}", self._get_device)
        app.router.add_post("/api/bindings", self._post_binding)
        app.router.add_post("/api/bindings/batch", self._post_bindings)
        app.router.add_delete("/api/bindings", self._delete_binding)
        app.router.add_post("/api/unbind_all", self._post_unbind_all)
        app.router.add_post("/api/search_devices", self._post_search_devices)
        app.router.add_post("/api/tasks", self._post_task)
        app.router.add_get("/api/tasks/{task_id}", self._get_task)
        app.router.add_get("/api/messages", self._get_messages)
        app.router.add_get("/api/violations", self._get_violations)
        app.router.add_get("/api/limits", self._get_limits)
        app.router.add_put("/api/limits", self._put_limits)
        app.router.add_put("/api/drops", self._put_drops)
        app.router.add_delete("/api/drops", self._delete_drops)
        app.router.add_post(REGISTER_PATH, self._register)

    # -- the page ----------------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        return web.Response(
            text=render_page(self.snapshot(), nonce),
            content_type="text/html",
            charset="utf-8",
            headers={
                "Content-Security-Policy": content_security_policy(nonce),
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    def snapshot(self) -> ConsoleSnapshot:
        """What the page shows now: every device (by key) and every task (newest first)."""
        devices = []
        for device in sorted(self._registry.devices(), key=lambda d: d.key):
            entry = self._cloud.tasks.latest_entry(device.key)
            devices.append(
                DeviceRow(
                    device.key,
                    self._cloud.is_online(device.key),
                    self._cloud.version_of(device.key),
                    self._registry.gateway_of(device.key),
                    entry.task_id if entry is not None else None,
                    str(entry.state) if entry is not None else None,
                    entry.percent if entry is not None else None,
                )
            )
        tasks = tuple(
            TaskView(
                task.task_id,
                task.spec.product_id,
                task.spec.version,
                str(task.spec.mode),
                task.spec.from_versions,
                tuple(
                    TaskDeviceRow(
                        entry.key,
                        str(entry.state),
                        entry.percent,
                        entry.result_code,
                        entry.result_msg,
                        tuple(entry.history),
                    )
                    for entry in task.devices.values()
                ),
            )
            for task in reversed(self._cloud.tasks.all())
        )
        return ConsoleSnapshot(tuple(devices), tasks, self._things(devices))

    def _things(self, devices: list[DeviceRow]) -> tuple[ThingView, ...]:
        """The devices whose product has a data template, with what each reported and its latest control."""
        things = self._cloud.things
        views = []
        for device in devices:
            template = things.template(device.key.split("/", 1)[0])
            if template is None:
                continue
            data = things.data(device.key)
            control = data.last_control
            views.append(
                ThingView(
                    device.key,
                    device.online,
                    template.category,
                    tuple(
                        _property_row(spec, data.reported, data.reported_times)
                        for spec in template.properties
                    ),
                    None
                    if control is None
                    else ControlView(
                        value_text(control.params),
                        control.sent_at,
                        control.delivered,
                        control.reply_code,
                        control.reply_status,
                        control.cleared,
                    ),
                    data.refused_reports,
                )
            )
        return tuple(views)

    # -- console -----------------------------------------------------------------------------------------

    async def _post_product(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        product_id = _field(body, "product_id")
        secret = body.get("product_secret")
        gateway = body.get("gateway")
        if gateway is not None and not isinstance(gateway, bool):
            raise _error(400, "gateway must be true or false")
        try:
            secret = await self._registry.add_product(
                validate_product_id(product_id), secret, gateway=gateway
            )
        except RegistryError as err:
            raise _error(400, str(err)) from None
        return web.json_response({"product_id": product_id, "product_secret": secret}, status=201)

    async def _post_device(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            device = await self._registry.add_device(
                _field(body, "product_id"), _field(body, "device_name"), body.get("device_secret")
            )
        except RegistryError as err:
            raise _error(400, str(err)) from None
        return web.json_response(_credentials(device), status=201)

    async def _post_devices(self, request: web.Request) -> web.Response:
        """`{"devices": [{"product_id", "device_name", "device_secret"?}, ...]}`: one registry write for all."""
        entries = _field(await _json_body(request), "devices")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _error(400, "devices must be a list of objects")
        try:
            devices = await self._registry.add_devices(
                [
                    DeviceRequest(_field(e, "product_id"), _field(e, "device_name"), e.get("device_secret"))
                    for e in entries
                ]
            )
        except RegistryError as err:
            raise _error(400, str(err)) from None
        return web.json_response({"devices": [_credentials(d) for d in devices]}, status=201)

    async def _list_devices(self, request: web.Request) -> web.Response:
        product_id = request.query.get("product_id")
        devices = [self._status(d.key) for d in self._registry.devices(product_id)]
        return web.json_response({"devices": devices})

    async def _get_device(self, request: web.Request) -> web.Response:
        key = device_key(request.match_info["pid"], request.match_info["dn"])
        if self._registry.by_key(key) is None:
            raise _error(404, f"no device {key}")
        return web.json_response(self._status(key))

    def _status(self, key: str) -> dict[str, Any]:
        product_id, device_name = key.split("/", 1)
        entry = self._cloud.tasks.latest_entry(key)
        return {
            "product_id": product_id,
            "device_name": device_name,
            "online": self._cloud.is_online(key),
            "version": self._cloud.version_of(key),
            "gateway": self._registry.gateway_of(key),
            "task": entry.to_json() if entry is not None else None,
        }

    async def _binding_keys(self, request: web.Request) -> tuple[str, str]:
        body = await _json_body(request)
        try:
            gateway = device_key(*parse_key(body.get("gateway")))
            sub = device_key(*parse_key(body.get("subdevice")))
        except RegistryError as err:
            raise _error(400, f"gateway and subdevice: {err}") from None
        return gateway, sub

    async def _post_binding(self, request: web.Request) -> web.Response:
        gateway, sub = await self._binding_keys(request)
        try:
            await self._registry.bind(gateway, sub)
        except UnknownDeviceError as err:
            raise _error(404, str(err)) from None
        except BindingConflictError as err:
            raise _error(409, str(err)) from None
        pushed = await self._cloud.subdevices_changed(gateway, [sub], bound=True)
        return web.json_response({"gateway": gateway, "subdevice": sub, "bound": True, "pushed": pushed})

    async def _delete_binding(self, request: web.Request) -> web.Response:
        gateway, sub = await self._binding_keys(request)
        try:
            await self._registry.unbind(gateway, sub)
        except UnknownDeviceError as err:
            raise _error(404, str(err)) from None
        except BindingConflictError as err:
            raise _error(409, str(err)) from None
        pushed = await self._cloud.subdevices_changed(gateway, [sub], bound=False)
        return web.json_response({"gateway": gateway, "subdevice": sub, "bound": False, "pushed": pushed})

    async def _post_bindings(self, request: web.Request) -> web.Response:
        """`{"gateway": "PID/DN", "subdevices": ["PID/DN", ...]}`: one write, one `change` push for all."""
        body = await _json_body(request)
        entries = body.get("subdevices")
        if not isinstance(entries, list):
            raise _error(400, "subdevices must be a list of PRODUCT_ID/DEVICE_NAME")
        try:
            gateway = device_key(*parse_key(body.get("gateway")))
            subs = [device_key(*parse_key(entry)) for entry in entries]
        except RegistryError as err:
            raise _error(400, f"gateway and subdevices: {err}") from None
        try:
            await self._registry.bind_many(gateway, subs)
        except UnknownDeviceError as err:
            raise _error(404, str(err)) from None
        except BindingConflictError as err:
            raise _error(409, str(err)) from None
        pushed = await self._cloud.subdevices_changed(gateway, subs, bound=True)
        return web.json_response({"gateway": gateway, "subdevices": subs, "bound": True, "pushed": pushed})

    async def _post_unbind_all(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            gateway = device_key(*parse_key(body.get("gateway")))
            subs = await self._registry.unbind_all(gateway)
        except UnknownDeviceError as err:
            raise _error(404, str(err)) from None
        except RegistryError as err:
            raise _error(400, str(err)) from None
        pushed = await self._cloud.push_unbind_all(gateway, subs)
        return web.json_response({"gateway": gateway, "subdevices": subs, "pushed": pushed})

    async def _post_search_devices(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        status = body.get("status")
        try:
            gateway = device_key(*parse_key(body.get("gateway")))
        except RegistryError as err:
            raise _error(400, str(err)) from None
        if status not in (0, 1) or isinstance(status, bool):
            raise _error(400, "status must be 0 (stop) or 1 (start)")
        pushed = await self._cloud.push_search(gateway, searching=status == 1)
        return web.json_response({"gateway": gateway, "status": status, "pushed": pushed})

    async def _post_task(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            spec = TaskSpec.parse(body, min_timeout_s=self._cloud.tasks.min_timeout_s)
        except TaskError as err:
            raise _error(400, str(err)) from None
        if not self._firmware_exists(spec.product_id, spec.version):
            raise _error(404, f"no firmware {spec.version} uploaded for product {spec.product_id}")
        try:
            task = await self._cloud.tasks.create(spec)
        except TaskError as err:
            raise _error(404, str(err)) from None
        return web.json_response({"task_id": task.task_id}, status=201)

    async def _get_task(self, request: web.Request) -> web.Response:
        try:
            task_id = int(request.match_info["task_id"])
        except ValueError:
            raise _error(400, "task_id must be an integer") from None
        task = self._cloud.tasks.get(task_id)
        if task is None:
            raise _error(404, f"no task {task_id}")
        return web.json_response(task.to_json())

    async def _get_messages(self, request: web.Request) -> web.Response:
        try:
            key = device_key(*parse_key(request.query.get("client")))
        except RegistryError as err:
            raise _error(400, f"client: {err}") from None
        return web.json_response({"messages": self._cloud.messages(key)})

    async def _get_violations(self, request: web.Request) -> web.Response:
        return web.json_response({"violations": self._cloud.violations()})

    async def _put_drops(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        try:
            self._cloud.drops.replace(body)
        except DropError as err:
            raise _error(400, str(err)) from None
        return web.json_response(self._cloud.drops.to_json())

    async def _delete_drops(self, request: web.Request) -> web.Response:
        self._cloud.drops.clear()
        return web.json_response(self._cloud.drops.to_json())

    # -- dynamic registration (spec §1) --------------------------------------------------------------------

    async def _get_limits(self, request: web.Request) -> web.Response:
        """The broker's limits and how often each kind of violation happened."""
        counts: dict[str, int] = {}
        for violation in self._cloud.violations():
            counts[violation["kind"]] = counts.get(violation["kind"], 0) + 1
        limits = asdict(self._broker.limits) if self._broker is not None else {}
        return web.json_response({"limits": limits, "violations": counts})

    async def _put_limits(self, request: web.Request) -> web.Response:
        """Replace the broker's limits (`{}` restores the defaults; "strict": true every documented one)."""
        if self._broker is None:
            raise _error(404, "this console has no broker")
        body = await _json_body(request)
        base = BrokerLimits.strict() if body.pop("strict", False) is True else BrokerLimits()
        known = {f.name for f in fields(BrokerLimits)}
        for name, value in body.items():
            if name not in known or isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _error(400, f"{name}: a limit is one of {', '.join(sorted(known))}, an integer >= 0")
        limits = replace(base, **body)
        await self._broker.set_limits(limits)
        return web.json_response({"limits": asdict(limits)})

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.read()
        request_id = secrets.token_hex(16)
        try:
            product_id, device_name = self._verify_registration(request, body)
        except _RegistrationError as err:
            return web.json_response(
                {"Response": {"Error": {"Code": err.code, "Message": err.message}, "RequestId": request_id}}
            )
        product_secret = self._registry.product_secret(product_id) or ""
        try:
            device = await self._registry.add_device(product_id, device_name)
        except RegistryError as err:
            error = {"Code": "FailedOperation.DeviceRegisterFailed", "Message": str(err)}
            return web.json_response({"Response": {"Error": error, "RequestId": request_id}})
        plain = json.dumps({"encryptionType": 2, "psk": device.secret}, separators=(",", ":")).encode()
        payload = encrypt_registration(plain, product_secret)
        return web.json_response(
            {"Response": {"Len": len(plain), "Payload": payload, "RequestId": request_id}}
        )

    def _verify_registration(self, request: web.Request, body: bytes) -> tuple[str, str]:
        headers = request.headers
        algorithm = headers.get("X-TC-Algorithm", "")
        timestamp, nonce = headers.get("X-TC-Timestamp", ""), headers.get("X-TC-Nonce", "")
        signature = headers.get("X-TC-Signature", "")
        if algorithm != "hmacsha256":
            raise _RegistrationError(
                "InvalidParameterValue.AlgorithmNotSupported", "X-TC-Algorithm must be hmacsha256"
            )
        if not timestamp.isdigit() or not nonce.lstrip("-").isdigit() or not signature:
            raise _RegistrationError(
                "MissingParameter", "X-TC-Timestamp, X-TC-Nonce and X-TC-Signature are required"
            )
        try:
            data = json.loads(body)
            product_id = validate_product_id(data["ProductId"])
            device_name = validate_device_name(data["DeviceName"])
        except ValueError, KeyError, TypeError, RegistryError:
            raise _RegistrationError(
                "InvalidParameterValue", 'the body must be {"ProductId": ..., "DeviceName": ...}'
            ) from None
        product_secret = self._registry.product_secret(product_id)
        if product_secret is None:
            raise _RegistrationError(
                "ResourceNotFound.ProductNotExist",
                f"product {product_id} does not exist or has no product secret",
            )
        if abs(time.time() - int(timestamp)) > REGISTER_CLOCK_SKEW_S:
            raise _RegistrationError(
                "AuthFailure.SignatureExpire", "X-TC-Timestamp is too far from the server time"
            )
        body_hash = hashlib.sha256(body).hexdigest()
        # Tencent signs its own host name; locally the Host header carries a port, so both forms are accepted.
        hosts = dict.fromkeys([request.host, request.host.rsplit(":", 1)[0]])
        for host in hosts:
            lines = ("POST", host, REGISTER_PATH, "", algorithm, timestamp, nonce, body_hash)
            string_to_sign = "\n".join(lines).encode()
            expected = base64.b64encode(
                hmac.new(product_secret.encode(), string_to_sign, hashlib.sha256).digest()
            ).decode()
            if hmac.compare_digest(expected, signature):
                return product_id, device_name
        raise _RegistrationError("AuthFailure.SignatureFailure", "the X-TC-Signature does not match")


def _property_row(spec: PropertySpec, reported: Mapping[str, Any], times: Mapping[str, float]) -> PropertyRow:
    """A template's property and its reported value, for the page."""
    value = reported.get(spec.id)
    meaning = spec.mapping.get(value) if isinstance(value, int) and not isinstance(value, bool) else None
    return PropertyRow(
        spec.id,
        str(spec.type),
        spec.mode is PropertyMode.READ_WRITE,
        _allowed(spec),
        None if spec.id not in reported else value_text(value),
        meaning,
        times.get(spec.id),
    )


def _allowed(spec: PropertySpec) -> str:
    """The values a property takes, in words."""
    match spec.type:
        case PropertyType.BOOL:
            return "0 or 1"
        case PropertyType.ENUM:
            return ", ".join(f"{key} {name}" for key, name in sorted(spec.mapping.items()))
        case PropertyType.STRING:
            return f"text, at most {spec.max_length} characters"
    return f"{_bound(spec.min)} to {_bound(spec.max)}"


def _bound(value: float | None) -> str:
    """A range's end as written in the template (16777215, not 1.67772e+07)."""
    if value is None:
        return "any"
    return str(int(value)) if float(value).is_integer() else str(value)


def _credentials(device: Device) -> dict[str, str]:
    """A registered device as the console answers it (with its secret: the console is the owner's view)."""
    return {
        "product_id": device.product_id,
        "device_name": device.device_name,
        "device_secret": device.secret,
    }


class _RegistrationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encrypt_registration(plain: bytes, product_secret: str) -> str:
    """AES-128-CBC with the product secret's first 16 bytes, IV of sixteen ASCII zeros, zero padding; base64."""
    padded = plain + b"\x00" * (-len(plain) % _AES_BLOCK)
    encryptor = Cipher(
        algorithms.AES(product_secret.encode()[:_AES_BLOCK]), modes.CBC(b"0" * _AES_BLOCK)
    ).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError, UnicodeDecodeError:
        raise _error(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise _error(400, "the body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str) -> Any:
    if name not in body:
        raise _error(400, f"{name} is required")
    return body[name]


def _error(status: int, message: str) -> web.HTTPException:
    """A 4xx with `{"error": message}`."""
    text = json.dumps({"error": message})
    if status == 404:
        return web.HTTPNotFound(text=text, content_type="application/json")
    if status == 409:
        return web.HTTPConflict(text=text, content_type="application/json")
    return web.HTTPBadRequest(text=text, content_type="application/json")
