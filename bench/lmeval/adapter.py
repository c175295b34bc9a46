"""Every use of lm-eval beyond its documented API, for lm-eval 0.4.13 only.

lm-eval has no plug-in interface and few stable seams, so the project leans on its internals:
lazy entries in its model registry, a task folder added to every ``TaskManager``, the prompt
of each request (``Instance``) read and rewritten, the cache hook that learns which prompt an
answer belongs to, the ``hf`` backend's per-batch generation and process group, the API
models' payload builder, and the command line's ``run`` parser and error wording. Each is a
small function here and nowhere else, so that a new lm-eval release is checked against this
one module.

Importing the module checks the installed lm-eval and refuses any other version in one line
(:class:`UnsupportedLmEvalVersion`). Importing it is cheap: lm-eval's modules are imported
inside the functions that need them.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import inspect
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.lmeval.import_hook import call_after_import
from bench.substrate.errors import InputError

__all__ = [
    "CLI_PACKAGE",
    "HF_GENERATION_METHODS",
    "SUPPORTED_VERSION",
    "ApiCallSettings",
    "BatchGeneration",
    "GenerationRequest",
    "UnsupportedLmEvalVersion",
    "add_task_folder",
    "after_cli_import",
    "answers_noted",
    "api_call_settings",
    "api_max_gen_toks",
    "api_model_arguments",
    "api_payload",
    "chat_messages",
    "chat_prompt",
    "check_version",
    "hf_backend_arguments",
    "installed_version",
    "is_unknown_task_error",
    "read_request",
    "register_lazy_models",
    "run_cli",
    "run_command_parser",
    "set_prompt",
    "use_processes",
]

SUPPORTED_VERSION = "0.4.13"
DISTRIBUTION = "lm_eval"
CLI_PACKAGE = "lm_eval._cli"  # what lm_eval.__main__ imports first, before parsing arguments
# The ``hf`` backend's methods the ``compressed`` model wraps: the request loop, one batch.
HF_GENERATION_METHODS = ("generate_until", "_model_generate")
_TASKS_MODULE = "lm_eval.tasks"
_PROGRAM = "lm_eval"
# lm-eval adds these to every model's arguments (``create_from_arg_obj``).
_ADDED_MODEL_ARGUMENTS = frozenset({"batch_size", "max_batch_size", "device"})
_ORIGINAL_PROMPT = "_compressbench_original_prompt"


class UnsupportedLmEvalVersion(InputError):
    """The installed lm-eval is not the one this project's use of its internals was made for."""

    def __init__(self, installed: str | None) -> None:
        found = ("lm-eval is not installed" if installed is None
                 else f"lm-eval {installed} is installed")
        super().__init__(f"{found}; compressbench supports lm-eval {SUPPORTED_VERSION} only",
                         hint=f"install it with pip install 'lm-eval[api]=={SUPPORTED_VERSION}'")
        self.installed = installed


