"""The plug-in costs an ``lm_eval`` run nothing it does not use: models register lazily."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.lmeval.plugin import AUTOLOAD_ENV, MODELS

HEAVY_MODULES = ("torch", "transformers", "nltk", "sklearn", "sacrebleu", "rouge_score",
                 "datasets", "bench.compressors", "bench.lmeval.compressed_model",
                 "bench.lmeval.reader_model", "bench.lmeval.api_models")


def _python(code: str, env_updates: dict[str, str] | None = None,
            script: Path | None = None) -> object:
    env = {name: value for name, value in os.environ.items() if name != AUTOLOAD_ENV}
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env_updates or {})})
    command = [sys.executable, "-c", code]
    if script is not None:
        script.write_text(code, encoding="utf-8")
        command = [sys.executable, str(script)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_register_imports_no_model_module_and_no_scorer():
    loaded = _python(
        "import json, sys\n"
        "import bench.lmeval.plugin as plugin\n"
        "plugin.register()\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n")
    assert loaded == []


def test_every_lazy_model_resolves_to_the_class_its_module_registers():
    resolved = _python(
        "import json\n"
        "import bench.lmeval.plugin as plugin\n"
        "plugin.register()\n"
        "from lm_eval.api.model import LM\n"
        "from lm_eval.api.registry import get_model\n"
        "classes = {name: get_model(name) for name in plugin.MODELS}\n"
        "print(json.dumps({name: [f'{c.__module__}:{c.__name__}', issubclass(c, LM)]\n"
        "                  for name, c in classes.items()}))\n")
    assert resolved == {name: [target, True] for name, target in MODELS.items()}


def test_register_after_a_model_module_was_imported_keeps_that_class():
    module, _, class_name = MODELS["compressed"].partition(":")
    same = _python(
        "import json\n"
        f"import {module} as models\n"
        "import bench.lmeval.plugin as plugin\n"
        "plugin.register()\n"
        "from lm_eval.api.registry import get_model\n"
        f"print(json.dumps([get_model('compressed') is models.{class_name},\n"
        "                   get_model('hf').__name__]))\n")
    assert same == [True, "HFLM"]


def test_task_manager_sees_the_project_tasks_once_lm_eval_tasks_is_imported():
    found = _python(
        "import json\n"
        "import bench.lmeval.plugin as plugin\n"
        "plugin.register()\n"
        "from lm_eval.tasks import TaskManager\n"
        "print(json.dumps(sorted(t for t in TaskManager(include_defaults=False).all_tasks\n"
        "                        if t.startswith('compressed_'))))\n")
    yaml_tasks = sorted(path.stem for path in (Path(__file__).resolve().parents[3] / "tasks")
                        .glob("compressed_*.yaml"))
    assert found == yaml_tasks


AUTOLOAD_PROBE = (
    "import json\n"
    "import lm_eval._cli\n"
    "from lm_eval.api.registry import model_registry\n"
    "print(json.dumps('compressed' in model_registry))\n")


def test_lm_eval_program_autoloads_unless_switched_off(tmp_path: Path):
    script = tmp_path / "lm_eval"
    assert _python(AUTOLOAD_PROBE, {}, script) is True
    assert _python(AUTOLOAD_PROBE, {AUTOLOAD_ENV: "0"}, script) is False


def test_other_programs_autoload_only_when_switched_on(tmp_path: Path):
    script = tmp_path / "evaluate.py"
    assert _python(AUTOLOAD_PROBE, {}, script) is False
    assert _python(AUTOLOAD_PROBE, {AUTOLOAD_ENV: "1"}, script) is True
