"""Only the calibration command may encode or write an image; nothing else in the shipped code can."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ("edge_agent", "hub_server", "hub_protocol", "bench", "scripts")
IMAGE_WRITERS = re.compile(r"\b(imwrite|imencode|VideoWriter)\b")


def test_no_image_writer_outside_calibration() -> None:
    offenders = []
    scanned = 0
    for top in SHIPPED:
        for path in (REPO / top).rglob("*"):
            if not path.is_file() or path.suffix not in {".py", ".sh", ".js", ".html"} or "calibrat" in str(path):
                continue
            scanned += 1
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if IMAGE_WRITERS.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert scanned > 20
    assert offenders == []


def test_calibration_is_where_the_png_is_written() -> None:
    source = (REPO / "edge_agent" / "commands" / "calibrate.py").read_text()
    # It writes what the background learner returns (a stable median of many frames), once.
    assert "learn_clean_background(" in source and source.count("imwrite") == 1
