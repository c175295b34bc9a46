"""Running a sweep: every combination through lm-eval in this process, resumable.

Each combination is one lm-eval run written as the ``lm_eval`` command writes it with
``--log_samples --output_path OUT/runs/NAME/results.json`` (``NAME`` from
:func:`leaderboard.run_folder_name`). A run folder is built in a staging folder and swapped
into place whole (:func:`bench.substrate.atomic.atomic_directory`), so a killed sweep leaves
finished folders and nothing half-written; the next sweep skips every combination whose
folder holds complete results for the same ``--model_args``, tasks and ``--limit``.

The target model is loaded once for all the combinations whose compressors hand it text
(baselines, hard and lossless methods): the loaded lm-eval model switches compressor
(``use_compressor``). A compressor that feeds vectors into the model may change its weights
(adapters, new embeddings), so each of those gets a model of its own, after the shared one is
released; stock lm-eval models and the served ones are built per combination, as lm-eval does.

The runs of one compressor follow each other, those that differ only in budget options
(``rate``, ``target_tokens``) next to each other, inside one
:func:`bench.compressors.shared_work` scope: a compressor model is loaded once for them and
the work they do whatever the budget (``selective_context``'s self-information,
``llmlingua2``'s classifier passes) once per context, giving the texts of separate runs.
"""

from __future__ import annotations

import fnmatch
import gc
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.substrate.errors import CompressbenchError, InputError
from bench.sweep.combinations import Combination, check_combinations, suggestion

if TYPE_CHECKING:
    from bench.compressors import SharedWork

RUN_FILES = ("results_*.json", "samples_*.jsonl")
RESULTS_PREFIX = "results_"
# The key of --model_args that --pretrained fills, per model (``pretrained`` for the others).
TARGET_KEYS = {"compressed_reader": "tokenizer", "compressed_completions": "model",
               "compressed_chat_completions": "model"}
DEFAULT_TARGET_KEY = "pretrained"
COMPRESSOR_KEY = "compressor"
STOCK_COMPRESSOR = "none"  # what a stock lm-eval model runs: the context as it is
HF_COMPRESSED_MODEL = "compressed"  # the one model that answers soft compressions


class SweepError(CompressbenchError):
    """lm-eval ran but left no complete results for a combination."""


@dataclass(frozen=True)
class SweepSettings:
    """What every combination of a sweep shares."""

    model: str
    pretrained: str
    tasks: tuple[str, ...]
    out: Path
    model_args: str = ""
    limit: int | None = None
    batch_size: int | str = 1
    device: str | None = None

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    @property
    def page(self) -> Path:
        return self.out / "leaderboard"

    @property
    def target_key(self) -> str:
        return TARGET_KEYS.get(self.model, DEFAULT_TARGET_KEY)


@dataclass(frozen=True)
class SweepRun:
    """One combination as one lm-eval run."""

    combination: Combination
    model_args: str
    folder: Path


@dataclass(frozen=True)
class SweepOutcome:
    """A run and lm-eval's results, or None for a run finished by an earlier sweep;
    ``reused``: the contexts whose scores the run's compressor took from earlier runs."""

    run: SweepRun
    results: dict[str, Any] | None
    reused: int = 0


def compresses(model: str) -> bool:
    """Whether ``model`` is one of the project's models (they take ``compressor=``)."""
    from bench.lmeval.plugin import MODELS

    return model in MODELS


def model_args_of(settings: SweepSettings, combination: Combination) -> str:
    """``--model_args`` of one combination: the target, the compressor and its options,
    then the shared ``settings.model_args``."""
    parts = [f"{settings.target_key}={settings.pretrained}"]
    if compresses(settings.model):
        parts.append(f"{COMPRESSOR_KEY}={combination.compressor}")
        parts.extend(f"{key}={value}" for key, value in combination.options)
    if settings.model_args:
        parts.append(settings.model_args)
    return ",".join(parts)


def plan(settings: SweepSettings, combinations: Sequence[Combination]) -> list[SweepRun]:
    """The runs of ``combinations``, each with its folder under ``settings.runs``."""
    from leaderboard import run_folder_name

    runs: list[SweepRun] = []
    for combination in combinations:
        model_args = model_args_of(settings, combination)
        folder = settings.runs / run_folder_name(settings.model, model_args)
        if any(run.folder == folder for run in runs):
            raise InputError(f"{combination.label()} would be written to the folder of "
                             f"another combination, {folder.name}", field="--compressors")
        runs.append(SweepRun(combination, model_args, folder))
    return runs


