"""The deploy a team copies: the Procfile, the script that runs one of its lines, and the example systemd units."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if re.match(r"^[a-z]+:", line))


def test_the_procfile_names_the_four_processes_of_a_deployment():
    processes = procfile()

    assert list(processes) == ["release", "web", "worker", "beat"]
    assert "gunicorn portal.wsgi" in processes["web"]
    assert "--pool threads" in processes["worker"]
    assert "migrate" in processes["release"] and "collectstatic" in processes["release"]


def test_scripts_procfile_refuses_a_process_it_does_not_know():
    result = subprocess.run([ROOT / "scripts" / "procfile", "webb"], capture_output=True, text=True)

    assert result.returncode == 2
    assert "No process 'webb' in the Procfile: release web worker beat" in result.stderr


def test_every_unit_runs_a_procfile_process_and_every_process_has_a_unit():
    started = {re.search(r"^ExecStart=/opt/flowgate/scripts/procfile (\w+)$", unit.read_text(), re.M).group(1)
               for unit in UNITS}

    assert started == set(procfile())


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    """Pointed at this checkout instead of /opt/flowgate, and run as root, so the paths they name exist here."""
    for unit in UNITS:
        text = (unit.read_text().replace("/opt/flowgate", str(ROOT))
                .replace("/etc/flowgate/flowgate.env", str(DEPLOY / "flowgate.env.example"))
                .replace("User=flowgate", "User=root").replace("Group=flowgate", "Group=root"))
        (tmp_path / unit.name.replace("@.", "@1.")).write_text(text)

    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(tmp_path.iterdir())],
                            capture_output=True, text=True, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "flowgate" not in result.stderr, result.stderr
