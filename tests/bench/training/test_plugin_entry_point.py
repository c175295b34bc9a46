"""A third-party training method installed as a package plugs in through the entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugin_packages import install_plugin

PLUGIN_MODULE = '''
"""500x's parts under another name, with an option of its own."""
from dataclasses import dataclass, field
from functools import partial

from bench.compressors.soft.encoder.training import ENCODER_SETTINGS, soft_parts
from bench.compressors.soft.five_hundred_x.compressor import KVSoftModel
from bench.training.registry import TrainingMethod


@dataclass(frozen=True)
class Options:
    shade: str = field(default="plain", metadata={"help": "a colour of no consequence",
                                                  "choices": ("plain", "bright")})


def parts(config, cuda, inputs):
    assert METHOD.options_of(config.extra) == Options("bright")
    return soft_parts(KVSoftModel, config, cuda, inputs)


METHOD = TrainingMethod(name="kv_copy", summary="500x under another name", parts=parts,
                        settings=ENCODER_SETTINGS, options=Options)
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(tmp_path_factory, "kv_copy_method", PLUGIN_MODULE,
                          "compressbench.training_methods", 'kv_copy = "kv_copy_method:METHOD"')


def _train(site: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "bench.train", *argv], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_installed_method_gets_its_flags_and_trains(plugin_site: Path, small_corpus: Path,
                                                    stories: Path, tmp_path: Path) -> None:
    shown = _train(plugin_site, "pretrain", "--help")
    assert "kv_copy (500x under another name)" in shown.stdout, shown.stderr
    assert "--shade {plain,bright}" in shown.stdout
    assert "kv_copy: a colour of no consequence (default: plain)" in " ".join(
        shown.stdout.split())
    common = ("pretrain", "--preset", "tiny-cpu", "--base", str(stories), "--data",
              str(small_corpus), "--steps", "2", "--eval-every", "0", "--no-progress")
    other = _train(plugin_site, *common, "--method", "500x", "--shade", "bright", "--out",
                   str(tmp_path / "other"))
    assert other.returncode == 2
    assert other.stderr.splitlines()[-1] == ("error: method 500x has no option shade; its "
                                             "options: none")
    done = _train(plugin_site, *common, "--method", "kv_copy", "--shade", "bright", "--out",
                  str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((tmp_path / "out" / "final" / "soft_config.json").read_text())
    assert config["training"]["method"] == "kv_copy"
    assert config["training"]["extra"] == {"shade": "bright"}


def test_an_unknown_method_names_the_registered_ones() -> None:
    from bench.training.config import TrainConfig
    from bench.training.registry import UnknownTrainingMethodError

    known = r"'500x', 'autocompressor', 'gist', 'icae', 'pisco', 'xrag'"
    with pytest.raises(UnknownTrainingMethodError,
                       match=rf"method must be one of \({known}\), got 'nope'"):
        TrainConfig(stage="pretrain", method="nope", base="b", data="d", out="o")
