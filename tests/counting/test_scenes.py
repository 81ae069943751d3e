"""The whole counter (motion detector, tracker, crossing rule) on generated scenes with exact counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from edge_agent.counting.detectors.motion import MEMORY_SECONDS, MotionDetector
from edge_agent.counting.evaluate import GtBox, truth_crossings
from edge_agent.counting.factory import settings_for
from edge_agent.counting.lines import CountLine
from edge_agent.counting.pipeline import CountingPipeline, PipelineSettings
from edge_agent.counting.sources import SyntheticScene, Walker, demo_scene
from edge_agent.counting.tracking import Detection
from tests.counting.scenes import MID, run_motion, scene, tally

DOWN = [(160.0, 40.0), (160.0, 220.0)]
UP = [(160.0, 220.0), (160.0, 40.0)]
BRIGHT = (225, 225, 210)


def test_crossing_down_is_in_and_up_is_out() -> None:
    assert tally(run_motion(scene(Walker(DOWN, speed=3, height=50)), [MID])) == Counter(
        {("mid", "in", "pedestrian"): 1}
    )
    assert tally(run_motion(scene(Walker(UP, speed=3, height=50)), [MID])) == Counter({("mid", "out", "pedestrian"): 1})


def test_reversed_line_swaps_directions() -> None:
    reverse = CountLine("rev", 310, 120, 10, 120)
    assert tally(run_motion(scene(Walker(DOWN, speed=3, height=50)), [reverse])) == Counter(
        {("rev", "out", "pedestrian"): 1}
    )


def test_loitering_on_the_line_counts_once_or_not_at_all() -> None:
    pause_then_cross = Walker([(160, 40), (160, 122), (160, 220)], speed=3, height=50, pauses={1: 40})
    assert tally(run_motion(scene(pause_then_cross), [MID])) == Counter({("mid", "in", "pedestrian"): 1})
    pause_then_back = Walker([(160, 40), (160, 125), (160, 40)], speed=3, height=50, pauses={1: 40})
    assert tally(run_motion(scene(pause_then_back), [MID])) == Counter()


@pytest.mark.parametrize(("stop_y", "wait"), [(70, 16), (140, 20)])
def test_a_long_wait_before_or_past_the_line_counts_once_at_30_frames_a_second(stop_y: float, wait: int) -> None:
    """Someone stands 16-20 s (before the line, or just past it) and walks on. The background model forgets in
    seconds, not frames: at 30 frames/s it used to take them in three times as fast as at the 10 frames/s it
    was chosen at, and the ghost left behind when they walked on was counted a second time."""
    fps = 30
    waiting = Walker([(160, 30), (160, stop_y), (160, 225)], speed=1, height=50, pauses={1: wait * fps})
    assert tally(run_motion(scene(waiting, lead_in=60), [MID], fps=fps)) == Counter({("mid", "in", "pedestrian"): 1})


def test_the_background_model_remembers_the_same_time_at_any_frame_rate() -> None:
    """A motion detector's memory follows how often it is shown a frame: the camera's rate over the cadence."""
    for fps, every in ((10, 1), (30, 1), (30, 3)):
        detector = MotionDetector(work_width=160)
        CountingPipeline([MID], detector, fps, replace(settings_for("motion"), detect_every=every))
        assert detector.model.history == round(MEMORY_SECONDS * fps / every)


def test_walking_along_the_line_counts_nothing() -> None:
    along = Walker([(20, 118), (120, 124), (200, 116), (300, 123)], speed=3, height=50)
    assert tally(run_motion(scene(along), [MID])) == Counter()


def test_back_and_forth_counts_each_crossing() -> None:
    pacing = Walker([(160, 40), (160, 200), (160, 40), (160, 200)], speed=3, height=50)
    assert tally(run_motion(scene(pacing), [MID])) == Counter(
        {("mid", "in", "pedestrian"): 2, ("mid", "out", "pedestrian"): 1}
    )


def test_group_walking_side_by_side_counts_each_person() -> None:
    a = Walker([(135, 40), (135, 220)], speed=3, height=50)
    b = Walker([(185, 40), (185, 220)], speed=3, height=50, colour=BRIGHT)
    c = Walker([(100, 220), (100, 40)], speed=3, height=50, start=5)
    assert tally(run_motion(scene(a, b, c), [MID])) == Counter(
        {("mid", "in", "pedestrian"): 2, ("mid", "out", "pedestrian"): 1}
    )


def test_occlusion_by_a_passer_by_loses_no_crossing() -> None:
    across = Walker([(40, 160), (280, 160)], speed=3, height=50)
    diagonal = Walker([(260, 100), (60, 200)], speed=3, height=50, colour=BRIGHT)
    vertical = CountLine("v", 160, 10, 160, 230)
    assert tally(run_motion(scene(across, diagonal), [MID, vertical])) == Counter(
        {("mid", "in", "pedestrian"): 1, ("v", "out", "pedestrian"): 1, ("v", "in", "pedestrian"): 1}
    )


def test_passing_beside_a_short_segment_counts_nothing() -> None:
    short = CountLine("short", 40, 120, 100, 120)
    beside = Walker([(200, 40), (200, 220)], speed=3, height=50)
    through = Walker([(70, 40), (70, 220)], speed=3, height=50, start=30, colour=BRIGHT)
    assert tally(run_motion(scene(beside, through), [short])) == Counter({("short", "in", "pedestrian"): 1})


def test_fast_rider_is_a_cyclist_and_a_walker_a_pedestrian() -> None:
    rider = Walker(DOWN, speed=16, height=50, cyclist=True)
    walker = Walker(UP, speed=3, height=50, start=30, colour=BRIGHT)
    assert tally(run_motion(scene(rider, walker), [MID])) == Counter(
        {("mid", "in", "cyclist"): 1, ("mid", "out", "pedestrian"): 1}
    )


def test_scene_ground_truth_gives_the_same_crossings_as_the_rule() -> None:
    walkers = [Walker(DOWN, speed=3, height=50), Walker([(160, 40), (160, 200), (160, 40)], start=5, speed=4)]
    synthetic = SyntheticScene(320, 240, walkers)
    boxes: dict[int, list[GtBox]] = {}

    for frame in range(synthetic.length):
        for i, (x1, y1, x2, y2) in synthetic.boxes(frame):
            boxes.setdefault(i, []).append(GtBox(frame, x1, y1, x2, y2))
    found = Counter((c.line, c.direction) for c in truth_crossings(boxes, [MID], margin=0.25))
    assert found == Counter({("mid", "in"): 2, ("mid", "out"): 1})


def test_demo_street_counts_match_its_ground_truth_with_classes() -> None:
    street = scene(*demo_scene(320, 240, fps=10).walkers)  # after a lead-in: nobody in the first frame
    lines = [CountLine("mid", 0, 120, 320, 120), CountLine("low", 320, 180, 0, 180)]
    boxes: dict[int, list[GtBox]] = {}
    for frame in range(street.length):
        for i, (x1, y1, x2, y2) in street.boxes(frame):
            boxes.setdefault(i, []).append(GtBox(frame, x1, y1, x2, y2))
    truth = Counter(
        (c.line, c.direction, "cyclist" if street.walkers[obj].cyclist else "pedestrian")
        for obj in boxes
        for c in truth_crossings({obj: boxes[obj]}, lines, margin=0.25)
    )
    assert truth[("mid", "in", "cyclist")] + truth[("mid", "out", "cyclist")] >= 4
    assert tally(run_motion(street, lines)) == truth


class _Recorder:
    """A detector that records where it was asked to look (and finds nobody)."""

    name = "recorder"
    classifies = True
    noise_allowance = 0.0

    def __init__(self) -> None:
        self.rois: list[tuple[int, int, int, int] | None] = []

    def detect(self, image: object, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        self.rois.append(roi)
        return []


def test_model_detector_runs_every_kth_frame_only_around_the_lines_and_only_on_motion() -> None:
    recorder = _Recorder()
    short = CountLine("door", 100, 300, 200, 300)
    pipeline = CountingPipeline([short], recorder, 10, PipelineSettings(detect_every=4))
    still = np.full((480, 640, 3), 120, np.uint8)
    for index in range(40):
        image = still.copy()
        if index >= 20:  # someone moves near the door
            image[200 + index : 260 + index, 130:150] = 20
        pipeline.process(index, image if pipeline.wants_image(index) else None)
    # Of the ten 4th frames, the still ones (4..16) are skipped: the first frame (the background model
    # knows nothing yet) and the five with motion remain, each looking only around the segment.
    assert 4 <= len(recorder.rois) <= 6
    x1, y1, x2, y2 = recorder.rois[-1] or (0, 0, 640, 480)
    assert (x1, x2) != (0, 640) and x1 < 100 and x2 > 200 and y1 < 300 - 60 and y2 > 300
    assert (x2 - x1) * (y2 - y1) < 0.5 * 640 * 480


class _Walker:
    """A detector that finds one person walking down the frame, ``height`` px tall, and notes when it looked."""

    name = "walker"
    classifies = True
    noise_allowance = 0.0

    def __init__(self, height: float, cyclist: bool = False) -> None:
        self.height, self.cyclist = height, cyclist
        self.looked: list[int] = []
        self.frame = 0

    def detect(self, image: object, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        self.looked.append(self.frame)
        foot = 200 + 2 * self.frame
        return [Detection(300, foot - self.height, 300 + 0.4 * self.height, foot, 0.9, self.cyclist)]


def detector_gaps(detector: _Walker, fps: float, frames: int) -> list[int]:
    """Frames between the detector's runs, every 4th frame by default."""
    settings = PipelineSettings(detect_every=4, roi=False, motion_gate=False, appearance=False)
    pipeline = CountingPipeline([MID], detector, fps, settings)
    frame = np.zeros((480, 640, 3), np.uint8)
    for index in range(frames):
        detector.frame = index
        pipeline.process(index, frame if pipeline.wants_image(index) else None)
    return [b - a for a, b in zip(detector.looked, detector.looked[1:], strict=False)]


