"""``leaderboard build`` replaces its output folder as one unit, with a verifiable manifest."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench.substrate.atomic import KILL_AFTER_WRITES_ENV
from bench.substrate.manifest import FolderCheckError, fill_rebuild, verify_folder
from leaderboard._cli import main
from tests.kill_points import kill_sweep, leftovers, run_forked, snapshot
from tests.leaderboard.conftest import FIXTURE_RUNS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KILL_AFTER_WRITES_ENV, raising=False)


def build_args(out: Path, title: str) -> list[str]:
    return ["build", str(FIXTURE_RUNS), "--out", str(out), "--title", title]


def _check(out: Path) -> None:
    verify_folder(out, "python -m leaderboard build RUNS --out {folder}",
                  required=("index.html", "leaderboard.json"))


@pytest.mark.slow
def test_kill_at_every_write_leaves_old_or_new(tmp_path: Path) -> None:
    out = tmp_path / "site"
    new_args = build_args(out, "New board")
    assert main(new_args) == 0
    new = snapshot(out)
    assert main(build_args(out, "Old board")) == 0
    old = snapshot(out)
    assert old is not None and new is not None and old != new
    saved = tmp_path / "saved"
    shutil.copytree(out, saved)

    def reset() -> None:
        shutil.rmtree(out)
        shutil.copytree(saved, out)

    seen = kill_sweep(lambda n: run_forked(main, new_args, n), out, old, new, reset,
                      lambda: _check(out))
    assert seen[0] == "old" and seen[-1] == "new" and len(seen) > len(new)
    assert leftovers(out) == []

    reset()  # the real command line, killed after the swap
    env = {**os.environ, KILL_AFTER_WRITES_ENV: str(seen.index("new") + 1)}
    done = subprocess.run([sys.executable, "-m", "leaderboard", *new_args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -9
    assert snapshot(out) == new and len(leftovers(out)) == 1
    _check(out)


def test_a_tampered_site_is_refused_and_the_command_rebuilds_it(tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert main(build_args(out, "Board")) == 0
    complete = snapshot(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir()
                                               if p.name != "manifest.json")
    (out / "raw.csv").write_text("Compressor\ntampered\n")
    with pytest.raises(FolderCheckError) as info:
        _check(out)
    rebuild = fill_rebuild(manifest["rebuild"], out)
    assert str(info.value).startswith(f"{out}: raw.csv has ")
    assert str(info.value).endswith(f"; rebuild it with: {rebuild}")
    command = shlex.split(rebuild)
    assert command[:4] == ["python", "-m", "leaderboard", "build"]
    assert main(command[3:]) == 0
    assert snapshot(out) == complete


def test_a_folder_with_other_files_is_not_replaced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "package"
    out.mkdir()
    (out / "_build.py").write_text("source code")
    assert main(build_args(out, "Board")) == 2
    error = capsys.readouterr().err.strip()
    assert error == (f"error: {out}: exists and holds '_build.py', which this command does not "
                     "write; choose a new or empty folder, or remove it first")
    assert snapshot(out) == {"_build.py": b"source code"} and leftovers(out) == []


def test_exports_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o002)
    try:
        assert main(build_args(tmp_path / "site", "Board")) == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "site").stat().st_mode) == 0o775
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "site").iterdir()} == {0o664}