def installed_version() -> str | None:
    """The version of the installed lm-eval distribution, None when it is not installed."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_version(installed: str | None) -> None:
    """Refuse any lm-eval but :data:`SUPPORTED_VERSION`."""
    if installed != SUPPORTED_VERSION:
        raise UnsupportedLmEvalVersion(installed)


check_version(installed_version())


# ---- the plug-in: models, tasks and the command line ----


def register_lazy_models(models: Mapping[str, str]) -> None:
    """Add ``name: "module:Class"`` entries to lm-eval's model registry, imported when a model
    is first asked for (as lm-eval lists its own); a name already registered keeps its class."""
    import lm_eval.models  # noqa: F401  (built-ins first: their lazy entries are added once)
    from lm_eval.api.registry import model_registry

    for name, target in models.items():
        if name not in model_registry:  # already there when its module was imported first
            model_registry.register(name, target=target)


def add_task_folder(folder: Callable[[], Path]) -> None:
    """Make every ``TaskManager`` index ``folder()`` too, from when ``lm_eval.tasks`` is
    imported (now, if it is)."""

    def patch(tasks_module: ModuleType) -> None:
        _include_in_every_task_manager(tasks_module.TaskManager, str(folder()))

    call_after_import(_TASKS_MODULE, patch)


def _include_in_every_task_manager(manager_class: Any, folder: str) -> None:
    original_init = manager_class.__init__

    def init_with_project_tasks(self: Any, *args: Any, include_path: Any = None,
                                **kwargs: Any) -> None:
        paths: list[Any] = [] if include_path is None else (
            list(include_path) if isinstance(include_path, (list, tuple)) else [include_path])
        # A user's own folder comes first so that its tasks override ours, as lm-eval documents.
        original_init(self, *args, include_path=[*paths, folder], **kwargs)

    manager_class.__init__ = init_with_project_tasks


def after_cli_import(then: Callable[[], None]) -> None:
    """Call ``then()`` right after lm-eval's CLI package is imported (before the CLI parses
    its arguments), or now if it is imported already."""
    call_after_import(CLI_PACKAGE, lambda _module: then())


def run_cli(arguments: Sequence[str]) -> None:
    """lm-eval's command line on ``arguments``, as the ``lm_eval`` program runs it."""
    from lm_eval.__main__ import cli_evaluate

    sys.argv = [_PROGRAM, *arguments]
    cli_evaluate()


def is_unknown_task_error(error: BaseException) -> bool:
    """Whether ``error`` is lm-eval's refusal of task names it does not know."""
    return isinstance(error, ValueError) and str(error).startswith("Tasks not found")


def run_command_parser() -> argparse.ArgumentParser:
    """The parser of lm-eval's ``run`` sub-command (its flags and their help)."""
    from lm_eval._cli.harness import HarnessCLI

    parser: argparse.ArgumentParser = HarnessCLI()._subparsers.choices["run"]
    return parser


# ---- requests ----


@dataclass(frozen=True)
class GenerationRequest:
    """What the project reads of one lm-eval ``generate_until`` request."""

    prompt: Any  # a string, or lm-eval's chat form (see :func:`chat_messages`)
    gen_kwargs: dict[str, Any]
    doc: dict[str, Any]
    task_name: str
    doc_id: int

    @property
    def where(self) -> str:
        return f"task {self.task_name}, doc {self.doc_id}"

    @property
    def text(self) -> str:
        """The prompt, which must be a string."""
        if not isinstance(self.prompt, str):
            raise TypeError(f"{self.where}: expected a prompt string, got "
                            f"{type(self.prompt).__name__}")
        return self.prompt


def read_request(instance: Any) -> GenerationRequest:
    """The request of the lm-eval ``instance`` with the prompt lm-eval first gave it.

    lm-eval can hand the same instance over more than once (repeats, padding of the last
    process's share), after :func:`set_prompt` changed it: its first prompt is put back.
    """
    if hasattr(instance, _ORIGINAL_PROMPT):
        set_prompt(instance, getattr(instance, _ORIGINAL_PROMPT))
    else:
        setattr(instance, _ORIGINAL_PROMPT, instance.args[0])
    return GenerationRequest(instance.args[0], instance.args[1], instance.doc,
                             str(instance.task_name), int(instance.doc_id))


def set_prompt(instance: Any, prompt: Any) -> None:
    """Make lm-eval send ``prompt`` for ``instance`` (its other arguments unchanged)."""
    instance.arguments = (prompt, *instance.arguments[1:])


def chat_messages(prompt: Any) -> Any | None:
    """The messages (decoded JSON) of a prompt in lm-eval's chat form, else None."""
    from lm_eval.models.api_models import JsonChatStr

    return json.loads(prompt.prompt) if isinstance(prompt, JsonChatStr) else None


def chat_prompt(messages: Sequence[Mapping[str, Any]]) -> Any:
    """``messages`` in lm-eval's chat form (the JSON its chat template path writes)."""
    from lm_eval.models.api_models import JsonChatStr

    return JsonChatStr(json.dumps(list(messages), ensure_ascii=False))


