"""The motion detector on people its background model sees in pieces, with exact counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from edge_agent.counting.detectors import Image
from edge_agent.counting.detectors.motion import MotionDetector
from edge_agent.counting.sources import SyntheticScene, Walker
from tests.counting.scenes import HEIGHT, MID, WIDTH, run_motion, tally


@dataclass
class BeltedScene(SyntheticScene):
    """Walkers whose middle (a coat the colour of the street) matches the background behind them."""

    belted: frozenset[int] = frozenset()  # which walkers
    belt: tuple[float, float] = (0.35, 0.7)  # the rows it covers, as shares of the height from the head down

    def render(self, frame: int) -> Image:
        image = super().render(frame)
        top, bottom = self.belt
        for i, (x1, y1, x2, y2) in self.boxes(frame):
            if i not in self.belted:
                continue
            h = y2 - y1
            a, b = max(0, round(y1 + top * h)), min(self.height, round(y1 + bottom * h))
            c, d = max(0, round(x1) - 1), min(self.width, round(x2) + 1)
            if b > a and d > c:
                image[a:b, c:d] = self._background[a:b, c:d]
        return image


def _teachers() -> list[Walker]:
    """People seen whole, one after another, walking down the image: the detector learns one person's shape."""
    return [Walker([(x, 30), (x, 230)], speed=3, height=50, start=20 + 70 * k) for k, x in enumerate((60, 260, 60))]


def _pieces() -> BeltedScene:
    walkers = [
        *_teachers(),
        Walker([(220, 20), (220, 225)], speed=3, height=50, start=250, colour=(40, 90, 40)),
        Walker([(100, 20), (100, 225)], speed=3, height=50, start=330),
    ]
    return BeltedScene(WIDTH, HEIGHT, walkers, belted=frozenset({3, 4}))


def test_people_seen_in_two_pieces_count_once_each() -> None:
    # Their middle matches the street: the background model sees a head and torso and, apart, the legs.
    # Each piece followed on its own crosses the line at its own time (the upper piece's "feet" are a third of
    # a person higher): without joining the pieces, the same scene counts people twice.
    synthetic = _pieces()
    assert tally(run_motion(synthetic, [MID], detector=MotionDetector(work_width=160))) == Counter(
        {("mid", "in", "pedestrian"): 5}
    )
    assert sum(tally(run_motion(synthetic, [MID], detector=MotionDetector(work_width=160, join=0))).values()) > 5


def test_the_pieces_are_one_box_with_the_whole_height() -> None:
    synthetic = _pieces()
    detector = MotionDetector(work_width=160)
    frame = 250 + 30  # the first belted walker's feet at y = 110, the other not in view yet
    found = [detector.detect(synthetic.render(index)) for index in range(frame + 1)][-1]
    assert len(found) == 1, found
    (x1, y1, x2, y2), (_, truth) = (found[0].x1, found[0].y1, found[0].x2, found[0].y2), synthetic.boxes(frame)[-1]
    assert abs(y2 - truth[3]) < 6 and abs((y2 - y1) - 50) < 10 and x1 < 220 < x2
