"""The crossing rule and the direction convention, on exact reference-point paths."""

from __future__ import annotations

import pytest

from edge_agent.counting.lines import CountLine, CrossingCounter


def walk(counter: CrossingCounter, points: list[tuple[float, float]], height: float = 40.0, obj: int = 1) -> list[str]:
    out = []
    for x, y in points:
        out += [f"{line}:{d}" for line, d, _ in counter.observe(obj, x, y, height)]
    return out


def steps(a: tuple[float, float], b: tuple[float, float], n: int = 20) -> list[tuple[float, float]]:
    return [(a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n) for k in range(n + 1)]


def test_right_hand_side_is_positive_in_image_coordinates() -> None:
    # Walking right along the screen (A left, B right), the right hand points down the image (y grows).
    line = CountLine("h", 0, 100, 200, 100)
    assert line.signed_distance(100, 150) > 0
    assert line.signed_distance(100, 50) < 0
    # Walking down the screen, the right hand points to the screen's left.
    down = CountLine("v", 100, 0, 100, 200)
    assert down.signed_distance(50, 100) > 0


@pytest.mark.parametrize(
    ("line", "start", "end", "expected"),
    [
        (CountLine("h", 0, 100, 200, 100), (100, 40), (100, 160), "h:in"),  # downwards across A->B = in
        (CountLine("h", 0, 100, 200, 100), (100, 160), (100, 40), "h:out"),
        (CountLine("h", 200, 100, 0, 100), (100, 40), (100, 160), "h:out"),  # reversing A and B swaps
        (CountLine("v", 100, 0, 100, 200), (160, 100), (40, 100), "v:in"),  # right-to-left of the screen
        (CountLine("v", 100, 0, 100, 200), (40, 100), (160, 100), "v:out"),
        (CountLine("d", 0, 0, 200, 200), (150, 20), (20, 150), "d:in"),
    ],
)
def test_direction_convention(
    line: CountLine, start: tuple[float, float], end: tuple[float, float], expected: str
) -> None:
    assert walk(CrossingCounter([line]), steps(start, end)) == [expected]


def test_jitter_within_band_never_counts() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    counter = CrossingCounter([line], margin=0.25)  # band +-10 px for a 40 px tall box
    wobble = [(20 + 3 * k, 100 + (8 if k % 2 else -8)) for k in range(50)]  # along the line, feet jittering
    assert walk(counter, [(20, 40), *wobble, (170, 40)]) == []


def test_band_scales_with_box_height() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    path = [(100, 100 + (15 if k % 2 else -15)) for k in range(10)]
    assert walk(CrossingCounter([line]), path, height=100) == []  # +-15 px is jitter for a 100 px person
    assert len(walk(CrossingCounter([line]), path, height=20)) == 9  # ... but real steps for a 20 px one


def test_back_and_forth_counts_each_real_crossing() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    path = steps((100, 40), (100, 160)) + steps((100, 160), (100, 40)) + steps((100, 40), (100, 160))
    assert walk(CrossingCounter([line]), path) == ["h:in", "h:out", "h:in"]


def test_loitering_on_the_line_then_leaving() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    stay = [(100 + (k % 3), 100 + (k % 5) - 2) for k in range(100)]
    assert walk(CrossingCounter([line]), [*steps((100, 40), (100, 100)), *stay, *steps((100, 100), (100, 40))]) == []
    assert walk(CrossingCounter([line]), [*steps((100, 40), (100, 100)), *stay, *steps((100, 100), (100, 160))]) == [
        "h:in"
    ]


def test_crossing_must_pass_through_the_segment_not_its_extension() -> None:
    short = CountLine("s", 80, 100, 120, 100)
    assert walk(CrossingCounter([short]), steps((150, 40), (150, 160))) == []  # beside the end
    assert walk(CrossingCounter([short]), steps((100, 40), (100, 160))) == ["s:in"]
    # Approaching beside the segment, passing the line inside it, leaving beside it still counts.
    assert walk(CrossingCounter([short]), [(150, 60), (110, 95), (100, 105), (60, 140)]) == ["s:in"]


def test_jump_across_after_occlusion_counts_when_the_path_passes_the_segment() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    assert walk(CrossingCounter([line]), [(100, 40), (100, 50), (110, 150), (112, 160)]) == ["h:in"]
    assert walk(CrossingCounter([line]), [(100, 40), (100, 50), (400, 150), (410, 160)]) == []


def test_objects_and_lines_are_independent() -> None:
    lines = [CountLine("a", 0, 100, 200, 100), CountLine("b", 100, 0, 100, 200)]
    counter = CrossingCounter(lines)
    got = []
    for (x1, y1), (x2, y2) in zip(steps((20, 40), (180, 160)), steps((180, 160), (20, 40)), strict=True):
        got += [f"1:{line}:{d}" for line, d, _ in counter.observe(1, x1, y1, 40)]
        got += [f"2:{line}:{d}" for line, d, _ in counter.observe(2, x2, y2, 40)]
    assert sorted(got) == ["1:a:in", "1:b:out", "2:a:out", "2:b:in"]
    counter.forget(1)
    assert walk(counter, [(100, 40)], obj=1) == []  # a forgotten object starts afresh: no side known yet


def test_zero_length_line_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 pixel"):
        CountLine("z", 5, 5, 5, 5)


def at_frames(counter: CrossingCounter, points: list[tuple[float, float]], every: int = 1) -> list[tuple[str, int]]:
    """Crossings with their frames, for points observed every ``every`` frames."""
    out = []
    for k, (x, y) in enumerate(points):
        out += [(f"{line}:{d}", frame) for line, d, frame in counter.observe(1, x, y, 40, k * every)]
    return out


def test_approaching_past_the_band_and_turning_back_counts_nothing() -> None:
    line = CountLine("h", 0, 100, 200, 100)  # band +-10 px for a 40 px tall box
    peek = [*steps((100, 40), (100, 112), 24), *steps((100, 112), (100, 40), 24)]  # 2 px past the band, back
    assert walk(CrossingCounter([line], persist=3), peek) == []
    # The plain rule (persist 0, as applied to annotated boxes) takes the first point past the band.
    assert walk(CrossingCounter([line]), peek) == ["h:in", "h:out"]


def test_feet_wobbling_at_the_edge_of_the_band_count_nothing() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    stand = [(100, 109 + (2 if k % 3 == 0 else 0)) for k in range(60)]  # standing at 9-11 px, one frame in three past
    path = [*steps((100, 40), (100, 109)), *stand, *steps((100, 109), (100, 40))]
    assert walk(CrossingCounter([line], persist=3), path) == []


def test_walking_on_counts_at_the_frame_the_band_was_passed() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    # Seen every 4th frame, 6 px per observation: past the band (110) between y=106 (frame 44) and 112 (48).
    points = [(100.0, 40.0 + 6 * k) for k in range(20)]
    assert at_frames(CrossingCounter([line], persist=3), points, every=4) == [("h:in", 47)]


def test_far_past_the_band_counts_at_once_and_a_track_ending_past_it_counts_on_forget() -> None:
    line = CountLine("h", 0, 100, 200, 100)
    counter = CrossingCounter([line], persist=100)
    assert at_frames(counter, [(100, 40), (100, 80), (100, 125)]) == [("h:in", 2)]  # 25 px: twice the band
    counter = CrossingCounter([line], persist=100)
    assert at_frames(counter, [(100, 40), (100, 80), (100, 100), (100, 114)]) == []  # past, not lasted yet
    assert [(c.line, c.direction, c.frame) for c in counter.forget(1)] == [("h", "in", 3)]  # ... and never back
    assert counter.forget(1) == []