@pytest.mark.parametrize(
    ("height", "fps", "every"),
    [(100, 10, [4]), (240, 10, [4, 4, 2]), (240, 25, [4]), (240, 7, [4, 4, 1])],
)
def test_the_detector_looks_more_often_while_someone_is_close(height: float, fps: float, every: list[int]) -> None:
    """Every 4th frame, but at least 5 runs a second once a confirmed track is taller than 0.35 of the frame."""
    gaps = detector_gaps(_Walker(height), fps, 40)
    # The first gaps come before the track is confirmed (three detections); then the steady cadence.
    assert gaps[: len(every) - 1] == every[:-1] and set(gaps[len(every) - 1 :]) == {every[-1]}


@pytest.mark.parametrize(("fps", "every"), [(10, 2), (25, 4)])
def test_the_detector_looks_more_often_from_the_first_box_called_a_cyclist(fps: float, every: int) -> None:
    """A cyclist crosses a view in a second or two: from their first box on, at least 5 runs a second."""
    assert set(detector_gaps(_Walker(60, cyclist=True), fps, 20)) == {every}


def test_frames_dropped_by_a_slow_consumer_still_count_the_crossings() -> None:
    """A live source skips frames when processing falls behind: only every 6th frame is seen here. The counts
    stay exact, and walkers stay pedestrians (their speed is per real frame, not per processed frame)."""
    walkers = scene(
        Walker(DOWN, speed=2, height=50),
        Walker([(100, 220), (100, 40)], speed=2, height=50, start=15, colour=BRIGHT),
    )
    pipeline = CountingPipeline([MID], MotionDetector(work_width=160), 10, settings_for("motion"))
    events = []
    for index in range(0, walkers.length, 6):
        events += pipeline.process(index, walkers.render(index))
    events += pipeline.flush()
    assert tally(events) == Counter({("mid", "in", "pedestrian"): 1, ("mid", "out", "pedestrian"): 1})


