"""The OpenAPI document: a definition named twice for two different models is an error, never a silent swap."""

from __future__ import annotations

import pytest
from aiohttp import web
from pydantic import BaseModel

from hub_server.api.registry import ApiRegistry, ApiRoutes, Call
from hub_server.store.accounts import Role


def _models() -> tuple[type[BaseModel], type[BaseModel]]:
    class Place(BaseModel):  # the locker's place
        street: str

    locker_place = Place

    class Place(BaseModel):  # type: ignore[no-redef]  # the sensor's place: same bare name, other fields
        latitude: float

    return locker_place, Place


def _registry(first: type[BaseModel], second: type[BaseModel]) -> ApiRegistry:
    class LockerOut(BaseModel):
        place: first  # type: ignore[valid-type]

    class SensorOut(BaseModel):
        place: second  # type: ignore[valid-type]

    lockers, sensors = ApiRoutes("lockers"), ApiRoutes("sensors")

    @lockers.get("/lockers", summary="Lockers", role=Role.VIEWER, response=list[LockerOut])
    async def list_lockers(call: Call) -> web.StreamResponse:
        return call.json([])

    @sensors.get("/sensors", summary="Sensors", role=Role.VIEWER, response=list[SensorOut])
    async def list_sensors(call: Call) -> web.StreamResponse:
        return call.json([])

    registry = ApiRegistry()
    registry.include(lockers)
    registry.include(sensors)
    return registry


def test_two_models_with_one_name_fail_loudly() -> None:
    locker_place, sensor_place = _models()
    with pytest.raises(ValueError, match=r"two different schemas are named 'Place' \(the second at GET /sensors\)"):
        _registry(locker_place, sensor_place).openapi("hub", "1")


def test_one_model_used_twice_is_one_definition() -> None:
    locker_place, _ = _models()
    doc = _registry(locker_place, locker_place).openapi("hub", "1")
    assert doc["components"]["schemas"]["Place"]["properties"] == {"street": {"title": "Street", "type": "string"}}
