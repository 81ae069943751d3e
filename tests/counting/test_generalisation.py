"""The tracker and crossing rule on generated ground-plane scenes, one failure pattern per test.

Each scene is people walking on the ground, seen by a camera at a given height: the boxes a person
detector returns (perspective, noise, missed frames, people hiding each other, feet below the frame), and
lines drawn on the pavement. Expected counts are exact: they come from the walkers' paths, and each test
also checks that the truth derived from the exact feet agrees with them.
"""

from __future__ import annotations

from collections import Counter

import pytest

from edge_agent.counting.lines import CountLine
from tests.counting.ground import CAMERAS, GroundScene, Walker, run
from tests.counting.scenes import tally as tally_with_class

EYE = CAMERAS["eye-level"]


def tally(events: list) -> Counter[tuple[str, str]]:  # type: ignore[type-arg]
    return Counter((e.line, e.direction) for e in events)


def line_on_ground(scene: GroundScene, a: tuple[float, float], b: tuple[float, float]) -> CountLine:
    line = scene.ground_line("L", a, b)
    assert line is not None
    return line


def check(scene: GroundScene, line: CountLine, expected: dict[str, int]) -> None:
    want = Counter({("L", d): n for d, n in expected.items() if n})
    assert tally(scene.truth([line])) == want, "the scene's own truth disagrees with the test's expectation"
    assert tally(run(scene, [line])) == want


def test_close_and_large_people_count() -> None:
    # 3.5 m from an eye-level camera a person is about 250 px tall and crosses the view in under 3 s.
    scene = GroundScene(EYE, [Walker([(-3, 3.5), (3, 3.5)], 0.5), Walker([(3, 4.2), (-3, 4.2)], 1.0)], frames=150)
    check(scene, line_on_ground(scene, (0, 2.5), (0, 6)), {"in": 1, "out": 1})


def test_people_overlapping_as_they_pass_each_other() -> None:
    walkers = [Walker([(-4, 5.0), (4, 5.0)], 0.5, speed=1.4), Walker([(4, 5.8), (-4, 5.8)], 0.5, speed=1.3)]
    for seed in range(3):
        scene = GroundScene(EYE, walkers, frames=200, seed=seed)
        check(scene, line_on_ground(scene, (0.5, 3.5), (0.5, 8)), {"in": 1, "out": 1})


def test_a_person_first_seen_just_before_the_line_counts() -> None:
    # Stepping out of a doorway half a metre before the line: the detector sees them only from there on.
    scene = GroundScene(EYE, [Walker([(-4, 6), (4, 6)], 0.0, seen=(2.7, 99))], frames=200)
    check(scene, line_on_ground(scene, (0, 4), (0, 8)), {"in": 1})


def test_a_person_last_seen_just_after_the_line_counts() -> None:
    # Into a shop doorway just past the line: the track ends there.
    scene = GroundScene(EYE, [Walker([(-4, 6), (4, 6)], 0.0, seen=(0, 3.5))], frames=200)
    check(scene, line_on_ground(scene, (0, 4), (0, 8)), {"in": 1})


def test_walking_towards_the_camera_and_out_of_the_frame_at_the_bottom() -> None:
    # Feet leave the frame below; the line is drawn just above the bottom edge, across the pavement.
    scene = GroundScene(EYE, [Walker([(0.3, 14), (0.3, 1.5)], 0.0)], frames=300)
    check(scene, line_on_ground(scene, (-2, 3.6), (2, 3.6)), {"in": 1})


def test_walking_away_from_the_camera_starting_with_feet_below_the_frame() -> None:
    scene = GroundScene(EYE, [Walker([(0.3, 1.8), (0.3, 14)], 1.2)], frames=300)
    check(scene, line_on_ground(scene, (-2, 6), (2, 6)), {"out": 1})


def test_back_and_forth_counts_each_crossing() -> None:
    path = [(-3, 6), (1.5, 6), (-1.5, 6), (3, 6)]
    scene = GroundScene(EYE, [Walker(path, 1.2)], frames=300)
    check(scene, line_on_ground(scene, (0, 4), (0, 8)), {"in": 2, "out": 1})


def test_walking_along_a_line_counts_nothing() -> None:
    scene = GroundScene(EYE, [Walker([(-4, 6.1), (4, 6.1)], 1.2)], frames=250)
    check(scene, line_on_ground(scene, (-3, 6), (3, 6)), {})


