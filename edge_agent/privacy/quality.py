"""The quality figures of a window as they are published: about the camera, not about who was in view.

Measured with ``python bench/quality_channel.py`` (docs/privacy.md): with the ``onnx`` detector gated on
motion, a device that runs near its capacity processes fewer frames and drops more while people are in view
(on PETS 2009 at 15 fps and a cost eight times this PC core's: 11.2 processed frames per second and 3.8
dropped per second with people in view, 15.0 and 0 on the empty street). The raw figures would tell the hub
that someone walked by in a window whose count differential privacy hides. So:

- ``mean_fps`` is the rate at which the camera *delivered* frames (processed + dropped) while observing,
  rounded to whole frames per second: it describes the camera, whatever is in view;
- ``dropped_frames`` is rounded down to whole minutes of camera frames: a passer-by in view for seconds
  changes nothing; a counter that falls behind for minutes still shows;
- ``observed_fraction`` is the seconds observed in steps of ``OBSERVED_STEP_S``. The counter's observing
  clock advances when it finishes a frame, so at the tick that closes a window it lags by the frame in
  work: by the detector's time when someone is in view. To four decimals (0.09 s of 15 minutes) a passer-by
  in view as a window ended changed the published share of a fully observed 15-minute window (2-5% of them
  at this PC core's speed, 33-97% on a device 8-16 times slower, tests/privacy/test_observed_channel.py);
  in steps of 10 s only a partly observed window near a step's edge shows it (under 2%).
"""

from __future__ import annotations

import math

from hub_protocol.flows import WindowQuality

DROPPED_STEP_S = 60.0
"""Dropped frames are published in steps of this many seconds of camera frames."""

OBSERVED_STEP_S = 10.0
"""The observed share of a window is published in steps of this many seconds (of the window)."""


def camera_fps(frames: int, observing_s: float) -> float:
    """Frames the camera delivered (processed + dropped) per second observed, in whole frames per second: the
    figure for health reports too, which would otherwise carry the counter's processed rate every minute."""
    return float(round(min(frames / observing_s, 1000.0))) if observing_s > 0 else 0.0


def published_quality(
    processed: int, dropped: int, observing_s: float, window_s: float, clock_stepped: bool = False
) -> WindowQuality:
    """The window's quality figures from its raw frame statistics (``observing_s``: seconds the camera
    delivered frames; ``window_s``: the window's length; ``clock_stepped``: the device's clock stepped)."""
    observing = min(round(max(observing_s, 0.0) / OBSERVED_STEP_S) * OBSERVED_STEP_S, window_s)
    delivered = processed + dropped
    # One minute of camera frames at the rate the camera delivered them.
    step = max(1, round(delivered / observing_s * DROPPED_STEP_S)) if observing_s > 0 else 1
    return WindowQuality(
        observed_fraction=round(observing / window_s, 4),
        mean_fps=camera_fps(delivered, observing_s),
        dropped_frames=math.floor(dropped / step) * step,
        clock_stepped=clock_stepped,
    )


LOAD_STEP = 0.5
"""The health message's load figure is published in steps of this (of the 15-minute load average)."""


def published_load(load15: float) -> float:
    """The load figure of a health report: the 15-minute load average, to the nearest ``LOAD_STEP``.

    The one-minute average, to two decimals every minute, followed who was in view: the detector runs only
    where something moves (0.13 ms of CPU a frame on an empty street, 6.4 ms with people in view, on this
    PC core; several times that on a device). A passer-by's few seconds of work move the 15-minute average
    by about a hundredth, which this step hides unless the average sits just at a step's edge
    (tests/privacy/test_health_channel.py measures how often); a counter busy for many minutes still shows."""
    return round(max(load15, 0.0) / LOAD_STEP) * LOAD_STEP
