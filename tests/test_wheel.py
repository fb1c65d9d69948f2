"""It installs as a package: the wheel carries the bundled personas, plugins and demo
inputs, and the installed `vtuber` runs from any folder (no source checkout needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", ".git", "out", "build", "*.egg-info", "__pycache__", ".pytest_cache")

pytestmark = [pytest.mark.models, pytest.mark.timeout(900)]


def run(*cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=800, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the source, installed into a new venv. The venv sees
    this environment's third-party packages (numpy, llama-cpp-python, the model packages)
    through a .pth line, so the test does not rebuild llama.cpp; vtuber itself comes only
    from the wheel."""
    d = tmp_path_factory.mktemp("wheel")
    src = d / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=SKIP)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", d / "dist", src)
    (wheel,) = (d / "dist").glob("vtuber-*.whl")
    venv = d / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    py = venv / "bin" / "python"
    site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    run(sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", wheel)
    elsewhere = d / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "XDG_CONFIG_HOME": str(d / "config"), "PYTHONPATH": ""}
    return venv, site, elsewhere, env


def test_the_package_is_the_wheel_not_the_checkout(installed):
    venv, site, elsewhere, env = installed
    r = run(venv / "bin" / "python", "-c", "import vtuber; print(vtuber.__file__)", cwd=elsewhere, env=env)
    assert Path(r.stdout.strip()).is_relative_to(site)


def test_persona_list_finds_the_bundled_persona(installed):
    venv, site, elsewhere, env = installed
    r = run(venv / "bin" / "vtuber", "persona", "list", cwd=elsewhere, env={**env, "COLUMNS": "300"})
    out = " ".join(r.stdout.split())
    assert "miko Miko" in out
    assert f"(bundled: {site / 'vtuber' / 'bundled' / 'personas' / 'miko.yaml'})" in out


def test_persona_import_writes_to_the_user_folder(installed):
    venv, site, elsewhere, env = installed
    card = elsewhere / "card.json"
    card.write_text('{"name": "Nova", "description": "a star", "personality": "bright", "first_mes": "hi!"}', encoding="utf-8")
    run(venv / "bin" / "vtuber", "persona", "import", card, cwd=elsewhere, env=env)
    user_file = Path(env["XDG_CONFIG_HOME"]) / "vtuber" / "personas" / "nova.yaml"
    assert user_file.is_file()
    assert not list((site / "vtuber").rglob("nova.yaml"))  # never into the installed package
    r = run(venv / "bin" / "vtuber", "persona", "list", cwd=elsewhere, env={**env, "COLUMNS": "300"})
    assert f"(user: {user_file})" in " ".join(r.stdout.split())


def test_the_demo_rehearses_from_another_folder(installed):
    venv, site, elsewhere, env = installed
    run(venv / "bin" / "vtuber", "rehearse", "--fast", "-q", "--out", "report", cwd=elsewhere, env=env)
    assert sorted(p.name for p in (elsewhere / "report").iterdir()) == [
        ".vtuber-files.json", "replies.wav", "timeline.png", "timings.json", "transcript.md",
    ]
    assert "demo_chat.jsonl" in (elsewhere / "report" / "transcript.md").read_text(encoding="utf-8")
