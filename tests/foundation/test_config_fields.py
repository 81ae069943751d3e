"""Every config field says what it is for, and every number has bounds (issue: 'a description and bounds')."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edge_agent.config import AgentConfig
from hub_server.config import HubConfig


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models(arg)


def _fields(model: type[BaseModel], path: str, seen: set[type[BaseModel]]) -> Iterator[tuple[str, FieldInfo]]:
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        yield f"{path}.{name}", info
        for sub in _models(info.annotation):
            yield from _fields(sub, f"{path}.{name}", seen)


def _numeric(annotation: object) -> bool:
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_numeric(a) for a in args if a is not type(None))
    return annotation in (int, float)


def _bounds(info: FieldInfo) -> tuple[bool, bool]:
    low = any(isinstance(m, annotated_types.Ge | annotated_types.Gt) for m in info.metadata)
    high = any(isinstance(m, annotated_types.Le | annotated_types.Lt) for m in info.metadata)
    return low, high


@pytest.mark.parametrize("root", [AgentConfig, HubConfig], ids=["agent", "hub"])
def test_every_field_is_described_and_every_number_bounded(root: type[BaseModel]) -> None:
    undescribed, unbounded = [], []
    for path, info in _fields(root, root.__name__, set()):
        if not (info.description or "").strip():
            undescribed.append(path)
        if _numeric(info.annotation) and info.annotation is not bool and _bounds(info) != (True, True):
            unbounded.append(path)
    assert not undescribed, f"fields without a description: {undescribed}"
    assert not unbounded, f"numbers without both bounds: {unbounded}"