def _teachers() -> list[Walker]:
    """Three people walking alone, one after another: the motion detector learns one person's shape."""
    colours = [(30, 30, 60), BRIGHT, (60, 30, 30)]
    return [
        Walker([(x, 30), (x, 230)], speed=3, height=50, start=70 * k, colour=c)
        for k, (x, c) in enumerate(zip((60, 260, 60), colours, strict=True))
    ]


def test_two_people_side_by_side_in_one_blob_count_two_once_a_person_is_learnt() -> None:
    # 6 px apart: the blobs merge into one as wide as two people, from the moment they appear.
    pair = [
        Walker([(147, 225), (147, 40)], speed=3, height=50, start=210),
        Walker([(173, 225), (173, 40)], speed=3, height=50, start=210, colour=(40, 90, 40)),
    ]
    assert tally(run_motion(scene(*_teachers(), *pair), [MID])) == Counter(
        {("mid", "in", "pedestrian"): 3, ("mid", "out", "pedestrian"): 2}
    )
    # Before anyone was seen alone, a blob this size is taken for one person.
    assert tally(
        run_motion(scene(*[Walker(w.path, 0, w.speed, w.height, colour=w.colour) for w in pair]), [MID])
    ) == Counter({("mid", "out", "pedestrian"): 1})


def test_two_people_one_behind_the_other_count_two() -> None:
    behind = [
        Walker([(160, 40), (160, 230)], speed=3, height=50, start=210),
        Walker([(160, 10), (160, 200)], speed=3, height=50, start=210, colour=(40, 90, 40)),
    ]
    assert tally(run_motion(scene(*_teachers(), *behind), [MID])) == Counter({("mid", "in", "pedestrian"): 5})


