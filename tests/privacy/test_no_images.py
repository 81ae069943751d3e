"""No image ever reaches a disk: the counter and the whole running agent, traced, write no image file anywhere;
calibration writes exactly the one PNG asked for, and it shows the background, not the person who walked
through. Where no process can be traced here, these tests skip with the reason instead of checking less."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from hub_protocol.tomlwrite import dumps
from hub_server.demo.world import demo_agent_sections
from tests.conftest import agent_config, wait_for
from tests.privacy.scenes import HEIGHT, PERSON_H, PERSON_Y, WIDTH, background, write_street_video

REPO = Path(__file__).resolve().parents[2]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".npy"}
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"\x93NUMPY", b"P5\n", b"P6\n")
_WRITE_CALL = re.compile(r"^\d+\s+(?:open|openat|creat|rename|renameat2?|link|linkat)\((.*)\)\s+=\s+\d+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def is_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        head = path.read_bytes()[:16]
    except OSError:
        return False
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def traced_files(trace: Path, cwd: Path) -> tuple[set[Path], set[Path]]:
    """(all paths the traced process tree touched, those it opened for writing, created, renamed or linked to)."""
    touched, written = set(), set()
    for line in trace.read_text(errors="replace").splitlines():
        match = _WRITE_CALL.match(line)
        names = _QUOTED.findall(match.group(1)) if match else []
        if not match or not names:
            continue
        target = names[-1]  # rename/link: the new name; open/creat: the only one
        path = Path(target) if target.startswith("/") else cwd / target
        touched.add(path)
        if "open" not in line.split("(")[0] or re.search(r"O_WRONLY|O_RDWR|O_CREAT", match.group(1)):
            written.add(path)
    return touched, written


def images_under(root: Path, since: float) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since and is_image(p)]


def run_traced(args: list[str], sandbox: Path, trace: Path | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(sandbox), "TMPDIR": str(sandbox), "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-m", "edge_agent.cli", *args]
    if trace is not None:
        command = ["strace", "-f", "-qq", "-e", "trace=open,openat,creat,rename,renameat,renameat2,link,linkat",
                   "-o", str(trace), *command]  # fmt: skip
    return subprocess.run(command, cwd=sandbox, env=env, capture_output=True, text=True, timeout=240, check=False)


def strace_works(tmp_path: Path) -> bool:
    if shutil.which("strace") is None:
        return False
    probe = subprocess.run(["strace", "-qq", "-o", str(tmp_path / "probe"), "true"], capture_output=True, check=False)
    return probe.returncode == 0


def trace_or_skip(tmp_path: Path) -> Path:
    """Where the trace goes; a skip with the reason when no process can be traced here. Without a trace only
    a few folders could be scanned, which proves nothing about "anywhere"."""
    if not strace_works(tmp_path):
        pytest.skip("strace is missing or ptrace is not permitted here: 'no image anywhere' cannot be checked")
    return tmp_path / "trace.log"


@pytest.fixture
def street(tmp_path: Path) -> Path:
    inputs = tmp_path / "input"
    inputs.mkdir()
    return write_street_video(inputs / "street.avi", frames=400)  # calibration confirms over 1.5 spans


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    path = tmp_path / "sandbox"
    path.mkdir()
    return path


def check_no_image_written(
    tmp_path: Path, sandbox: Path, street: Path, started: float, allowed: set[Path]
) -> set[Path]:
    """Scan the places the process was pointed at, then check every file the trace shows it wrote, wherever it
    is. Returns the files written."""
    found = [p for root in (sandbox, street.parent) for p in images_under(root, started)]
    found += [p for p in images_under(REPO / "edge_agent", started) if p not in allowed]
    assert {p.resolve() for p in found} <= allowed, f"image files appeared: {found}"
    touched, written = traced_files(tmp_path / "trace.log", sandbox)
    assert street in touched, "the trace does not show the video being opened: the trace parser is broken"
    images = {p.resolve() for p in written if is_image(p)} - allowed
    assert not images, f"the process wrote image files: {sorted(images)}"
    return {p.resolve() for p in written}


@pytest.mark.slow
def test_counting_writes_no_image_anywhere(tmp_path: Path, sandbox: Path, street: Path) -> None:
    trace = trace_or_skip(tmp_path)
    started = time.time() - 1
    done = run_traced(
        ["count", str(street), "--line", f"mid={WIDTH // 2},0,{WIDTH // 2},{HEIGHT}", "--json"], sandbox, trace
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["frames"] == 400
    check_no_image_written(tmp_path, sandbox, street, started, allowed=set())
    assert list(sandbox.rglob("*")) == [] or not any(is_image(p) for p in sandbox.rglob("*") if p.is_file())


@pytest.mark.slow
def test_calibration_writes_only_the_background_png(tmp_path: Path, sandbox: Path, street: Path) -> None:
    trace = trace_or_skip(tmp_path)
    output = sandbox / "calibration.png"
    started = time.time() - 1
    line = f"mid={WIDTH // 2},20,{WIDTH // 2},{HEIGHT - 20}"
    done = run_traced(
        ["calibrate", str(output), "--source", str(street), "--line", line, "--frames", "150"], sandbox, trace
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"learned from (\d+) frames", done.stdout), done.stdout
    assert int(re.search(r"learned from (\d+) frames", done.stdout)[1]) >= 150  # type: ignore[index]
    written = check_no_image_written(tmp_path, sandbox, street, started, allowed={output.resolve()})
    assert output.resolve() in written

    picture = cv2.imread(str(output))
    assert picture is not None and picture.shape == (HEIGHT, WIDTH, 3)
    expected = background().astype(np.int16)
    # Where the person walked (away from the drawn line), the picture is the empty street.
    band = (slice(PERSON_Y, PERSON_Y + PERSON_H), slice(10, WIDTH // 2 - 40))
    difference = np.abs(picture[band].astype(np.int16) - expected[band]).mean()
    assert difference < 12, f"the person did not fade out (mean difference {difference:.1f})"
    person_like = (picture[band].max(axis=2) < 60).mean()
    assert person_like < 0.01
    # The line is drawn where it was asked for.
    column = picture[40 : HEIGHT - 40, WIDTH // 2]
    assert (np.abs(column.astype(np.int16) - (0, 215, 255)).sum(axis=1) < 90).mean() > 0.8


def test_calibration_refuses_too_few_frames_and_writes_nothing(tmp_path: Path, sandbox: Path) -> None:
    short = write_street_video(tmp_path / "short.avi", frames=20)
    output = sandbox / "calibration.png"
    done = run_traced(["calibrate", str(output), "--source", str(short), "--line", "a=0,0,100,100"], sandbox, None)
    assert done.returncode == 1
    assert "only 20 frames" in done.stderr and "Traceback" not in done.stderr
    assert not output.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["out.jpg", "--source", "x.avi", "--line", "a=0,0,1,1"], "must be a .png"),
        (["out.png", "--line", "a=0,0,1,1"], "--source"),
        (["out.png", "--source", "missing.avi", "--line", "a=0,0,1,1"], "does not exist"),
        (["out.png", "--source", "x.avi"], "no counting line"),
    ],
)
def test_calibration_bad_input_is_one_clear_line(sandbox: Path, args: list[str], message: str) -> None:
    done = run_traced(["calibrate", *args], sandbox, None)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert list(sandbox.iterdir()) == []


@pytest.mark.slow
def test_calibration_takes_source_and_lines_from_the_agent_config(tmp_path: Path, sandbox: Path, street: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
[device]
id = "dev-a"
site = "street-a"
state_dir = "{tmp_path / "state"}"

[mqtt]
password_file = "mqtt-password"

[counting]
source = "{street}"
lines = [{{ name = "kerb", points = [10, 205, 310, 205] }}]
"""
    )
    output = sandbox / "kerb.png"
    done = run_traced(["calibrate", str(output), "--config", str(config), "--frames", "60"], sandbox, None)
    assert done.returncode == 0, done.stderr
    picture = cv2.imread(str(output))
    assert picture is not None
    row = picture[205, 40:280].astype(np.int16)
    assert (np.abs(row - (0, 215, 255)).sum(axis=1) < 90).mean() > 0.8
    assert sorted(p.name for p in sandbox.iterdir()) == ["kerb.png"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_running_agent_writes_no_image_anywhere(tmp_path: Path, sandbox: Path, street: Path, broker: Any) -> None:
    """The whole agent as a device runs it (counting the street video, lockers on simulated pins, outbox,
    broker link), traced for several seconds: every file it wrote anywhere is checked."""
    trace = trace_or_skip(tmp_path)
    sections: dict[str, Any] = demo_agent_sections("dev-a", sandbox / "state", with_lockers=True, video=street)
    device = sections.pop("device")
    data = agent_config(broker, "dev-a", tmp_path, **sections).model_dump(mode="json")
    data["device"].update(device)
    config = tmp_path / "agent.toml"
    config.write_text(dumps(data))
    env = {**os.environ, "HOME": str(sandbox), "TMPDIR": str(sandbox), "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPATH"] = str(REPO)
    command = ["strace", "-f", "-qq", "-e", "trace=open,openat,creat,rename,renameat,renameat2,link,linkat",
               "-o", str(trace), sys.executable, "-m", "edge_agent.cli", "run", "--simulate", "--config", str(config)]  # fmt: skip
    started = time.time() - 1
    # A session of its own: the stop signal reaches the agent itself, not only strace (which would detach).
    agent = subprocess.Popen(command, cwd=sandbox, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        # Running for real: the outbox exists and the video has been opened (the counter is reading it).
        wait_for(lambda: (sandbox / "state").is_dir() and street in traced_files(trace, sandbox)[0], 120, "the agent")
        time.sleep(8)
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        try:
            output, _ = agent.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(agent.pid, signal.SIGKILL)
            output, _ = agent.communicate()
    written = check_no_image_written(tmp_path, sandbox, street, started, allowed=set())
    assert any(p.name.startswith("outbox") for p in written), f"the trace shows no outbox write: {sorted(written)}"
    assert b"Traceback" not in output, output.decode(errors="replace")[-2000:]
