"""The ``evaluate`` metric modules load offline from their folder and equal ``bench.metrics``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench import metrics
from bench.demo import bundled_path
from bench.evaluate_metrics import METRIC_MODULES, metric_path

REPO = Path(__file__).resolve().parents[2]

# Loads each module with ``evaluate.load(path)`` and prints what it computes for the pairs.
_LOAD_AND_COMPUTE = """
import json, sys
import evaluate
from bench.evaluate_metrics import metric_path
pairs = json.load(sys.stdin)
out = {}
for name, (predictions, references) in pairs.items():
    module = evaluate.load(metric_path(name))
    out[name] = module.compute(predictions=predictions, references=references, per_sample=True)
json.dump(out, sys.stdout)
"""


def _records(name: str) -> list[dict[str, Any]]:
    lines = bundled_path(name).read_text(encoding="utf-8").splitlines()
    return [record for record in map(json.loads, lines) if "header" not in record]


def _qa_pairs() -> tuple[list[str], list[list[str]]]:
    """Every bundled question, answered right, in other case and punctuation, wrongly, empty."""
    predictions, references = [], []
    for record in _records("demo_qa.jsonl"):
        for index, qa in enumerate(record["qas"]):
            golds = [str(answer) for answer in qa["answers"]]
            variants = [golds[0], f"{golds[0].upper()}.", qa["question"], "",
                        f"the {golds[-1]} and more"]
            predictions.append(variants[index % len(variants)])
            references.append(golds)
    return predictions, references


def _regeneration_pairs() -> tuple[list[str], list[str]]:
    """Every bundled text, regenerated whole, cut to its first half, reversed, empty."""
    predictions, references = [], []
    for index, record in enumerate(_records("demo_regeneration.jsonl")):
        text = str(record["text"])
        words = text.split()
        variants = [text, " ".join(words[: len(words) // 2]), " ".join(reversed(words)), ""]
        predictions.append(variants[index % len(variants)])
        references.append(text)
    return predictions, references


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """What the modules compute, loaded offline in a fresh process with its caches in tmp."""
    home = tmp_path_factory.mktemp("hf-home")
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
    pairs = {"compressbench_qa": _qa_pairs(), "compressbench_regeneration": _regeneration_pairs()}
    done = subprocess.run([sys.executable, "-c", _LOAD_AND_COMPUTE], input=json.dumps(pairs),
                          cwd=home, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, dict[str, Any]] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_qa_module_equals_bench_metrics_on_every_pair(computed: dict[str, dict[str, Any]]):
    predictions, references = _qa_pairs()
    expected = {**metrics.batch_squad_scores(predictions, references),
                **metrics.batch_qa_500x_scores(predictions, references)}
    result = computed["compressbench_qa"]
    assert set(result) == {*expected, *(f"{name}_per_sample" for name in expected)}
    for name, values in expected.items():
        assert result[f"{name}_per_sample"] == values, name
        assert result[name] == sum(values) / len(values), name


@pytest.mark.slow
def test_regeneration_module_equals_bench_metrics_on_every_pair(
        computed: dict[str, dict[str, Any]]):
    predictions, references = _regeneration_pairs()
    expected = metrics.batch_regeneration_scores(predictions, references)
    result = computed["compressbench_regeneration"]
    assert set(result) == {*expected, *(f"{name}_per_sample" for name in expected)}
    for name, values in expected.items():
        assert result[f"{name}_per_sample"] == values, name
        assert result[name] == sum(values) / len(values), name


def test_metric_path_names_the_module_folder_and_refuses_other_names():
    for name in METRIC_MODULES:
        folder = Path(metric_path(name))
        assert (folder / f"{name}.py").is_file() and folder.name == name
    with pytest.raises(ValueError, match="compressbench_qa, compressbench_regeneration"):
        metric_path("squad")


def test_the_wheel_ships_the_module_files():
    """Hatch puts every file of the listed packages in the wheel, unless it is ignored."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    packages = [REPO / package for package in wheel["packages"]]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *(metric_path(name) for name in METRIC_MODULES)],
        cwd=REPO, capture_output=True, text=True, check=False)
    for name in METRIC_MODULES:
        module = Path(metric_path(name)) / f"{name}.py"
        assert any(module.is_relative_to(package) for package in packages), module
    assert ignored.stdout == "", ignored.stdout
    assert not wheel.get("exclude"), wheel["exclude"]
