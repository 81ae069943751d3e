"""Windows: clock-aligned, every cell present, the quality envelope right, nothing but counts kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from edge_agent.privacy.quality import camera_fps
from edge_agent.privacy.windows import WindowAggregator, window_start
from hub_protocol.flows import Direction, ObjectClass

T = datetime(2026, 3, 2, 8, 7, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "seconds", "start"),
    [
        (T, 900, datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
        (T, 300, datetime(2026, 3, 2, 8, 5, tzinfo=UTC)),
        (T, 3600, datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),
        (T, 86_400, datetime(2026, 3, 2, tzinfo=UTC)),
        (datetime(2026, 3, 2, 8, 15, tzinfo=UTC), 900, datetime(2026, 3, 2, 8, 15, tzinfo=UTC)),
        (
            datetime(2026, 3, 2, 9, 14, 59, 999_999, tzinfo=timezone(timedelta(hours=1))),
            900,
            datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        ),
    ],
)
def test_windows_are_aligned_to_the_clock(at: datetime, seconds: int, start: datetime) -> None:
    assert window_start(at, seconds) == start


def test_windows_close_in_order_with_every_cell_including_zeros() -> None:
    agg = WindowAggregator(["door", "gate"], 900, now=T)
    agg.add_crossing("door", "in", "pedestrian", T)
    agg.add_crossing("door", "in", "pedestrian", T + timedelta(minutes=1))
    agg.add_crossing("gate", "out", "cyclist", T + timedelta(minutes=9))  # 08:16: next window
    assert agg.close_due(T + timedelta(minutes=7)) == []  # 08:14:31: first window still open
    closed = agg.close_due(T + timedelta(minutes=40))  # 08:47:31
    assert [w.start for w in closed] == [datetime(2026, 3, 2, 8, m, tzinfo=UTC) for m in (0, 15, 30)]
    first, second, third = (w.counts for w in closed)
    assert len(first) == 2 * 2 * 2
    assert first[("door", Direction.IN, ObjectClass.PEDESTRIAN)] == 2
    assert sum(first.values()) == 2
    assert second[("gate", Direction.OUT, ObjectClass.CYCLIST)] == 1 and sum(second.values()) == 1
    assert sum(third.values()) == 0 and len(third) == 8
    assert agg.current_start == datetime(2026, 3, 2, 8, 45, tzinfo=UTC)


def test_quality_envelope() -> None:
    agg = WindowAggregator(["door"], 900, now=T)
    # 08:07:31 start: the process observed 450 s of the first window at 10 fps, dropping 12 frames.
    for i in range(45):
        agg.note_frames(
            processed=100, dropped=12 if i == 0 else 0, observing_seconds=10.0, at=T + timedelta(seconds=10 * i)
        )
    agg.note_frames(processed=60, dropped=3, observing_seconds=20.0, at=datetime(2026, 3, 2, 8, 20, tzinfo=UTC))
    first, second, idle = agg.close_due(datetime(2026, 3, 2, 8, 45, tzinfo=UTC))
    assert first.quality.observed_fraction == pytest.approx(0.5)
    assert first.quality.mean_fps == 10.0  # what the camera delivered (4512 frames in 450 s), whole fps
    assert first.quality.dropped_frames == 0  # under a minute of camera frames (600)
    assert second.quality.observed_fraction == pytest.approx(20 / 900, abs=1e-4)
    assert second.quality.mean_fps == 3.0
    assert second.quality.dropped_frames == 0
    # A window in which the camera delivered nothing says so.
    assert (idle.quality.observed_fraction, idle.quality.mean_fps, idle.quality.dropped_frames) == (0, 0, 0)


def quality_of(processed: int, dropped: int) -> tuple[float, int]:
    agg = WindowAggregator(["door"], 900, now=datetime(2026, 3, 2, 8, 0, tzinfo=UTC))
    agg.note_frames(processed, dropped, 900.0, datetime(2026, 3, 2, 8, 5, tzinfo=UTC))
    [window] = agg.close_due(datetime(2026, 3, 2, 8, 15, tzinfo=UTC))
    return window.quality.mean_fps, window.quality.dropped_frames


def test_quality_does_not_tell_a_passer_by_from_an_empty_street() -> None:
    """A camera at 10 fps: on the empty street the counter keeps up; someone in view for 20 s slows it down
    (the detector runs), so it processes fewer frames and drops some. Published, the two windows are equal."""
    empty = quality_of(9000, 0)
    assert quality_of(8960, 40) == empty == (10.0, 0)
    assert quality_of(8600, 400) == empty  # even 40 s in which the counter dropped every frame
    # A counter that falls behind for minutes still shows, in whole minutes of camera frames (600).
    assert quality_of(6000, 3000) == (10.0, 3000)
    assert quality_of(6001, 2999) == (10.0, 2400)


def test_observed_fraction_never_exceeds_one() -> None:
    agg = WindowAggregator(["door"], 60, now=T)
    agg.note_frames(100, 0, 120.0, T)
    (window,) = agg.close_due(T + timedelta(seconds=60))
    assert window.quality.observed_fraction == 1.0


def test_late_crossing_goes_to_the_oldest_open_window() -> None:
    agg = WindowAggregator(["door"], 900, now=T)
    agg.close_due(datetime(2026, 3, 2, 8, 15, tzinfo=UTC))
    agg.add_crossing("door", Direction.OUT, ObjectClass.PEDESTRIAN, T)  # its own window is already closed
    (window,) = agg.close_due(datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    assert window.start == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    assert window.counts[("door", Direction.OUT, ObjectClass.PEDESTRIAN)] == 1


def test_a_large_clock_jump_is_skipped_not_filled() -> None:
    agg = WindowAggregator(["door"], 900, now=datetime(1970, 1, 1, 0, 1, tzinfo=UTC))  # Pi without RTC
    assert agg.close_due(T) == []
    assert agg.current_start == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert len(agg.close_due(T + timedelta(minutes=30))) == 2


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="divide"):
        WindowAggregator(["door"], 700)
    with pytest.raises(ValueError, match="unique"):
        WindowAggregator(["door", "door"])
    agg = WindowAggregator(["door"], now=T)
    with pytest.raises(ValueError, match="unknown counting line"):
        agg.add_crossing("gate", "in", "pedestrian", T)
    with pytest.raises(ValueError):
        agg.add_crossing("door", "sideways", "pedestrian", T)
    with pytest.raises(ValueError, match="negative"):
        agg.note_frames(-1, 0, 1.0, T)


def test_health_reports_what_the_camera_delivered_in_whole_frames_per_second() -> None:
    # 60 s of a 15 fps camera: with nobody in view all processed; with people, a third dropped. Same figure.
    assert camera_fps(900, 60.0) == camera_fps(600 + 300, 60.0) == 15.0
    assert camera_fps(0, 0.0) == 0.0 and camera_fps(14, 60.0) == 0.0