def test_a_cyclist_as_wide_as_two_people_is_not_split() -> None:
    rider = Walker([(160, 225), (160, 40)], speed=12, height=50, cyclist=True, start=210, colour=BRIGHT)
    assert tally(run_motion(scene(*_teachers(), rider), [MID])) == Counter(
        {("mid", "in", "pedestrian"): 3, ("mid", "out", "cyclist"): 1}
    )


def test_peeking_past_the_line_and_turning_back_counts_nothing() -> None:
    # The band is 0.25 + 0.035 box heights = 14 px for a 50 px person: the feet get 16 px past the line.
    peek = Walker([(160, 40), (160, 136), (160, 40)], speed=3, height=50)
    assert tally(run_motion(scene(peek), [MID])) == Counter()
    # Far past the line (and back) is two real crossings.
    assert tally(run_motion(scene(Walker([(160, 40), (160, 170), (160, 40)], speed=3, height=50)), [MID])) == Counter(
        {("mid", "in", "pedestrian"): 1, ("mid", "out", "pedestrian"): 1}
    )


def _detections_at(synthetic: SyntheticScene, frame: int) -> list[Detection]:
    """What the motion detector (fed every frame so far) finds in ``frame``."""
    detector = MotionDetector(work_width=160)
    found: list[Detection] = []
    for index in range(frame + 1):
        found = detector.detect(synthetic.render(index))
    return found


def test_close_to_the_camera_one_person_walking_behind_another_is_still_two_people() -> None:
    # People 110 px tall in a 240 px frame; the one behind is 50 px further up the image, so their blob is
    # 160 px tall, two thirds of the frame.
    teachers = [
        Walker([(x, 120), (x, 235)], speed=3, height=110, start=45 * k, colour=c)
        for k, (x, c) in enumerate(zip((60, 260, 60, 260), [(30, 30, 60), BRIGHT] * 2, strict=True))
    ]
    pair = [
        Walker([(160, 180), (160, 235)], speed=2, height=110, start=180),
        Walker([(160, 130), (160, 185)], speed=2, height=110, start=180, colour=(40, 90, 40)),
    ]
    synthetic = scene(*teachers, *pair)
    found = _detections_at(synthetic, 20 + 180 + 10)
    feet = sorted(d.y2 for d in found)
    assert len(found) == 2, found
    assert abs(feet[0] - 150) < 12 and abs(feet[1] - 200) < 12


def test_someone_cut_by_the_top_of_the_frame_gets_a_whole_persons_height_once_learnt() -> None:
    walkers = [*_teachers(), Walker([(160, 30), (160, 60)], speed=1, height=50, start=210)]
    found = _detections_at(scene(*walkers), 20 + 210 + 10)
    assert len(found) == 1 and found[0].y1 < 0, found
    assert abs(found[0].y2 - 40) < 6 and 40 < found[0].y2 - found[0].y1 < 60
    # Before anyone was seen whole, only what is in view is known.
    first = _detections_at(scene(Walker([(160, 30), (160, 60)], speed=1, height=50)), 20 + 10)
    assert len(first) == 1 and first[0].y1 >= 0 and first[0].y2 - first[0].y1 < 45
