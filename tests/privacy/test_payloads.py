"""What leaves the device: the flow and register payloads can carry counts, never crossings or pictures."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig, RegisterConfig
from edge_agent.privacy.protection import BudgetLedger
from edge_agent.privacy.register import build_register_entry
from edge_agent.privacy.reporter import LEDGER_FILE, FlowReporter
from hub_protocol.codec import decode, encode
from hub_protocol.flows import FlowWindow, PolicyKind
from hub_protocol.register import RegisterEntry
from hub_protocol.topics import Channel

FLOW_FIELDS = {
    "v", "device", "boot", "seq", "kind", "window_start", "window_seconds", "cells", "totals", "quality", "policy",
    "line", "direction", "object_class", "count", "observed_fraction", "mean_fps", "dropped_frames", "clock_stepped",
    "k", "epsilon", "daily_budget", "spent_today", "budget_exhausted", "max_crossings", "day_share",
    "capped_tracks",
}  # fmt: skip
T0 = datetime(2026, 3, 2, 7, 58, 12, tzinfo=UTC)


def field_names(schema: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for definition in [schema, *schema.get("$defs", {}).values()]:
        names |= set(definition.get("properties", {}))
    return names


def test_flow_schema_has_no_place_for_tracks_positions_times_or_pixels() -> None:
    # A new field must be added here deliberately, after asking whether it could single anyone out.
    assert field_names(FlowWindow.model_json_schema()) == FLOW_FIELDS


def walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in walk_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in walk_strings(v)]
    return []


def test_emitted_windows_carry_only_aligned_times_and_short_values(tmp_path: Path) -> None:
    sink = MemorySink()
    reporter = FlowReporter(sink, PrivacyConfig(), ["door", "gate"], tmp_path, now=T0, rng=random.Random(4))
    for i in range(40):
        reporter.add_crossing(
            "door" if i % 3 else "gate", "in" if i % 2 else "out", "pedestrian", T0 + timedelta(seconds=17 * i)
        )
    reporter.note_frames(1200, 4, 120.0, T0 + timedelta(minutes=2))
    reporter.tick(T0 + timedelta(minutes=40))
    windows = sink.of(Channel.FLOW)
    assert len(windows) == 3
    for window in windows:
        payload = json.loads(encode(window))
        start = datetime.fromisoformat(payload["window_start"])
        assert start.timestamp() % 900 == 0
        # The only time in the payload is the window start; no string is long enough to hold pixels.
        strings = walk_strings(payload)
        assert [s for s in strings if s.startswith("2026-")] == [payload["window_start"]]
        assert max(len(s) for s in strings) < 64
        assert decode(Channel.FLOW, encode(window)) == window
        assert window.policy.kind is PolicyKind.DP  # the default travels with every window


def test_register_schema_is_descriptive_only() -> None:
    names = field_names(RegisterEntry.model_json_schema())
    assert {"location", "active_until", "privacy", "leaves_device", "never_leaves"} <= names
    assert not names & {"latitude", "longitude", "address", "image", "snapshot"}
    entry = build_register_entry(
        "dev-a",
        "street-a",
        RegisterConfig(
            purpose="p",
            organisation="o",
            contact="a@b.c",
            active_until=date(2027, 1, 1),
            street="Schieweg",
            city="Delft",
        ),
        None,
    )
    assert entry.privacy is None and not any("counts per" in x for x in entry.leaves_device)


def test_old_budget_accounts_are_pruned(tmp_path: Path) -> None:
    sink = MemorySink()
    config = PrivacyConfig(window_seconds=3600)
    reporter = FlowReporter(sink, config, ["door"], tmp_path, now=T0, rng=random.Random(1))
    reporter.tick(T0 + timedelta(hours=2))
    reporter.close()
    ledger = BudgetLedger(tmp_path / LEDGER_FILE)
    assert ledger.spent("2026-03-02") == 2.0
    for day in (1, 2, 3):  # the three latest days spent on are always kept (tests/privacy/test_budget_clock.py)
        reporter = FlowReporter(sink, config, ["door"], tmp_path, now=T0 + timedelta(days=day), rng=random.Random(1))
        reporter.tick(T0 + timedelta(days=day, hours=1))
        reporter.close()
    assert ledger.spent("2026-03-02") == 0.0 and ledger.spent("2026-03-05") == 1.0
    assert not ledger.spend(T0 + timedelta(hours=5), 1.0, 96.0).granted  # a deleted day is never paid again


class FlakySink(MemorySink):
    """Refuses the first ``failures`` events, as a store that is briefly unavailable would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def emit(self, channel: Channel, fields: dict[str, Any]) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError("disk busy")
        return super().emit(channel, fields)


def test_a_refused_window_is_retried_as_protected_without_spending_twice(tmp_path: Path) -> None:
    sink = FlakySink(failures=1)
    reporter = FlowReporter(sink, PrivacyConfig(), ["door"], tmp_path, now=T0, rng=random.Random(9))
    reporter.add_crossing("door", "in", "pedestrian", T0)
    assert reporter.tick(T0 + timedelta(minutes=20)) == [] and reporter.pending == 2
    assert reporter.tick(T0 + timedelta(minutes=21)) == [1, 2] and reporter.pending == 0
    windows = sink.of(Channel.FLOW)
    assert [w.window_start.minute for w in windows] == [45, 0]
    assert [w.policy.spent_today for w in windows] == [1.0, 2.0]