def check_settings(settings: SweepSettings, combinations: Sequence[Combination]) -> None:
    """Refuse, before anything is loaded, an unknown model, ``--model_args`` that name what
    the sweep sets, compressors on a stock model, bad compressors, an unknown task and a
    benchmark that is not prepared."""
    from bench.lmeval.run import model_class, parse_model_args

    model_class(settings.model)
    shared = parse_model_args(settings.model_args)
    for key, flag in ((settings.target_key, "--pretrained"), (COMPRESSOR_KEY, "--compressors")):
        if key in shared:
            raise InputError(f"{key}= is what {flag} sets", field="--model_args")
    if compresses(settings.model):
        check_combinations(combinations, settings.model,
                           text_only=settings.model != HF_COMPRESSED_MODEL)
    elif list(combinations) != [Combination(STOCK_COMPRESSOR)]:
        raise InputError(f"--model {settings.model} is a stock lm-eval model and compresses "
                         f"nothing: give --compressors {STOCK_COMPRESSOR}",
                         field="--compressors", hint="or use --model compressed")
    _check_tasks(settings.tasks)


def _check_tasks(tasks: Sequence[str]) -> None:
    """Known tasks, whose prepared benchmarks are in the data directory and intact."""
    from bench.lmeval.task_list import read_tasks
    from bench.prepare.data_dir import verified_benchmark_dir

    entries = {entry.name: entry for entry in read_tasks()}
    for task in tasks:
        if task not in entries:
            raise InputError(f"unknown task {task!r}{suggestion(task, list(entries))}",
                             field="--tasks", hint="`python -m bench tasks` lists them")
    members = [member for task in tasks for member in (entries[task].members or (task,))]
    for benchmark in sorted({entries[member].benchmark or "" for member in members}):
        verified_benchmark_dir(benchmark)


def check_folders(runs: Sequence[SweepRun]) -> None:
    """Refuse a run folder that holds files lm-eval does not write (before any load)."""
    for run in runs:
        if not run.folder.is_dir():
            continue
        for entry in sorted(run.folder.iterdir()):
            if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in RUN_FILES):
                raise InputError(f"{run.folder}: holds {entry.name!r}, which a sweep does not "
                                 "write; move it away or choose another --out")


