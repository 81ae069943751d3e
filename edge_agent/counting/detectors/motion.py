"""Motion detector: background subtraction on a small copy of the frame, then blob analysis.

Needs no model file and costs about a millisecond per frame, so it is the low-power default. It also keeps
the learned background, which calibration shows instead of a live frame (people fade out of it).
"""

from __future__ import annotations

import cv2

from edge_agent.counting.detectors import Image
from edge_agent.counting.tracking import Detection


class BackgroundModel:
    """A Gaussian-mixture background on a downscaled colour image; ``foreground`` gives the moving pixels.

    Colour, not grey: in grey every darker pixel looks like a shadow, and without shadow detection the
    shadows glue neighbours into one blob. With colour MOG2 marks shadows (127) and they are dropped.
    """

    def __init__(self, work_width: int = 192, history: int = 500, var_threshold: float = 16.0) -> None:
        self.work_width = work_width
        self._subtractor = cv2.createBackgroundSubtractorMOG2(
            history=history, varThreshold=var_threshold, detectShadows=True
        )
        # Someone standing still fades into the background once their mixture component outweighs
        # 1 - ratio; 0.7 keeps them for about a third of the history instead of a tenth.
        self._subtractor.setBackgroundRatio(0.7)
        self.scale = 1.0  # full-frame pixels per work pixel
        self.frame_size: tuple[int, int] | None = None

    def small(self, image: Image) -> Image:
        h, w = image.shape[:2]
        if self.frame_size != (w, h):
            self.frame_size = (w, h)
            self.scale = max(1.0, w / self.work_width)
        size = (max(1, round(w / self.scale)), max(1, round(h / self.scale)))
        small: Image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return small

    def foreground(self, image: Image) -> Image:
        """Binary mask (255 = moving) at work size; shadows, which MOG2 marks 127, count as background."""
        mask = self._subtractor.apply(self.small(image))
        _, binary = cv2.threshold(mask, 200, 255, cv2.THRESH_BINARY)
        result: Image = binary
        return result

    def background(self) -> Image | None:
        """The learned background, upscaled to the frame size (for calibration; never a live frame)."""
        if self.frame_size is None:
            return None
        bg = self._subtractor.getBackgroundImage()
        if bg is None:
            return None
        result: Image = cv2.resize(bg, self.frame_size, interpolation=cv2.INTER_LINEAR)
        return result


class MotionDetector:
    """Blobs of moving pixels as person boxes.

    Size limits are fractions of the frame height, not pixels, so they carry over between cameras; blobs
    that are much wider than a standing person are split, since people walking side by side merge.
    """

    name = "motion"
    classifies = False
    # Half the foot-position noise measured against annotated boxes (sd 0.07 box heights on PETS 2009).
    noise_allowance = 0.035

    def __init__(
        self,
        work_width: int = 256,
        min_height: float = 0.04,
        max_height: float = 0.6,
        person_aspect: float = 0.45,
    ) -> None:
        self.model = BackgroundModel(work_width=work_width)
        self.min_height = min_height
        self.max_height = max_height
        self.person_aspect = person_aspect
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 7))

    def detect(self, image: Image, roi: tuple[int, int, int, int] | None = None) -> list[Detection]:
        mask = self.model.foreground(image)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        frame_h = mask.shape[0]
        scale = self.model.scale
        detections: list[Detection] = []
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if h < self.min_height * frame_h or h > self.max_height * frame_h or area < 0.3 * w * h * 0.5:
                continue
            if roi is not None and not _overlaps((x * scale, y * scale, (x + w) * scale, (y + h) * scale), roi):
                continue
            parts = max(1, round(w / (self.person_aspect * h * 1.5)))
            step = w / parts
            for k in range(parts):
                detections.append(
                    Detection(
                        (x + k * step) * scale,
                        y * scale,
                        (x + (k + 1) * step) * scale,
                        (y + h) * scale,
                        score=min(1.0, area / (w * h)),
                    )
                )
        return detections

    def background(self) -> Image | None:
        return self.model.background()


def _overlaps(box: tuple[float, float, float, float], roi: tuple[int, int, int, int]) -> bool:
    return box[0] < roi[2] and box[2] > roi[0] and box[1] < roi[3] and box[3] > roi[1]
