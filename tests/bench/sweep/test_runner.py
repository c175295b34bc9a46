"""The sweep with lm-eval and the model load replaced by fakes: everything is checked before
a model is loaded, the target is loaded once for the compressors that leave it alone, and a
second sweep after a kill reruns exactly the combinations without complete results."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.__main__ import main
from bench.compressors._shared_work import shared_model
from bench.lmeval import run as lmeval_run
from bench.sweep import SweepSettings, parse_compressors, prepare_sweep, run_sweep
from bench.sweep.runner import results_complete

TASK = "compressed_squad"


class FakeModel:
    """Stands in for a loaded lm-eval model: notes each switch of compressor."""

    def __init__(self, model_args: str) -> None:
        self.model_args = model_args
        self.switches: list[tuple[str, dict[str, Any]]] = []
        self.draws: list[tuple[float, float]] = []  # random numbers a compressor would draw

    def use_compressor(self, name: str, options: dict[str, Any]) -> None:
        self.switches.append((name, options))
        self.draws.append((random.random(), float(torch.rand(1))))


class FakeLmEval:
    """``load_model`` and ``run_lm_eval`` of :mod:`bench.lmeval.run`: writes what lm-eval
    writes (a results file and one samples file per task) and notes every call."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.runs: list[tuple[str, Any]] = []
        self.half_write: str | None = None  # a model_args whose run is killed mid-write

    def load_model(self, model: str, model_args: str, *_: Any) -> FakeModel:
        self.loads.append(model_args)
        return FakeModel(model_args)

    def run_lm_eval(self, model: str, model_args: str, tasks: Sequence[str], output: Path,
                    limit: int | None = None, *_: Any, loaded: Any = None,
                    **__: Any) -> dict[str, Any]:
        self.runs.append((model_args, loaded))
        record = fake_results(model_args, limit, tasks)
        write_fake_run(output.parent, record, half=model_args == self.half_write)
        if model_args == self.half_write:
            raise KeyboardInterrupt  # the sweep is stopped while lm-eval writes
        return record


def fake_results(model_args: str, limit: int | None, tasks: Sequence[str]) -> dict[str, Any]:
    return {"results": {task: {"squad_f1,none": 0.5} for task in tasks},
            "configs": {task: {} for task in tasks},
            "config": {"model": "compressed_reader", "model_args": model_args, "limit": limit}}


