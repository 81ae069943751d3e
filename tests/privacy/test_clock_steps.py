"""Windows and a clock that is not yet synchronised, or steps: no window merged, none invented, steps marked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.events import MemorySink
from edge_agent.privacy.config import PrivacyConfig
from edge_agent.privacy.reporter import FlowReporter
from edge_agent.timekeeping import ClockSync, ClockWatch
from hub_protocol.flows import FlowWindow, PolicyKind
from hub_protocol.topics import Channel

DAY = datetime(2026, 12, 4, tzinfo=UTC)


@dataclass
class FakeTime:
    """Wall time that can be stepped; monotonic time that only ever moves on; a sync flag."""

    wall: datetime
    mono: float = 1000.0
    synced: bool | None = True

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def synchronized(self) -> bool | None:
        return self.synced

    def run(self, seconds: float) -> None:
        """Time passes: both clocks move together."""
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def step(self, by: timedelta) -> None:
        """The wall clock jumps (NTP, an operator); monotonic time does not."""
        self.wall += by


class Street:
    """A reporter on a fake clock, ticking every 10 s like the agent (which ticks every second)."""

    def __init__(
        self, tmp_path: Path, time: FakeTime, *, require_sync: bool = True, policy: PolicyKind = PolicyKind.NONE
    ) -> None:
        self.time = time
        self.sink = MemorySink()
        self.watch = ClockWatch(time, require_sync=require_sync)
        config = PrivacyConfig(policy=policy)
        self.reporter = FlowReporter(self.sink, config, ["kerb"], tmp_path, clock=self.watch)
        self.tracked = False
        """Crossings as the counter reports them (``on_crossing`` with a track key: counted at close)."""
        self._tracks = 0

    def walk(self, minutes: float, crossings_per_minute: int = 1) -> None:
        for _ in range(round(minutes * 6)):
            if self.time.mono % 60 < 10:
                for _ in range(crossings_per_minute):
                    if self.tracked:
                        self._tracks += 1
                        self.reporter.on_crossing("kerb", "in", "pedestrian", self._tracks)
                    else:
                        self.reporter.add_crossing("kerb", "in", "pedestrian")
            self.reporter.note_frames(100, 0, 10.0)
            self.time.run(10)
            self.reporter.tick()

    def windows(self) -> list[FlowWindow]:
        return [w for ch, w in self.sink.events if ch is Channel.FLOW]  # type: ignore[misc]


def total(window: FlowWindow) -> int:
    return sum(c.count or 0 for c in window.cells)


def summary(windows: list[FlowWindow]) -> list[tuple[str, int, float, bool]]:
    return [
        (w.window_start.strftime("%H:%M"), total(w), w.quality.observed_fraction, w.quality.clock_stepped)
        for w in windows
    ]


def aligned(windows: list[FlowWindow]) -> bool:
    return all(int(w.window_start.timestamp()) % w.window_seconds == 0 for w in windows)


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
def test_clock_set_back_an_hour_does_not_pour_75_minutes_into_one_window(tmp_path: Path, tracked: bool) -> None:
    street = Street(tmp_path, FakeTime(DAY.replace(hour=10)))
    street.tracked = tracked  # tracked crossings are held per object until the window closes: a step keeps them
    street.walk(7)  # 10:00 - 10:07 on the old clock
    street.time.step(timedelta(hours=-1))  # NTP: it is really 09:07
    street.walk(68)  # to 10:15 on the corrected clock
    windows = street.windows()
    assert summary(windows)[0] == ("09:00", 15, 1.0, True)  # 7 min before the step + 8 after, marked
    assert [s[:2] for s in summary(windows)] == [
        ("09:00", 15),
        ("09:15", 15),
        ("09:30", 15),
        ("09:45", 15),
        ("10:00", 15),
    ]
    assert [w.quality.clock_stepped for w in windows] == [True, False, False, False, False]
    assert max(total(w) for w in windows) <= 15 and aligned(windows)


def test_clock_set_forward_four_hours_closes_no_stale_windows(tmp_path: Path) -> None:
    street = Street(tmp_path, FakeTime(DAY.replace(hour=10)))
    street.walk(7)
    street.time.step(timedelta(hours=4))  # 10:07 -> 14:07
    assert street.windows() == [] and street.reporter.tick() == []  # nothing closes at once, nothing invented
    street.walk(38)  # to 14:45
    assert summary(street.windows()) == [
        ("14:00", 15, 1.0, True),
        ("14:15", 15, 1.0, False),
        ("14:30", 15, 1.0, False),
    ]
    assert aligned(street.windows())


def test_boot_in_1970_opens_windows_only_after_the_sync(tmp_path: Path) -> None:
    time = FakeTime(datetime(1970, 1, 1, 0, 0, 12, tzinfo=UTC), synced=False)
    street = Street(tmp_path, time)
    street.walk(30)  # counting before the clock is known: nothing is labelled with 1970
    assert street.windows() == []
    assert street.watch.state() is ClockSync.UNSYNCED
    assert street.reporter.uncounted_before_sync == 30
    time.step(DAY.replace(hour=10, minute=5) - time.wall)  # NTP answers: 10:05
    time.synced = True
    street.walk(40)  # to 10:45
    assert street.watch.state() is ClockSync.SYNCED
    windows = street.windows()
    assert [(s[0], s[3]) for s in summary(windows)] == [("10:00", False), ("10:15", False), ("10:30", False)]
    first = windows[0]
    assert 0.6 < first.quality.observed_fraction < 0.7  # observed from 10:05 only, and says so
    assert [total(w) for w in windows[1:]] == [15, 15] and aligned(windows)


def test_an_unsynchronised_clock_past_the_floor_opens_windows_only_when_trusted(tmp_path: Path) -> None:
    waiting = Street(tmp_path / "a", FakeTime(DAY.replace(hour=10), synced=False))
    waiting.walk(20)
    assert waiting.windows() == []
    trusting = Street(tmp_path / "b", FakeTime(DAY.replace(hour=10), synced=False), require_sync=False)
    trusting.walk(20)
    assert summary(trusting.windows()) == [("10:00", 15, 1.0, False)]


def test_a_slewing_clock_is_no_step(tmp_path: Path) -> None:
    street = Street(tmp_path, FakeTime(DAY.replace(hour=10)))
    for _ in range(90):  # NTP slews at most 0.5 ms/s: here a generous 50 ms every 10 s
        street.walk(1 / 6)
        street.time.step(timedelta(milliseconds=50))
    assert [w.quality.clock_stepped for w in street.windows()] == [False] * len(street.windows())
    assert len(street.windows()) == 1


@pytest.mark.parametrize("step", [timedelta(minutes=-10), None], ids=["stepped", "steady"])
def test_the_days_correction_says_whether_the_clock_stepped_that_day(tmp_path: Path, step: timedelta | None) -> None:
    street = Street(tmp_path, FakeTime(DAY.replace(hour=23, minute=15)), policy=PolicyKind.DP)
    street.walk(20)
    if step is not None:
        street.time.step(step)
    street.walk(50)  # past midnight: the day's correction is released
    corrections = [w for w in street.windows() if w.window_seconds == 86_400]
    assert [w.window_start for w in corrections] == [DAY]
    assert corrections[0].quality.clock_stepped is (step is not None)
