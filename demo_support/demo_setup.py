"""Sets up the demo in a running emulator and a running Home Assistant, idempotently.

Everything goes through public interfaces, as a person would do it: the emulator's console API, Home
Assistant's onboarding and auth REST API, its websocket API (the core settings, as onboarding sets them, and the
repairs), and the integration's own config flow and sub-device subentry flow.
A second run finds what the first one made (the user, the entry, the subentries) and adds only what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import time
from typing import Any, Final

import aiohttp

from tencent_iot_emulator.console_client import ConsoleClient, ConsoleError

DOMAIN: Final = "tencent_iot_gateway"
SUBENTRY_TYPE: Final = "sub_device"
SEED_VERSION: Final = "0.1"

# The demo user: printed by scripts/develop and written in the README (a local, throw-away instance).
DEMO_USER: Final = ("Demo", "demo", "tencent-demo")
LANGUAGE: Final = "en"
ONBOARDING_STEPS: Final = frozenset({"user", "core_config", "analytics", "integration"})


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Home Assistant's core settings for the demo, set as onboarding does (the config API), not in YAML."""

    location_name: str = "Tencent IoT Gateway (demo)"
    # The gateway speaks to Tencent's cloud, whose home is China: its country, time zone and currency.
    country: str = "CN"
    time_zone: str = "Asia/Shanghai"
    currency: str = "CNY"
    unit_system: str = "metric"
    language: str = LANGUAGE

    def to_json(self) -> dict[str, str]:
        """The body of the websocket command `config/core/update`."""
        return {
            "location_name": self.location_name,
            "country": self.country,
            "time_zone": self.time_zone,
            "currency": self.currency,
            "unit_system": self.unit_system,
            "language": self.language,
        }


CORE_CONFIG: Final = CoreConfig()
# Home Assistant raises this repair wherever it runs from a virtualenv ("Home Assistant Core"), as the demo does
# by design: it says nothing about the demo, so the set-up ignores it (Settings → Repairs → Show ignored).
INSTALL_METHOD_ISSUE: Final = ("homeassistant", "deprecated_method")


@dataclass(frozen=True, slots=True)
class Device:
    """A device of the demo, by Tencent's ids."""

    product_id: str
    device_name: str

    @property
    def key(self) -> str:
        """`PID/DN`, as the console names devices."""
        return f"{self.product_id}/{self.device_name}"


GATEWAY: Final = Device("GWPROD0001", "gateway1")
LIGHTS: Final = tuple(Device("LIGHTPID01", f"light{i}") for i in (1, 2, 3))
AIRCON: Final = Device("ACPROD0001", "airConditioner1")
SUB_DEVICES: Final = (*LIGHTS, AIRCON)
# A product for the bridge ("Bridge entities to Tencent"): the standard light data template and a product
# secret, which is dynamic registration on (the bridge registers a device per entity with it). The light to
# bridge is the demo configuration's `light.living_room_lamp`.
BRIDGE_PRODUCT: Final = "BRLIGHTS01"
BRIDGE_CATEGORY: Final = "light"
BRIDGE_LIGHT: Final = "light.living_room_lamp"


class DemoError(Exception):
    """A step of the set-up failed; the message says which and what to do."""


@dataclass(frozen=True, slots=True)
class EmulatorEndpoints:
    """Where the running emulator listens (its `serve` command prints these)."""

    mqtt_port: int
    mqtts_port: int
    http_url: str
    https_url: str
    ca_file: Path

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EmulatorEndpoints:
        """Parse the JSON line `python -m tencent_iot_emulator serve` prints when it is ready."""
        return cls(
            int(raw["mqtt"]), int(raw["mqtts"]), str(raw["http"]), str(raw["https"]), Path(raw["ca_file"])
        )


@dataclass(frozen=True, slots=True)
class DemoSetup:
    """What the set-up made: the entry, a token for Home Assistant's API, the console."""

    ha_url: str
    access_token: str
    entry_id: str
    created_entry: bool
    console_url: str
    versions: Mapping[str, str]
    """The version each sub-device runs (by `PID/DN`), as the cloud sees it."""
    bridge_product_secret: str = field(default="", repr=False)
    """The product secret of `BRIDGE_PRODUCT` (for the bridge's form; also kept in the secret file)."""


# -- Home Assistant's REST API ---------------------------------------------------------------------------