def write_fake_run(folder: Path, record: dict[str, Any], half: bool = False,
                   date: str = "2026-01-01T00-00-00.000000") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record)
    (folder / f"results_{date}.json").write_text(text[: len(text) // 2] if half else text)
    for task in record["configs"]:
        (folder / f"samples_{task}_{date}.jsonl").write_text("{}\n")


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLmEval:
    fake = FakeLmEval()
    monkeypatch.setattr(lmeval_run, "load_model", fake.load_model)
    monkeypatch.setattr(lmeval_run, "run_lm_eval", fake.run_lm_eval)
    return fake


def _settings(out: Path, model: str = "compressed_reader", limit: int | None = None
              ) -> SweepSettings:
    return SweepSettings(model=model, pretrained="MODEL", tasks=(TASK,), out=out,
                         model_args="compression_cache=off", limit=limit)


def _sweep(settings: SweepSettings, spec: str) -> list[str]:
    """Run the sweep; the model_args of the runs it ran (not those finished earlier)."""
    runs = prepare_sweep(settings, parse_compressors(spec))
    return [outcome.run.model_args for outcome in run_sweep(settings, runs)
            if outcome.results is not None]


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--compressors", "none;trunacte:rate=0.5"], "did you mean 'truncate'?"),
    (["--compressors", "truncate:rate=2"], "must be in [0, 1]"),
    (["--compressors", "truncate:rate=0.5", "--model_args", "compressor=none"],
     "compressor= is what --compressors sets"),
    (["--compressors", "none", "--model", "hff"], "unknown lm-eval model 'hff'"),
    (["--compressors", "truncate:rate=0.5", "--model", "hf"], "give --compressors none"),
    (["--compressors", "none", "--tasks", "compressed_sqaud"],
     "unknown task 'compressed_sqaud' (did you mean 'compressed_squad'"),
    (["--compressors", "none", "--tasks", "compressed_qa"],
     "prepared benchmark 'arxivqa' not found at"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_model_is_loaded(
        fake: FakeLmEval, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, arguments: list[str], expected: str):
    monkeypatch.setenv("COMPRESSBENCH_DATA", str(tmp_path / "data"))
    defaults = {"--model": "compressed_reader", "--tasks": TASK}
    given = dict(zip(arguments[::2], arguments[1::2], strict=True))
    command = ["sweep", "--pretrained", "MODEL", "--out", str(tmp_path)]
    for flag, value in {**defaults, **given}.items():
        command += [flag, value]
    assert main(command) == 2
    error = capsys.readouterr().err
    assert expected in error and error.count("\n") == 1, error
    assert fake.loads == [] and fake.runs == []
    assert not (tmp_path / "runs").exists()


@pytest.mark.usefixtures("data_env")
def test_the_target_is_loaded_once_for_the_compressors_that_hand_it_text(
        fake: FakeLmEval, tmp_path: Path):
    ran = _sweep(_settings(tmp_path, model="compressed"),
                 "icae:num_mem=4;none;truncate:rate=0.5,0.25")
    assert ran == [f"pretrained=MODEL,compressor={args},compression_cache=off" for args in
                   ("none", "truncate,rate=0.5", "truncate,rate=0.25", "icae,num_mem=4")]
    assert fake.loads == [ran[0]]  # icae, which may change the weights, is built by lm-eval
    shared = fake.runs[0][1]
    assert [loaded for _, loaded in fake.runs] == [shared, shared, shared, None]
    assert shared.switches == [("truncate", {"rate": 0.5}), ("truncate", {"rate": 0.25})]
    random.seed(0)  # lm_eval's default seeds, set before it builds a model
    torch.manual_seed(1234)
    assert shared.draws == [(random.random(), float(torch.rand(1)))] * 2


@pytest.mark.usefixtures("data_env")
def test_runs_that_differ_in_budget_only_follow_each_other_and_share_compressor_work(
        fake: FakeLmEval, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    scorers: list[object] = []  # what a compressor built in each run gets from the scope

    def run_lm_eval(*args: Any, **kwargs: Any) -> dict[str, Any]:
        scorers.append(shared_model("scorer", object))
        return fake.run_lm_eval(*args, **kwargs)

    monkeypatch.setattr(lmeval_run, "run_lm_eval", run_lm_eval)
    ran = _sweep(_settings(tmp_path, model="compressed"),
                 "icae:num_mem=4;random_drop:rate=0.5,0.25,seed=0,1;none;"
                 "selective_context:unit=token,sentence,rate=0.5,0.25")
    expected = ["random_drop,rate=0.5,seed=0", "random_drop,rate=0.25,seed=0",
                "random_drop,rate=0.5,seed=1", "random_drop,rate=0.25,seed=1", "none",
                "selective_context,unit=token,rate=0.5", "selective_context,unit=token,rate=0.25",
                "selective_context,unit=sentence,rate=0.5",
                "selective_context,unit=sentence,rate=0.25", "icae,num_mem=4"]
    assert ran == [f"pretrained=MODEL,compressor={args},compression_cache=off"
                   for args in expected]
    # held for the runs on the shared model, let go of before icae gets a model of its own
    assert len({id(scorer) for scorer in scorers[:-1]}) == 1 and scorers[-1] is not scorers[0]


@pytest.mark.usefixtures("data_env")
def test_a_second_sweep_reruns_only_what_a_kill_left_unfinished(fake: FakeLmEval,
                                                                  tmp_path: Path):
    settings = _settings(tmp_path)
    spec = "none;truncate:rate=0.5,0.25;random_drop:rate=0.5"
    args = [f"tokenizer=MODEL,compressor={c},compression_cache=off" for c in
            ("none", "truncate,rate=0.5", "truncate,rate=0.25", "random_drop,rate=0.5")]
    fake.half_write = args[1]
    with pytest.raises(KeyboardInterrupt):
        _sweep(settings, spec)
    folders = {a: run.folder for a, run in
               zip(args, prepare_sweep(settings, parse_compressors(spec)), strict=True)}
    assert results_complete(folders[args[0]], args[0], None, (TASK,))
    assert not folders[args[1]].exists()  # its half-written staging folder was dropped
    # a killed plain lm_eval run left a truncated results file in another folder
    write_fake_run(folders[args[2]], fake_results(args[2], None, (TASK,)), half=True)
    fake.half_write = None
    assert _sweep(settings, spec) == args[1:]
    assert all(results_complete(folder, a, None, (TASK,)) for a, folder in folders.items())
    assert len(list(folders[args[2]].glob("results_*.json"))) == 1
    assert _sweep(settings, spec) == []


@pytest.mark.usefixtures("data_env")
def test_a_dead_sweeps_staging_folder_is_removed_and_its_run_rerun(fake: FakeLmEval,
                                                                    tmp_path: Path):
    settings = _settings(tmp_path)
    (run,) = prepare_sweep(settings, parse_compressors("none"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    staging = run.folder.with_name(f".{run.folder.name}.staging-{dead}-abcd1234")
    write_fake_run(staging, fake_results(run.model_args, None, (TASK,)))
    assert _sweep(settings, "none") == [run.model_args]
    assert not staging.exists() and results_complete(run.folder, run.model_args, None, (TASK,))


@pytest.mark.parametrize("change", ["limit", "model_args", "task", "samples"])
def test_results_of_other_settings_or_without_samples_are_not_finished(tmp_path: Path,
                                                                       change: str):
    model_args = "tokenizer=MODEL,compressor=none"
    record = fake_results(model_args, 4, (TASK,))
    assert results_complete(_written(tmp_path / "same", record), model_args, 4, (TASK,))
    if change == "limit":
        record["config"]["limit"] = None
    elif change == "model_args":
        record["config"]["model_args"] = model_args + ",seed=1"
    elif change == "task":
        record["results"] = {"compressed_race": {}}
    folder = _written(tmp_path / change, record)
    if change == "samples":
        next(folder.glob("samples_*.jsonl")).unlink()
    assert not results_complete(folder, model_args, 4, (TASK,))


def _written(folder: Path, record: dict[str, Any]) -> Path:
    write_fake_run(folder, record)
    return folder


def test_the_recorded_model_args_may_be_lm_evals_dict(tmp_path: Path):
    record = fake_results("x", None, (TASK,))
    record["config"]["model_args"] = {"tokenizer": "MODEL", "compressor": "truncate",
                                      "rate": 0.5}
    folder = _written(tmp_path, record)
    assert results_complete(folder, "tokenizer=MODEL,compressor=truncate,rate=0.5", None, (TASK,))
    assert os.listdir(folder)