def results_complete(folder: Path, model_args: str, limit: int | None,
                     tasks: Sequence[str]) -> bool:
    """Whether ``folder`` holds a readable results file of ``model_args`` with ``limit`` for
    every task of ``tasks``, with the samples file of each task it ran."""
    for path in sorted(folder.glob(f"{RESULTS_PREFIX}*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if _same_run(record, model_args, limit, tasks) and _samples_written(path, record):
            return True
    return False


def _same_run(record: Mapping[str, Any], model_args: str, limit: int | None,
              tasks: Sequence[str]) -> bool:
    from bench.lmeval.run import parse_model_args

    config = record.get("config")
    results = record.get("results")
    if not isinstance(config, dict) or not isinstance(results, dict):
        return False
    recorded = config.get("model_args")
    if isinstance(recorded, str):
        recorded = parse_model_args(recorded)
    return (recorded == parse_model_args(model_args) and config.get("limit") == limit
            and all(task in results for task in tasks))


def _samples_written(results_path: Path, record: Mapping[str, Any]) -> bool:
    date = results_path.stem[len(RESULTS_PREFIX):]
    configs = record.get("configs")
    return isinstance(configs, dict) and all(
        (results_path.parent / f"samples_{task}_{date}.jsonl").is_file() for task in configs)


def keeps_weights(combination: Combination) -> bool:
    """Whether the compressor leaves the target's weights alone (it hands the model text)."""
    from bench.compressors import Family, capabilities_of

    family = capabilities_of(combination.compressor).family
    return family in (Family.BASELINE, Family.HARD, Family.LOSSLESS)


def reuses_models(model: str) -> bool:
    """Whether the lm-eval model ``model`` can switch compressor once loaded."""
    from bench.lmeval.run import model_class

    return callable(getattr(model_class(model), "use_compressor", None))


class SharedModel:
    """The loaded lm-eval model that the combinations which keep its weights share."""

    def __init__(self, settings: SweepSettings) -> None:
        self.settings = settings
        self.loaded: Any = None

    def switched_to(self, run: SweepRun) -> Any:
        """The model, loaded for ``run`` or switched to its compressor."""
        from bench.lmeval.run import load_model, parse_model_args, seed_as_lm_eval

        if self.loaded is None:
            self.loaded = load_model(self.settings.model, run.model_args,
                                     self.settings.batch_size, self.settings.device)
        else:  # the compressor is built from the random state lm-eval builds models from
            seed_as_lm_eval()
            options = parse_model_args(run.combination.options_text())
            self.loaded.use_compressor(run.combination.compressor, options)
        return self.loaded

    def release(self) -> None:
        """Drop the model (before another combination loads one of its own)."""
        if self.loaded is not None:
            self.loaded = None
            gc.collect()


def order(runs: Sequence[SweepRun], shared: bool) -> list[SweepRun]:
    """The runs on the shared model first, the others after; within each part the runs of
    one compressor together, and among them those that differ only in budget options next to
    each other, all else in the order given."""
    if not shared:
        return _grouped(runs)
    return (_grouped([run for run in runs if keeps_weights(run.combination)])
            + _grouped([run for run in runs if not keeps_weights(run.combination)]))


def _grouped(runs: Sequence[SweepRun]) -> list[SweepRun]:
    compressors: dict[str, int] = {}
    option_sets: dict[Combination, int] = {}
    for run in runs:
        compressors.setdefault(run.combination.compressor, len(compressors))
        option_sets.setdefault(beyond_budget(run.combination), len(option_sets))
    return sorted(runs, key=lambda run: (compressors[run.combination.compressor],
                                         option_sets[beyond_budget(run.combination)]))


def beyond_budget(combination: Combination) -> Combination:
    """``combination`` without the options that only set how much is kept (the
    ``budget_options`` its compressor declares)."""
    from bench.compressors import capabilities_of

    budget = capabilities_of(combination.compressor).budget_options
    return Combination(combination.compressor,
                       tuple(item for item in combination.options if item[0] not in budget))


def evaluate(settings: SweepSettings, run: SweepRun, loaded: Any) -> dict[str, Any]:
    """One lm-eval run into ``run.folder``, swapped into place only when complete."""
    from bench.harness import sample_log
    from bench.lmeval.run import run_lm_eval
    from bench.substrate.atomic import atomic_directory

    sample_log.clear()
    if not _main_process():  # lm-eval writes on the first process only
        return run_lm_eval(settings.model, run.model_args, settings.tasks,
                           run.folder / "results.json", settings.limit, settings.batch_size,
                           device=settings.device, loaded=loaded)
    with atomic_directory(run.folder, owned=RUN_FILES) as staging:
        results = run_lm_eval(settings.model, run.model_args, settings.tasks,
                              staging / "results.json", settings.limit, settings.batch_size,
                              device=settings.device, loaded=loaded)
        if not results_complete(staging, run.model_args, settings.limit, settings.tasks):
            raise SweepError(f"{run.folder.name}: lm-eval left no complete results file")
    return results


def _main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def prepare_sweep(settings: SweepSettings, combinations: Sequence[Combination]
                  ) -> list[SweepRun]:
    """The runs of the sweep, everything checked that can be before a model is loaded."""
    check_settings(settings, combinations)
    runs = plan(settings, combinations)
    check_folders(runs)
    return runs


def run_sweep(settings: SweepSettings, runs: Sequence[SweepRun]) -> Iterator[SweepOutcome]:
    """Run every run not finished yet, with a progress bar; yields each outcome as it comes
    (those of earlier sweeps first, with no results)."""
    from tqdm import tqdm

    from bench.compressors import shared_work

    done = [run for run in runs if results_complete(run.folder, run.model_args,
                                                    settings.limit, settings.tasks)]
    for run in done:
        yield SweepOutcome(run, None)
    shared = SharedModel(settings) if reuses_models(settings.model) else None
    pending = order([run for run in runs if run not in done], shared is not None)
    with tqdm(total=len(runs), initial=len(done), desc="sweep", unit="run") as bar, \
            shared_work() as work:
        for run in pending:
            bar.set_postfix_str(_progress(run, work))
            reused = work.reused
            results = evaluate(settings, run, _model_for(run, shared, work))
            yield SweepOutcome(run, results, work.reused - reused)
            bar.update()


def _model_for(run: SweepRun, shared: SharedModel | None, work: SharedWork) -> Any:
    """The shared model switched to ``run``'s compressor, or None for lm-eval to build one
    (after letting go of the shared model and the compressor work held for it)."""
    if keeps_weights(run.combination):
        return None if shared is None else shared.switched_to(run)
    work.release()
    if shared is not None:
        shared.release()
    return None


def _progress(run: SweepRun, work: SharedWork) -> str:
    reused = f"; scores of {work.reused} contexts reused" if work.reused else ""
    return run.combination.label() + reused


def build_page(settings: SweepSettings) -> Path:
    """``leaderboard build OUT/runs --out OUT/leaderboard``; the page's path."""
    from leaderboard import BuildOptions, build

    if _main_process():
        build([settings.runs], BuildOptions(out=settings.page))
    return settings.page / "index.html"
