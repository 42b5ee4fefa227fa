"""The console's data-template routes: templates per product, each device's properties, and controls.

GET  /api/templates                           the standard categories' templates
GET  /api/products/{pid}/template             the product's template (404 if none)
PUT  /api/products/{pid}/template             {"category": "light"} or {"properties": [...]}
GET  /api/devices/{pid}/{dn}/properties       reported state, pending control, controls and their answers
POST /api/devices/{pid}/{dn}/control          {"params": {...}, "check": true}: the app's control;
                                              "check": false sends anything (a misbehaving cloud)
"""

from __future__ import annotations

from aiohttp import web

from .console import _error, _json_body
from .data_templates import STANDARD_TEMPLATES, DataTemplate, TemplateError
from .registry import Registry, device_key
from .things import ControlError, ThingCloud


class ThingConsole:
    """Routes over the cloud's `ThingCloud`."""

    def __init__(self, registry: Registry, things: ThingCloud) -> None:
        """Serve `things` for the devices of `registry`."""
        self._registry = registry
        self._things = things

    def register_routes(self, app: web.Application) -> None:
        """Mount the routes on `app`."""
        app.router.add_get("/api/templates", self._get_standard)
        app.router.add_get("/api/products/{pid}/template", self._get_template)
        app.router.add_put("/api/products/{pid}/template", self._put_template)
        app.router.add_get("/api/devices/{pid}/{dn}/properties", self._get_properties)
        app.router.add_post("/api/devices/{pid}/{dn}/control", self._post_control)

    async def _get_standard(self, request: web.Request) -> web.Response:
        return web.json_response({name: t.to_json() for name, t in STANDARD_TEMPLATES.items()})

    async def _get_template(self, request: web.Request) -> web.Response:
        product_id = request.match_info["pid"]
        template = self._things.template(product_id)
        if template is None:
            raise _error(404, f"product {product_id} has no data template")
        return web.json_response(template.to_json())

    async def _put_template(self, request: web.Request) -> web.Response:
        try:
            template = DataTemplate.from_json(await _json_body(request))
        except TemplateError as err:
            raise _error(400, str(err)) from None
        await self._things.set_template(request.match_info["pid"], template)
        return web.json_response(template.to_json())

    def _device(self, request: web.Request) -> str:
        key = device_key(request.match_info["pid"], request.match_info["dn"])
        if self._registry.by_key(key) is None:
            raise _error(404, f"no device {key}")
        return key

    async def _get_properties(self, request: web.Request) -> web.Response:
        return web.json_response(self._things.properties(self._device(request)))

    async def _post_control(self, request: web.Request) -> web.Response:
        key = self._device(request)
        body = await _json_body(request)
        params, check = body.get("params"), body.get("check", True)
        if not isinstance(params, dict) or not isinstance(check, bool):
            raise _error(400, "params must be an object and check true or false")
        try:
            record = await self._things.send_control(key, params, check=check)
        except ControlError as err:
            raise _error(400, str(err)) from None
        return web.json_response(record.to_json(), status=201)
