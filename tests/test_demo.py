"""The README's main job: ``python -m bench demo``, checked against the committed baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BASELINE = Path(__file__).parent / "baselines" / "demo.json"


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "-m", "bench", "demo", "--out", str(out),
                           "--skip-neural"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Normalised scores" in done.stdout
    return out


@pytest.mark.slow
def test_demo_writes_results_and_a_leaderboard(demo_out: Path):
    assert len(list((demo_out / "runs").rglob("results_*.json"))) == 6
    page = (demo_out / "leaderboard" / "index.html").read_text(encoding="utf-8")
    assert "truncate" in page and "selective_context" in page


@pytest.mark.slow
def test_demo_scores_do_not_regress_against_the_committed_baseline(demo_out: Path,
                                                                   tmp_path: Path):
    report = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "leaderboard", "check", str(demo_out / "runs"),
         "--baseline", str(BASELINE), "--tolerance", "0.5", "--junit", str(report)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert report.is_file()
