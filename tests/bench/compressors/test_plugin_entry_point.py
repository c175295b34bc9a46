"""A third-party compressor installed as a package plugs in through the entry-point group."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugin_packages import install_plugin

PLUGIN_MODULE = '''
"""Keeps every other word of the context."""
from dataclasses import dataclass
from bench.compressors import Capabilities, Family, Registration, parse_options
from bench.records import CompressedText, CompressionStats


@dataclass(frozen=True)
class Options:
    keep_every: int = 2


class EveryOther:
    name = "every_other"
    version = "7"

    def __init__(self, target, options):
        self.target = target
        self.options = parse_options(Options, options, self.name)

    def settings(self):
        return {"keep_every": self.options.keep_every}

    def compress(self, requests):
        out = []
        for request in requests:
            text = " ".join(request.context.split()[:: self.options.keep_every])
            stats = CompressionStats(self.target.count_tokens(request.context),
                                     self.target.count_tokens(text), 0.0)
            out.append(CompressedText(text, stats))
        return out


REGISTRATION = Registration(EveryOther, Capabilities(Family.HARD, budget_options=("keep_every",)))
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(tmp_path_factory, "every_other_plugin", PLUGIN_MODULE,
                          "compressbench.compressors",
                          'every_other = "every_other_plugin:REGISTRATION"')


def _env(site: Path, data: Path) -> dict[str, str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "COMPRESSBENCH_DATA": str(data),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.mark.slow
def test_installed_plugin_is_listed_and_runs_through_lm_eval(
        plugin_site: Path, demo_data_dir: Path, tiny_model_dir: Path, tmp_path: Path):
    listed = subprocess.run(
        [sys.executable, "-c",
         "from bench.compressors import available_compressors; print(available_compressors())"],
        env=_env(plugin_site, demo_data_dir), capture_output=True, text=True, timeout=120)
    assert "every_other" in listed.stdout, listed.stderr
    done = subprocess.run(
        [sys.executable, "-m", "bench", "eval", "--tasks", "compressed_squad",
         "--model", "compressed_reader", "--model_args",
         f"tokenizer={tiny_model_dir},compressor=every_other,keep_every=3",
         "--limit", "2", "--output_path", str(tmp_path), "--log_samples"],
        env=_env(plugin_site, demo_data_dir), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    from tests.conftest import read_results

    results = read_results(tmp_path)
    info = results["config"]["compressbench"]["compressor"]  # type: ignore[index]
    assert info == {"name": "every_other", "version": "7", "settings": {"keep_every": 3},
                    "family": "hard", "question_aware": False, "budget_options": ["keep_every"]}
    ratio = results["results"]["compressed_squad"]["compression_ratio,none"]  # type: ignore[index]
    assert 0.2 < ratio < 0.5
