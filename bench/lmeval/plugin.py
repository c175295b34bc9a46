"""Makes the ``compressed*`` models and the ``compressed_*`` tasks visible to lm-eval.

lm-eval 0.4.13 has no plug-in discovery. :func:`register` adds our models to lm-eval's model
registry as lazy ``module:Class`` entries, the way lm-eval lists its own built-ins, so a model's
module (torch, transformers, the compressors) is imported only when that model is asked for;
and it adds the project's task folder to every ``TaskManager`` as soon as ``lm_eval.tasks`` is
imported (both through :mod:`bench.lmeval.adapter`). :func:`install_autoload` is run by the
``.pth`` file that the wheel installs: for a process started as ``lm_eval``/``lm-eval`` or
``python -m lm_eval`` (or with ``COMPRESSBENCH_LM_EVAL=1``) it calls :func:`register` right after
lm-eval's CLI package has been imported, before the CLI parses its arguments; under an lm-eval
version other than the supported one it says so in one line and leaves lm-eval alone.
``COMPRESSBENCH_LM_EVAL=0`` turns the autoload off, even for ``lm_eval``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

from bench.lmeval.import_hook import call_after_import

AUTOLOAD_ENV = "COMPRESSBENCH_LM_EVAL"
_LM_EVAL_PACKAGE = "lm_eval"
_LM_EVAL_MODULES = (_LM_EVAL_PACKAGE, "lm_eval.__main__")
MODELS = {
    "compressed": "bench.lmeval.compressed_model:CompressedLM",
    "compressed_reader": "bench.lmeval.reader_model:CompressedReaderLM",
    "compressed_completions": "bench.lmeval.api_models:CompressedCompletionsLM",
    "compressed_chat_completions": "bench.lmeval.api_models:CompressedChatCompletionsLM",
}
_registered = False


def register() -> None:
    """Register the ``compressed*`` models (lazily) and the task folder."""
    global _registered
    if _registered:
        return
    from bench.lmeval.adapter import add_task_folder, register_lazy_models

    register_lazy_models(MODELS)
    add_task_folder(task_include_path)
    _registered = True


def install_autoload() -> None:
    """Called from the installed ``.pth`` file; cheap and silent for every other program."""
    switch = os.environ.get(AUTOLOAD_ENV)
    if switch == "0":
        return
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if program in ("lm_eval", "lm-eval") or _running_lm_eval_module() or switch == "1":
        # The adapter checks lm-eval's version, which can be read once lm-eval is imported
        # (while .pth files run, sys.path may still lack the folder that holds it).
        call_after_import(_LM_EVAL_PACKAGE, _register_after_cli_import)


def _running_lm_eval_module() -> bool:
    """``python -m lm_eval`` (also as started by torchrun or accelerate launch).

    While ``.pth`` files run, ``sys.argv[0]`` is only ``"-m"``; ``sys.orig_argv`` still holds
    the interpreter's options and the module name.
    """
    arguments = iter(list(getattr(sys, "orig_argv", []))[1:])
    for argument in arguments:
        if argument in ("-W", "-X", "--check-hash-based-pycs"):
            next(arguments, None)  # the option's value
        elif argument == "-m":
            return next(arguments, "") in _LM_EVAL_MODULES
        elif argument.startswith("-m"):
            return argument[2:] in _LM_EVAL_MODULES
        elif argument == "-c" or not argument.startswith("-"):
            return False  # a command or a script, not a module
    return False


def _register_after_cli_import(_package: ModuleType) -> None:
    from bench.substrate.errors import InputError

    try:
        from bench.lmeval.adapter import after_cli_import
    except InputError as error:  # an lm-eval version other than the supported one
        sys.stderr.write(f"compressbench: lm-eval plug-in not loaded: {error}\n")
        return
    after_cli_import(_register_for_cli)


def _register_for_cli() -> None:
    from bench.lmeval.cli_errors import install_excepthook

    register()
    install_excepthook()


def task_include_path() -> Path:
    """The folder to pass as ``--include_path`` where autoloading is not wanted."""
    from bench.lmeval.task_functions import task_folder

    return task_folder()