class HomeAssistantApi:
    """The few REST calls the set-up needs, with a bearer token once logged in."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        """Talk to Home Assistant at `base_url` (e.g. http://127.0.0.1:8123) with `session`."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.client_id = self.base_url + "/"
        self.access_token: str | None = None

    async def request(
        self, method: str, path: str, body: Any = None, *, form: Mapping[str, str] | None = None
    ) -> Any:
        """Send a request; the JSON answer, or `DemoError` for an HTTP error."""
        headers = {"Authorization": f"Bearer {self.access_token}"} if self.access_token else {}
        async with self.session.request(
            method, self.base_url + path, json=body, data=form, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise DemoError(f"{method} {path}: HTTP {response.status}: {text[:300]}")
            return json.loads(text) if text else None

    async def wait_until_running(self, timeout_s: float) -> None:
        """Wait until Home Assistant answers and has finished starting (needs a token)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                config = await self.request("GET", "/api/config")
            except (aiohttp.ClientError, DemoError, ValueError) as err:
                last = str(err)
            else:
                if config.get("state") == "RUNNING":
                    return
                last = f"state {config.get('state')}"
            if time.monotonic() > deadline:
                raise DemoError(f"Home Assistant did not finish starting in {timeout_s:g} s ({last})")
            await asyncio.sleep(0.25)

    async def wait_until_answering(self, timeout_s: float) -> frozenset[str]:
        """Wait for the HTTP server; return the onboarding steps already done (all of them once onboarded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with self.session.get(self.base_url + "/api/onboarding") as response:
                    if response.status == 404:  # the onboarding views go away once it is complete
                        return ONBOARDING_STEPS
                    if response.status == 200:
                        steps = await response.json()
                        return frozenset(str(step["step"]) for step in steps if step.get("done"))
                    problem = f"HTTP {response.status}"
            except aiohttp.ClientError as err:
                problem = str(err)
            if time.monotonic() > deadline:
                raise DemoError(f"Home Assistant did not answer in {timeout_s:g} s: {problem}")
            await asyncio.sleep(0.25)

    async def onboard_and_log_in(self, done: frozenset[str]) -> None:
        """Create the demo user if onboarding has not, log in, and finish the other onboarding steps."""
        name, username, password = DEMO_USER
        if "user" not in done:
            answer = await self.request(
                "POST",
                "/api/onboarding/users",
                {
                    "client_id": self.client_id,
                    "name": name,
                    "username": username,
                    "password": password,
                    "language": LANGUAGE,
                },
            )
            code = str(answer["auth_code"])
        else:
            code = await self._login_code(username, password)
        await self._exchange(code)
        for step in ("core_config", "analytics"):
            if step not in done:
                await self.request("POST", f"/api/onboarding/{step}", {})
        if "integration" not in done:
            await self.request(
                "POST",
                "/api/onboarding/integration",
                {"client_id": self.client_id, "redirect_uri": self.client_id},
            )

    async def set_core_config(self, config: CoreConfig) -> None:
        """Set the core settings (as onboarding's location step does) unless someone chose a country already.

        Without a country Home Assistant raises the repair "The country has not been configured". A folder
        that an older demo onboarded without one gets them too; settings a person chose are left alone.
        """
        if (await self.request("GET", "/api/config")).get("country") is not None:
            return
        await self.websocket({"type": "config/core/update", **config.to_json()})

    async def _login_code(self, username: str, password: str) -> str:
        flow = await self.request(
            "POST",
            "/auth/login_flow",
            {"client_id": self.client_id, "handler": ["homeassistant", None], "redirect_uri": self.client_id},
        )
        result = await self.request(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            {"client_id": self.client_id, "username": username, "password": password},
        )
        if result.get("type") != "create_entry":
            raise DemoError(
                f"Home Assistant refused the demo user {username!r}: this config folder was onboarded "
                "by someone else (delete it to start over)"
            )
        return str(result["result"])

    async def _exchange(self, code: str) -> None:
        tokens = await self.request(
            "POST",
            "/auth/token",
            form={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        )
        self.access_token = str(tokens["access_token"])

    async def run_flow(self, path: str, start: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> Any:
        """Start a data entry flow at `path` and answer its forms with `inputs`, in order; the last result."""
        result = await self.request("POST", path, dict(start))
        for user_input in inputs:
            if result.get("type") != "form":
                return result
            result = await self.request("POST", f"{path}/{result['flow_id']}", dict(user_input))
            if result.get("type") == "form" and result.get("errors"):
                raise DemoError(f"{path} step {result.get('step_id')}: {result['errors']}")
        return result

    async def websocket(self, *commands: Mapping[str, Any]) -> list[Any]:
        """Send websocket commands in order, on one connection; their results (`DemoError` for an error)."""
        results: list[Any] = []
        async with self.session.ws_connect(self.base_url + "/api/websocket") as socket:
            await socket.receive_json()  # auth_required
            await socket.send_json({"type": "auth", "access_token": self.access_token})
            answer = await socket.receive_json()
            if answer.get("type") != "auth_ok":
                raise DemoError(f"the websocket refused the token: {answer}")
            for number, command in enumerate(commands, start=1):
                await socket.send_json({"id": number, **command})
                answer = await socket.receive_json()
                if not answer.get("success"):
                    raise DemoError(f"websocket {command.get('type')}: {answer.get('error')}")
                results.append(answer.get("result"))
        return results

    async def repair_issues(self) -> list[dict[str, Any]]:
        """The repair issues Home Assistant shows (and the ignored ones, marked `ignored`)."""
        (answer,) = await self.websocket({"type": "repairs/list_issues"})
        return list(answer["issues"])

    async def remove_failed_onboarding_entries(self) -> None:
        """Remove what onboarding added but cannot load here, so no integration shows "Failed to set up".

        Onboarding's core step adds a few integrations of its own; the demo's environment has the packages
        Home Assistant and this integration need, not theirs (Google Translate's text-to-speech needs gTTS),
        and `hass --skip-pip` installs none.
        """
        for entry in await self.request("GET", "/api/config/config_entries/entry"):
            if entry.get("source") == "onboarding" and entry.get("state") == "setup_error":
                await self.request("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")

    async def ignore_install_method_issue(self) -> None:
        """Ignore Home Assistant's repair about running from a virtualenv (`INSTALL_METHOD_ISSUE`), if raised."""
        domain, issue_id = INSTALL_METHOD_ISSUE
        for issue in await self.repair_issues():
            if (issue["domain"], issue["issue_id"]) == INSTALL_METHOD_ISSUE and not issue["ignored"]:
                await self.websocket(
                    {"type": "repairs/ignore_issue", "domain": domain, "issue_id": issue_id, "ignore": True}
                )

    async def states(self) -> list[dict[str, Any]]:
        """Every entity state."""
        return list(await self.request("GET", "/api/states"))

    async def state(self, entity_id: str) -> dict[str, Any]:
        """One entity's state."""
        return dict(await self.request("GET", f"/api/states/{entity_id}"))


# -- the set-up ------------------------------------------------------------------------------------------


async def seed_emulator(console: ConsoleClient, secret_file: Path, *, fresh_entry: bool) -> dict[str, str]:
    """Register the gateway and the sub-devices; return every device's secret by `PID/DN`.

    The emulator keeps its registry across restarts but its console never shows a secret twice: the
    secrets are kept in `secret_file` (mode 0600) for the flows. With `fresh_entry` (Home Assistant has no
    entry for the gateway yet), sub-devices bound in the cloud are unbound first: the sub-device flow binds
    them through the gateway, as it would for a new device, and none shows up on its own with no version.
    """
    secrets = _read_secrets(secret_file)
    for device in (GATEWAY, *SUB_DEVICES):
        if not await _exists(console, device):
            credentials = await console.add_device(device.product_id, device.device_name)
            secrets[device.key] = credentials.device_secret
            _write_secrets(secret_file, secrets)
        elif device.key not in secrets:
            raise DemoError(
                f"the emulator knows {device.key} but not {secret_file}: delete the emulator's folder "
                "to start over"
            )
        elif fresh_entry and device != GATEWAY:
            status = await console.get_device(device.product_id, device.device_name)
            if status.gateway is not None:
                await console.unbind(status.gateway, device.key)
    return secrets


async def seed_bridge_product(console: ConsoleClient, secret_file: Path) -> str:
    """The bridge's light product with its template (dynamic registration on); its product secret, kept in
    `secret_file` next to the devices' (the product keeps its secret when it exists already)."""
    product = await console.add_product(BRIDGE_PRODUCT, gateway=False)
    await console.set_template(BRIDGE_PRODUCT, BRIDGE_CATEGORY)
    secrets = _read_secrets(secret_file)
    if secrets.get(BRIDGE_PRODUCT) != product.product_secret:
        _write_secrets(secret_file, secrets | {BRIDGE_PRODUCT: product.product_secret})
    return product.product_secret


async def _exists(console: ConsoleClient, device: Device) -> bool:
    try:
        await console.get_device(device.product_id, device.device_name)
    except ConsoleError as err:
        if err.status == 404:
            return False
        raise
    return True


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(key): str(value) for key, value in raw["secrets"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, AttributeError) as err:
        raise DemoError(f"{path} is damaged ({err}): delete the emulator's folder to start over") from None


def _write_secrets(path: Path, secrets: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"secrets": dict(secrets)}, handle, indent=1)


def flasher_settings(http_url: str) -> dict[str, Any]:
    """The `http` flasher aimed at the emulator's virtual sub-device of the device being flashed."""
    return {
        "url": http_url + "/devices/{product_id}/{device_name}/firmware",
        "version_url": http_url + "/devices/{product_id}/{device_name}",
        "poll_interval_s": 0.5,
        "version_timeout_s": 60,
    }


async def find_gateway_entry(api: HomeAssistantApi) -> str | None:
    """The id of the gateway's config entry, if Home Assistant has it (the demo's config has only that one)."""
    entries = await api.request("GET", f"/api/config/config_entries/entry?domain={DOMAIN}")
    return str(entries[0]["entry_id"]) if entries else None


async def add_gateway_entry(api: HomeAssistantApi, endpoints: EmulatorEndpoints, secret: str) -> str:
    """Add the gateway through the integration's config flow (custom broker: the emulator); the entry id."""
    result = await api.run_flow(
        "/api/config/config_entries/flow",
        {"handler": DOMAIN, "show_advanced_options": False},
        [
            {
                "region": "custom",
                "product_id": GATEWAY.product_id,
                "device_name": GATEWAY.device_name,
                "device_secret": secret,
            },
            {
                "host": "127.0.0.1",
                "port": endpoints.mqtts_port,
                "tls": True,
                "ca_cert": endpoints.ca_file.read_text(encoding="utf-8"),
            },
        ],
    )
    if result.get("type") != "create_entry":
        raise DemoError(f"the config flow did not create the entry: {result}")
    return str(result["result"]["entry_id"])


async def add_sub_devices(
    api: HomeAssistantApi, entry_id: str, http_url: str, secrets: Mapping[str, str]
) -> None:
    """Each sub-device as a subentry with its secret (so the gateway binds it) and the `http` flasher.

    A sub-device already there is refused on the flow's first step: it is kept as it is (a second start
    changes nothing). The flow asks the ids, then the rest (its optional parts in sections), then the flasher.
    """
    path = "/api/config/config_entries/subentries/flow"
    for device in SUB_DEVICES:
        started = await api.request("POST", path, {"handler": [entry_id, SUBENTRY_TYPE]})
        flow = f"{path}/{started['flow_id']}"
        ids = {"product_id": device.product_id, "device_name": device.device_name}
        result = await api.request("POST", flow, ids)
        if (result.get("errors") or {}).get("device_name") == "sub_device_exists":
            await api.request("DELETE", flow)
            continue
        for user_input in (
            {
                "device_secret": secrets[device.key],
                "installed_version": SEED_VERSION,
                "flasher_kind": "http",
                "details": {"unbind_on_remove": False},
                "preflight": {},
                "health": {},
            },
            flasher_settings(http_url),
        ):
            if result.get("type") != "form" or result.get("errors"):
                break
            result = await api.request("POST", flow, user_input)
        if result.get("type") != "create_entry":
            raise DemoError(f"the sub-device flow for {device.key} ended with {result}")


async def wait_for_sub_devices(console: ConsoleClient, timeout_s: float) -> dict[Device, str]:
    """Wait until the cloud sees every sub-device online with a version; return those versions."""
    deadline = time.monotonic() + timeout_s
    while True:
        versions: dict[Device, str] = {}
        for device in SUB_DEVICES:
            status = await console.get_device(device.product_id, device.device_name)
            if status.online and status.version:
                versions[device] = status.version
        if len(versions) == len(SUB_DEVICES):
            return versions
        if time.monotonic() > deadline:
            missing = sorted(d.key for d in SUB_DEVICES if d not in versions)
            raise DemoError(f"not online in the emulator after {timeout_s:g} s: {', '.join(missing)}")
        await asyncio.sleep(0.25)


async def set_up(
    session: aiohttp.ClientSession,
    ha_url: str,
    endpoints: EmulatorEndpoints,
    secret_file: Path,
    *,
    timeout_s: float = 120.0,
) -> DemoSetup:
    """The whole demo set-up against a Home Assistant and an emulator that both run."""
    console = ConsoleClient(endpoints.http_url, session)
    api = HomeAssistantApi(session, ha_url)
    await api.onboard_and_log_in(await api.wait_until_answering(timeout_s))
    await api.wait_until_running(timeout_s)
    await api.set_core_config(CORE_CONFIG)
    entry_id = await find_gateway_entry(api)
    created = entry_id is None
    secrets = await seed_emulator(console, secret_file, fresh_entry=created)
    bridge_secret = await seed_bridge_product(console, secret_file)
    if entry_id is None:
        entry_id = await add_gateway_entry(api, endpoints, secrets[GATEWAY.key])
    await add_sub_devices(api, entry_id, endpoints.http_url, secrets)
    versions = await wait_for_sub_devices(console, timeout_s)
    # The virtual sub-devices live in the emulator's memory: after a restart they come back running the
    # version the gateway reports, so the next flash starts from the truth.
    for device, version in versions.items():
        await console.put_virtual_device(device.product_id, device.device_name, version)
    # Both happen right after Home Assistant has started: by now (seconds later) they are there to clean up.
    await api.remove_failed_onboarding_entries()
    await api.ignore_install_method_issue()
    assert api.access_token is not None
    return DemoSetup(
        ha_url,
        api.access_token,
        entry_id,
        created,
        endpoints.http_url,
        {device.key: version for device, version in versions.items()},
        bridge_secret,
    )