def test_two_walking_side_by_side_count_two() -> None:
    pair = [Walker([(-4, 6), (4, 6)], 1.2), Walker([(-4, 6.6), (4, 6.6)], 1.2, stature=1.6)]
    scene = GroundScene(EYE, pair, frames=250)
    check(scene, line_on_ground(scene, (0, 4), (0, 9)), {"in": 2})


@pytest.mark.parametrize("camera", list(CAMERAS))
def test_the_same_street_counts_the_same_from_any_camera_height(camera: str) -> None:
    walkers = [  # across (in), across the other way (out), towards the camera (out), there and back (in, out)
        Walker([(-5, 9), (5, 9)], 1.2),
        Walker([(5, 10), (-5, 10)], 2.0, speed=1.1),
        Walker([(1, 16), (-0.5, 4.5)], 0.5),
        Walker([(-5, 12), (2, 12), (-5, 12)], 3.0),
    ]
    scene = GroundScene(CAMERAS[camera], walkers, frames=400, miss=0.1)
    check(scene, line_on_ground(scene, (0, 6), (0, 14)), {"in": 2, "out": 3})


@pytest.mark.parametrize("camera", ["first-floor", "lamp-post"])
def test_cyclists_at_the_devices_ten_frames_per_second_count_as_cyclists(camera: str) -> None:
    """Riders at 5.5-6 m/s (20 km/h) and two walkers in a street seen at the device's default 10 frames/s, the
    detector on every 4th frame: a cyclist moves more than their height between two runs. One after another:
    nobody hides a rider here (people hiding each other are the patterns above)."""
    walkers = [
        Walker([(-12, 9), (12, 9)], 0.0, speed=6.0, stature=1.75, cyclist=True),
        Walker([(12, 10.5), (-12, 10.5)], 3.5, speed=5.5, stature=1.8, cyclist=True),
        Walker([(-4, 8), (4, 8)], 7.0, speed=1.3),
        Walker([(4, 11.5), (-4, 11.5)], 7.5, speed=1.2),
    ]
    for seed in range(3):
        scene = GroundScene(CAMERAS[camera], walkers, fps=10, frames=180, seed=seed)
        line = line_on_ground(scene, (0, 7), (0, 13))
        want = Counter({("L", "in", "cyclist"): 1, ("L", "out", "cyclist"): 1})
        want += Counter({("L", "in", "pedestrian"): 1, ("L", "out", "pedestrian"): 1})
        truth = tally_with_class(scene.truth([line]))
        assert truth == want, "the scene's own truth disagrees with the test's expectation"
        assert tally_with_class(run(scene, [line])) == want, seed


def test_the_benchmark_calls_a_crossing_shown_only_where_a_box_shows_the_walker() -> None:
    # bench/invariance.py --part density reports this share beside F1: what no box shows, no tracker counts.
    seen = GroundScene(EYE, [Walker([(-4, 6), (4, 6)], 0.0)], frames=200)
    hidden = GroundScene(EYE, [Walker([(-4, 6), (4, 6)], 0.0, seen=(5.0, 99))], frames=200)  # behind a van
    line = line_on_ground(seen, (0, 4), (0, 8))
    assert seen.shown_crossings([line]) == (1, 1)
    assert hidden.shown_crossings([line]) == (0, 1)


@pytest.mark.parametrize("fps", [10.0, 30.0])
def test_a_track_needs_the_same_seconds_of_looks_before_it_counts_at_any_frame_rate(fps: float) -> None:
    # At the default cadence a 30 frames/s camera gives three times the looks a second of a 10 frames/s one; a
    # detector's passing mistake (a box spanning two people, a far walker seen on and off) lasting 0.6 s would
    # pass three looks there. Seen for 0.6 s as they cross: counted at neither rate; seen throughout: at both.
    path = [(-4.0, 6.0), (4.0, 6.0)]  # across the line at x = 0 about 3.1 s in
    brief = GroundScene(EYE, [Walker(path, 0.0, seen=(2.8, 3.4))], fps=fps, frames=round(6 * fps), miss=0.0)
    whole = GroundScene(EYE, [Walker(path, 0.0)], fps=fps, frames=round(6 * fps), miss=0.0)
    line = line_on_ground(whole, (0, 4), (0, 8))
    assert tally(whole.truth([line])) == tally(brief.truth([line])) == Counter({("L", "in"): 1})
    assert tally(run(whole, [line])) == Counter({("L", "in"): 1})
    assert tally(run(brief, [line])) == Counter()