@contextmanager
def answers_noted(model: Any, note: Callable[[Any], None]) -> Iterator[None]:
    """Meanwhile, ``note(prompt)`` is called as the lm-eval ``model`` hands each answer to its
    cache hook, with the prompt it answers, right after the call that produced it."""
    inner = model.cache_hook
    model.cache_hook = _NotingHook(inner, note)
    try:
        yield
    finally:
        model.cache_hook = inner


class _NotingHook:
    """Stands in for lm-eval's cache hook: notes each answer's prompt, then passes it on."""

    def __init__(self, inner: Any, note: Callable[[Any], None]) -> None:
        self.inner = inner
        self.note = note

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        self.note(req[0])
        self.inner.add_partial(attr, req, res)


# ---- the ``hf`` backend ----


def hf_backend_arguments() -> frozenset[str]:
    """The keyword arguments of lm-eval's ``hf`` backend."""
    from lm_eval.models.huggingface import HFLM

    return frozenset(inspect.signature(HFLM.__init__).parameters) - {"self", "kwargs"}


class BatchGeneration:
    """Listed before lm-eval's ``HFLM`` among a model's bases: each batch the ``hf`` backend
    generates goes through :meth:`generate_batch`."""

    def generate_batch(self, context: Any, generate: Callable[..., Any],
                       generation_kwargs: dict[str, Any]) -> Any:
        """``generate(**generation_kwargs)`` for the token ids ``context``; override to add
        logits processors or to time the batch."""
        return generate(**generation_kwargs)

    def _model_generate(self, context: Any, max_length: int, stop: list[str],
                        **generation_kwargs: Any) -> Any:
        hf_generate: Callable[..., Any] = super()._model_generate  # type: ignore[misc]

        def generate(**kwargs: Any) -> Any:
            return hf_generate(context, max_length, stop, **kwargs)

        return self.generate_batch(context, generate, generation_kwargs)


def use_processes(model: Any, accelerator: Any, rank: int, world_size: int) -> None:
    """Make the ``hf`` backend ``model`` answer the share of process ``rank`` of
    ``world_size`` (lm-eval sets this up itself on GPUs only)."""
    model.accelerator = accelerator
    model._rank = rank
    model._world_size = world_size


# ---- the API models (local-completions, local-chat-completions) ----


def api_model_arguments(api_class: type) -> frozenset[str]:
    """The keyword arguments of lm-eval's API model classes among ``api_class``'s bases, with
    those lm-eval adds to every model's."""
    names: set[str] = set(_ADDED_MODEL_ARGUMENTS)
    for klass in api_class.__mro__:
        init = vars(klass).get("__init__")
        if klass.__module__.startswith("lm_eval.") and init is not None:
            names |= set(inspect.signature(init).parameters)
    return frozenset(names - {"self", "args", "kwargs"})


def api_max_gen_toks(model: Any) -> int:
    """The ``max_gen_toks`` an lm-eval API model uses where a task sets none."""
    return int(model._max_gen_toks)


@dataclass(frozen=True)
class ApiCallSettings:
    """How an lm-eval API model sends its requests (``--model_args``)."""

    concurrent: int  # num_concurrent
    batch_size: int  # prompts per request
    seed: int
    attempts: int  # max_retries: attempts per request


def api_call_settings(model: Any) -> ApiCallSettings:
    """The request settings of the lm-eval API ``model``."""
    return ApiCallSettings(max(1, int(model._concurrent)), max(1, int(model._batch_size)),
                           int(model._seed), max(1, int(model.max_retries)))


def api_payload(model: Any, messages: Any, generate: bool, gen_kwargs: dict[str, Any] | None,
                **kwargs: Any) -> Any:
    """The JSON body the lm-eval API ``model`` posts for ``messages``, built as its own
    ``model_call`` builds it."""
    return model._create_payload(model.create_message(messages), generate=generate,
                                 gen_kwargs=copy.deepcopy(gen_kwargs), seed=model._seed,
                                 eos=model.eos_string, **kwargs)
