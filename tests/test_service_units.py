"""`dancodes service`: the systemd unit passes systemd's own check, the launchd plist parses, and
`install --dry-run` prints them and changes nothing."""

from __future__ import annotations

import argparse
import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.init import service
from supervisor.init.units import STOP_MARGIN, Layout, launchd_plist, systemd_unit

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).with_name("dancodes")


def layout(tmp_path: Path, *, user: bool = False) -> Layout:
    return Layout(
        exe=EXE,
        config=tmp_path / "dancodes.toml",
        env_file=tmp_path / "dancodes.env",
        data_dir=tmp_path / "data",
        stop_timeout=5.0,
        user_unit=user,
    )


def verify(unit: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "dancodes.service"
    path.write_text(unit)
    analyze = shutil.which("systemd-analyze")
    assert analyze, (
        "systemd-analyze is missing: scripts/install.sh --with-chromium installs it (Debian's systemd)"
    )
    return subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("user", [False, True])
def test_the_systemd_unit_passes_systemds_check(tmp_path: Path, user: bool) -> None:
    unit = systemd_unit(layout(tmp_path, user=user))
    checked = verify(unit, tmp_path)
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stderr
    assert f"EnvironmentFile={tmp_path / 'dancodes.env'}" in unit
    assert f"TimeoutStopSec={5.0 + STOP_MARGIN:g}" in unit  # above the daemon's own stop timeout
    assert ("WantedBy=default.target" in unit) is user
    # and the check can fail: what systemd would ignore, it says
    broken = verify(unit.replace("Type=exec", "Type=eventually"), tmp_path)
    assert "Failed to parse service type" in broken.stderr


def test_the_launchd_plist_parses(tmp_path: Path) -> None:
    plist = plistlib.loads(launchd_plist(layout(tmp_path)))
    config, env_file = str(tmp_path / "dancodes.toml"), str(tmp_path / "dancodes.env")
    assert plist["ProgramArguments"] == [str(EXE), "run", "--config", config, "--env-file", env_file]
    assert plist["ExitTimeOut"] > 5
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == str(tmp_path / "data" / "dancodes.log")


def test_install_dry_run_prints_and_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(ROOT)}
    args = ["service", "install", "--user", "--dry-run", "--config", str(tmp_path / "c.toml")]
    shown = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"# {home}/.config/systemd/user/dancodes.service\n[Unit]\n")
    assert "# then: systemctl --user enable --now dancodes.service" in shown.stdout
    assert list(home.iterdir()) == []


def test_windows_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    args = argparse.Namespace(action="install", user=False, dry_run=True)
    assert service.run(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "WSL2" in err
