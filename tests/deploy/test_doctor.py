"""The doctor finds and explains each failure a technician meets in the field, against a real broker."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import load_agent_config
from edge_agent.deploy.checks import (
    CheckResult,
    DoctorEnv,
    Status,
    check_gpio,
    check_outbox,
    locate_secret,
    outbox_path,
    run_checks,
)
from edge_agent.deploy.probes import CameraReading, GpiozeroPins, OpenCvCamera
from edge_agent.transport.outbox import Outbox
from hub_protocol.topics import Channel
from hub_server.fleet.broker import free_port
from tests.conftest import BrokerSetup
from tests.deploy.conftest import FakeCamera, FakeClock, FakePins, TlsFiles, good_env, write_agent_config
from tests.transport.helpers import alarm_fields


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_all_good_against_a_real_broker(tmp_path: Path, make_broker: Callable[..., BrokerSetup]) -> None:
    setup = make_broker(devices=("dev-a",))
    config = write_agent_config(
        tmp_path / "etc", host=setup.host, port=setup.port, password=setup.device_passwords["dev-a"]
    )
    env = good_env()
    results = by_name(run_checks(config, env, camera_override="/dev/video0"))
    assert results["config"].status is Status.OK
    assert results["credential"].status is Status.OK
    assert results["broker"].status is Status.OK, results["broker"]
    assert "logged in" in results["broker"].summary
    assert results["tls"].status is Status.WARN  # plain MQTT: works, but the doctor says it is unencrypted
    assert results["clock"].status is Status.OK
    assert results["camera"].status is Status.OK and results["camera"].details["fps"] == 15.0
    assert env.camera is not None and env.camera.asked == ["/dev/video0"]  # type: ignore[attr-defined]
    assert results["gpio"].status is Status.OK
    assert results["disk"].status is Status.OK
    assert results["outbox"].status is Status.OK
    assert not [r for r in results.values() if r.status is Status.FAIL]


def test_all_good_over_tls(
    tmp_path: Path, make_tls: Callable[..., TlsFiles], make_broker: Callable[..., BrokerSetup]
) -> None:
    tls = make_tls()
    setup = make_broker(devices=("dev-a",))
    _enable_tls(setup, tls)
    config = write_agent_config(
        tmp_path / "etc",
        host="127.0.0.1",
        port=setup.port,
        password=setup.device_passwords["dev-a"],
        tls=True,
        ca_file=tls.ca,
    )
    results = by_name(run_checks(config, good_env()))
    assert results["broker"].status is Status.OK, results["broker"]
    assert results["tls"].status is Status.OK, results["tls"]
    assert 360 <= results["tls"].details["days_left"] <= 366
    assert "commonName=localhost" in results["tls"].summary


def test_tls_near_expiry_and_wrong_ca(
    tmp_path: Path, make_tls: Callable[..., TlsFiles], make_broker: Callable[..., BrokerSetup]
) -> None:
    tls = make_tls("short", days=10)
    other = make_tls("other")
    setup = make_broker(devices=("dev-a",))
    _enable_tls(setup, tls)
    password = setup.device_passwords["dev-a"]
    soon = write_agent_config(
        tmp_path / "a", host="127.0.0.1", port=setup.port, password=password, tls=True, ca_file=tls.ca
    )
    result = by_name(run_checks(soon, good_env()))["tls"]
    assert result.status is Status.WARN and "expires in" in result.summary and "renew" in result.fix

    wrong = write_agent_config(
        tmp_path / "b", host="127.0.0.1", port=setup.port, password=password, tls=True, ca_file=other.ca
    )
    results = by_name(run_checks(wrong, good_env()))
    assert results["tls"].status is Status.FAIL
    # Mosquitto sends its CA along; either way the chain does not lead to the configured CA.
    assert results["tls"].details["error"] in (
        "self-signed certificate in certificate chain",
        "unable to get local issuer certificate",
    )
    assert "not accepted" in results["tls"].summary
    assert "ca_file" in results["tls"].fix
    assert results["broker"].status is Status.FAIL and results["broker"].details["outcome"] == "tls-failed"


def _enable_tls(setup: BrokerSetup, tls: TlsFiles) -> None:
    broker = setup.broker
    broker.stop()
    # Options after the only `listener` line apply to it.
    with broker.config_path.open("a") as conf:
        conf.write(f"cafile {tls.ca}\ncertfile {tls.cert}\nkeyfile {tls.key}\n")
    broker.start()


def test_wrong_password_is_explained(tmp_path: Path, make_broker: Callable[..., BrokerSetup]) -> None:
    setup = make_broker(devices=("dev-a",))
    config = write_agent_config(tmp_path, host=setup.host, port=setup.port, password="not-the-password")
    result = by_name(run_checks(config, good_env()))["broker"]
    assert result.status is Status.FAIL
    assert result.details["outcome"] == "bad-credentials"
    assert "refused user dev-a with this password" in result.summary
    assert "/var/lib/hub-server/provisioned/dev-a/mqtt-password" in result.fix
    assert "hub-server device add NEW-ID --site test-street" in result.fix


def test_unknown_device_is_refused_like_a_wrong_password(
    tmp_path: Path, make_broker: Callable[..., BrokerSetup]
) -> None:
    setup = make_broker(devices=("dev-a",))
    config = write_agent_config(tmp_path, host=setup.host, port=setup.port, device="dev-z", password="x")
    result = by_name(run_checks(config, good_env()))["broker"]
    assert result.details["outcome"] == "bad-credentials"
    assert "unknown or revoked" in result.summary


def test_broker_down_is_explained(tmp_path: Path) -> None:
    port = free_port()  # nobody listens here
    config = write_agent_config(tmp_path, host="127.0.0.1", port=port)
    results = by_name(run_checks(config, good_env()))
    broker = results["broker"]
    assert broker.status is Status.FAIL and broker.details["outcome"] == "refused"
    assert f"nothing accepts connections at 127.0.0.1:{port}" in broker.summary
    assert "systemctl status mosquitto" in broker.fix
    assert results["tls"].status is Status.SKIP  # no second failure for the same cause


def test_unknown_host_is_explained(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path, host="no-such-host.invalid", port=8883)
    broker = by_name(run_checks(config, good_env()))["broker"]
    assert broker.details["outcome"] == "name-unknown"
    assert "cannot be resolved" in broker.summary


def test_unreadable_camera_is_explained(tmp_path: Path) -> None:
    not_a_video = tmp_path / "notes.avi"
    not_a_video.write_text("this is text, not a video\n")
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    env = good_env(camera=OpenCvCamera())
    result = by_name(run_checks(config, env, camera_override=str(not_a_video)))["camera"]
    assert result.status is Status.FAIL
    assert f"cannot read frames from the camera source '{not_a_video}'" in result.summary
    assert "group video" in result.fix


def test_readable_video_gives_a_frame_rate(tmp_path: Path) -> None:
    reading = OpenCvCamera().measure(str(_tiny_video(tmp_path)), frames=5, timeout_s=10)
    assert reading.opened and reading.frames == 5 and reading.fps > 0
    assert (reading.width, reading.height) == (64, 48)


def _tiny_video(folder: Path) -> Path:
    import cv2
    import numpy as np

    path = folder / "tiny.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, dtype=np.uint8))
    writer.release()
    return path


def test_slow_camera_is_a_warning(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    env = good_env(camera=FakeCamera(CameraReading(True, 4, 2.0, width=640, height=480), []))
    result = by_name(run_checks(config, env, camera_override="0"))["camera"]
    assert result.status is Status.WARN and "2.0 frames/s" in result.summary


def test_world_readable_credential_is_refused(tmp_path: Path, make_broker: Callable[..., BrokerSetup]) -> None:
    setup = make_broker(devices=("dev-a",))
    config = write_agent_config(tmp_path, host=setup.host, port=setup.port, password=setup.device_passwords["dev-a"])
    secret = tmp_path / "mqtt-password"
    secret.chmod(0o644)
    results = by_name(run_checks(config, good_env()))
    assert results["credential"].status is Status.FAIL
    assert "readable by group or others (mode 644)" in results["credential"].summary
    assert results["credential"].fix == f"sudo chmod 600 {secret}"
    secret.chmod(0o640)
    assert by_name(run_checks(config, good_env()))["credential"].status is Status.FAIL


def test_missing_credential_is_explained(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    (tmp_path / "mqtt-password").unlink()
    results = by_name(run_checks(config, good_env()))
    assert results["credential"].status is Status.FAIL and "No such file" in results["credential"].summary
    assert results["broker"].status is Status.SKIP


def test_credential_names_are_found_where_systemd_and_the_installer_put_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "mqtt-password").write_text("x")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert locate_secret("mqtt-password", [store]) == store / "mqtt-password"
    systemd = tmp_path / "creds"
    systemd.mkdir()
    (systemd / "mqtt-password").write_text("y")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(systemd))
    assert locate_secret("mqtt-password", [store]) == systemd / "mqtt-password"
    assert locate_secret("/abs/path", [store]) == Path("/abs/path")


def test_unsynchronised_clock_is_explained(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    result = by_name(run_checks(config, good_env(clock=FakeClock(False))))["clock"]
    assert result.status is Status.FAIL
    assert "not synchronised" in result.summary and "commands are refused as expired" in result.summary
    assert "timedatectl set-ntp true" in result.fix
    unknown = by_name(run_checks(config, good_env(clock=FakeClock(None))))["clock"]
    assert unknown.status is Status.WARN


def test_invalid_config_skips_what_depends_on_it(tmp_path: Path) -> None:
    path = write_agent_config(tmp_path, host="127.0.0.1", port=70000)
    results = by_name(run_checks(path, good_env(clock=FakeClock(True))))
    assert results["config"].status is Status.FAIL
    assert "mqtt.port: Input should be less than or equal to 65535" in results["config"].summary
    assert results["broker"].status is Status.SKIP and results["outbox"].status is Status.SKIP
    assert results["clock"].status is Status.OK  # still worth knowing


def test_a_counting_line_outside_the_cameras_frame_is_a_warning(tmp_path: Path) -> None:
    """Drawn for another resolution: the agent still runs (its lockers must), the doctor names the line."""
    counting = '[counting]\nsource = "synthetic"\nlines = [{ name = "kerb", points = [0, 120, 800, 120] }]\n'
    path = write_agent_config(tmp_path, host="127.0.0.1", port=1883, extra=counting)
    result = by_name(run_checks(path, good_env(clock=FakeClock(True))))["config"]
    assert result.status is Status.WARN
    assert "line kerb: point (800, 120) lies outside the 640x480 frame" in result.summary
    assert "setup page" in result.fix


def test_gpio_without_lockers_is_a_warning_and_with_lockers_a_failure(tmp_path: Path) -> None:
    config = load_agent_config(write_agent_config(tmp_path, host="127.0.0.1", port=1883))
    no_pins = good_env(pins=FakePins(None))
    assert check_gpio(config, no_pins).status is Status.WARN
    assert "no GPIO" in check_gpio(config, no_pins).summary
    with_lockers = config.model_copy(update={"lockers": object()})
    failed = check_gpio(with_lockers, no_pins)
    assert failed.status is Status.FAIL and "group gpio" in failed.fix
    mock = check_gpio(with_lockers, good_env(pins=FakePins("MockFactory")))
    assert mock.status is Status.FAIL and "mock pins only" in mock.summary


def test_real_pin_factory_probe_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpiozero import Device

    previous = Device.pin_factory
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    Device.pin_factory = None
    try:
        state = GpiozeroPins().load()
    finally:
        if Device.pin_factory is not None and Device.pin_factory is not previous:
            Device.pin_factory.close()
        Device.pin_factory = previous
    assert state.name == "MockFactory" and state.is_mock


def test_low_disk_fails(tmp_path: Path) -> None:
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    result = by_name(run_checks(config, good_env(disk_free=lambda _p: 50 * 1024**2)))["disk"]
    assert result.status is Status.FAIL and "almost no space" in result.summary


def test_outbox_depth_and_damage(tmp_path: Path) -> None:
    config = load_agent_config(write_agent_config(tmp_path, host="127.0.0.1", port=1883))
    outbox = Outbox(outbox_path(config), config.device.id, config.outbox)
    for n in range(7):
        outbox.emit(Channel.ALARM, alarm_fields(n))
    outbox.close()
    path = outbox_path(config)
    ok = check_outbox(config)
    assert ok.status is Status.OK and ok.details["depth"] == 7
    assert "7 events waiting" in ok.summary
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(3996)  # wreck the first page after the header
    path.write_bytes(bytes(data))
    damaged = check_outbox(config)
    assert damaged.status is Status.FAIL and "move the file aside" in damaged.fix


def test_cli_json_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    (tmp_path / "mqtt-password").chmod(0o644)
    status = main(["doctor", "--config", str(config), "--json", "--timeout", "2", "--camera", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and report["ok"] is False
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["credential"]["status"] == "fail" and checks["credential"]["mode"] == "644"
    assert checks["broker"]["outcome"] == "refused"
    assert checks["camera"]["status"] == "fail"
    assert report["failures"] >= 3


def test_cli_text_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    status = main(["doctor", "--config", str(config), "--timeout", "2"])
    out = capsys.readouterr().out
    assert status == 1
    assert "FAIL  broker" in out and "fix: on the hub: systemctl status mosquitto" in out
    assert out.strip().splitlines()[-1].startswith("Result: ")


def test_all_good_exit_status_is_zero(make_broker: Callable[..., BrokerSetup], tmp_path: Path) -> None:
    from edge_agent.commands.doctor import exit_status

    setup = make_broker(devices=("dev-a",))
    config = write_agent_config(tmp_path, host=setup.host, port=setup.port, password=setup.device_passwords["dev-a"])
    results = run_checks(config, good_env())
    assert exit_status(results) == 0
    env: DoctorEnv = good_env(clock=FakeClock(False))
    assert exit_status(run_checks(config, env)) == 1


def test_doctor_checks_the_config_the_hub_pushed(tmp_path: Path) -> None:
    from edge_agent.deploy.config_update import ConfigStore

    installed = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    config = load_agent_config(installed)
    store = ConfigStore(installed, config.device.state_dir)
    store.stage(installed.read_text().replace("port = ", "keepalive_s = 40\nport = "), config, "push-1")
    result = by_name(run_checks(installed, good_env()))["config"]
    assert result.status is Status.OK
    assert result.summary.startswith(f"the hub pushed {store.pushed} (installed file: {installed})")


COUNTING = """
[counting]
source = "{source}"
lines = [{{ name = "mid", points = [0, 120, 320, 120] }}]
"""


def test_camera_through_the_agents_own_sources(tmp_path: Path) -> None:
    synthetic = write_agent_config(
        tmp_path / "a", host="127.0.0.1", port=1883, extra=COUNTING.format(source="synthetic")
    )
    env = DoctorEnv(
        clock=FakeClock(True), pins=FakePins(), credential_dirs=(), camera_frames=5, camera_timeout_s=10, min_fps=1
    )
    good = by_name(run_checks(synthetic, env))["camera"]
    assert good.status is Status.OK, good
    assert good.details["source"] == "synthetic" and good.details["width"] > 0

    not_a_video = tmp_path / "notes.avi"
    not_a_video.write_text("text, not a video\n")
    broken = write_agent_config(tmp_path / "b", host="127.0.0.1", port=1883, extra=COUNTING.format(source=not_a_video))
    failed = by_name(run_checks(broken, env))["camera"]
    assert failed.status is Status.FAIL
    assert f"cannot read frames from the camera source '{not_a_video}'" in failed.summary


@pytest.mark.parametrize("timeout", ["inf", "nan", "1e308", "-5"])
def test_cli_refuses_a_network_timeout_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    """An infinite timeout overflowed the socket's time_t: a traceback instead of a report."""
    config = write_agent_config(tmp_path, host="127.0.0.1", port=free_port())
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--config", str(config), "--timeout", timeout])
    assert exited.value.code == 2
    assert "argument --timeout: expected 0.5 to 600 seconds" in capsys.readouterr().err
