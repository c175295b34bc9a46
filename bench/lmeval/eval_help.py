"""``python -m bench eval --help``: the compressbench models, the compressors and their
options (read from the compressor registry, so plug-ins appear too), then lm-eval's flags."""

from __future__ import annotations

import re
import textwrap

from bench.compressors import (
    ENTRY_POINT_GROUP,
    OptionDoc,
    available_compressors,
    get_compressor_factory,
    option_docs,
    options_type_of,
)
from bench.demo import MODEL_FOLDER
from bench.lmeval.plugin import MODELS
from bench.lmeval.task_list import read_tasks

__all__ = ["MODEL_HELP", "compressors_help", "eval_help"]

WIDTH = 96
MODEL_HELP = {
    "compressed": (
        "pretrained=HF_ID_OR_PATH,compressor=NAME[,OPTION=VALUE...]",
        "compresses the context of each request, then answers with the Hugging Face causal "
        "LM through lm-eval's hf backend; keys of that backend (dtype, revision, device, "
        "max_length, ...) go to it; compression_cache=off|DIR (default: the user cache "
        "directory)",
    ),
    "compressed_reader": (
        "tokenizer=HF_ID_OR_PATH,compressor=NAME[,OPTION=VALUE...]",
        "answers with a non-neural lexical extractive reader (rates counted in tokenizer's "
        "tokens): meaningful scores on a CPU without a trained model",
    ),
    "compressed_completions": (
        "model=NAME,base_url=URL/v1/completions,tokenizer=HF_ID|tiktoken:ENCODING,"
        "compressor=NAME[,...]",
        "a served model behind an OpenAI-compatible completions endpoint (lm-eval's "
        "local-completions); hard compressors only; the key is read from api_key_env "
        "(default OPENAI_API_KEY)",
    ),
    "compressed_chat_completions": (
        "model=NAME,base_url=URL/v1/chat/completions,tokenizer=...,compressor=NAME[,...]",
        "as compressed_completions, through the chat endpoint (lm-eval's "
        "local-chat-completions)",
    ),
}
EXAMPLE = (  # after `python -m bench demo`, in the folder it ran in
    "COMPRESSBENCH_DATA=compressbench-demo/data "
    "python -m bench eval --model compressed --tasks compressed_squad "
    f"--model_args pretrained=compressbench-demo/{MODEL_FOLDER},compressor=truncate,rate=0.5 "
    "--output_path runs/ --log_samples"
)


_REFERENCE_IN_PARENS = re.compile(r"\s*\((?:see |as in )?:\w+:`[^`]+`\)")
_REFERENCE = re.compile(r":\w+:`~?\.?([^`]+)`")


def _plain(text: str) -> str:
    """Docstring text as help text: cross-references in parentheses dropped, other reST
    markup dropped, whitespace collapsed."""
    text = _REFERENCE_IN_PARENS.sub("", text)
    text = _REFERENCE.sub(lambda match: match.group(1).rsplit(".", 1)[-1], text)
    return " ".join(text.replace("``", "").split())


def _wrap(text: str, indent: str, later: str | None = None) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent,
                         subsequent_indent=indent if later is None else later,
                         break_on_hyphens=False) or [indent.rstrip()]


def option_line(doc: OptionDoc) -> str:
    """One option as the help lists it: name, type, default, accepted range and purpose."""
    parts = [doc.type, f"default: {doc.default}"]
    if doc.accepts is not None:
        parts.append(f"accepts {doc.accepts}")
    line = f"{doc.name} ({'; '.join(parts)})"
    return f"{line}: {doc.about}" if doc.about else line


def _compressor_lines(name: str) -> list[str]:
    factory = get_compressor_factory(name)
    lines = [f"  {name}"]
    summary = _plain((factory.__doc__ or "").strip().split("\n\n")[0])
    if summary:
        lines += _wrap(summary, "      ")
    options_type = options_type_of(name)
    if options_type is None:
        lines += _wrap("options: not declared through parse_options; see the compressor's "
                       "own documentation", "      ")
        return lines
    docs = option_docs(options_type)
    if not docs:
        return [*lines, "      options: none"]
    for doc in docs:
        lines += _wrap(option_line(doc), "      ", "          ")
    described = _plain(options_type.__doc__ or "")
    documented = any(doc.about for doc in docs)
    if described and not documented and not described.startswith(f"{options_type.__name__}("):
        lines += _wrap(described, "        ")
    return lines


def compressors_help() -> str:
    """Every registered compressor with its summary and options, one block each."""
    lines = [f"compressors (compressor=NAME, then OPTION=VALUE; built in, or plug-ins of the "
             f"entry-point group {ENTRY_POINT_GROUP}):"]
    for name in available_compressors():
        lines += _compressor_lines(name)
    return "\n".join(lines)


def _models_help() -> str:
    lines = ["models (--model NAME --model_args ...):"]
    for name in MODELS:
        arguments, text = MODEL_HELP[name]
        lines.append(f"  {name}")
        lines += _wrap(arguments, "      ")
        lines += _wrap(text, "      ")
    lines += _wrap("--model hf (lm-eval's own backend) runs the same tasks uncompressed.", "  ")
    return "\n".join(lines)


def lm_eval_flags_help(program: str = "python -m bench") -> str:
    """lm-eval's ``run`` options, without its examples of unrelated tasks."""
    from bench.lmeval.adapter import run_command_parser

    run = run_command_parser()
    run.prog = f"{program} eval"
    if run.usage:
        run.usage = run.usage.replace("lm-eval run", run.prog)
    run.epilog = None
    run.description = None
    return str(run.format_help())


def eval_help(program: str = "python -m bench") -> str:
    """The whole ``python -m bench eval --help`` text (``program``: how the command was run)."""
    intro = (
        f"usage: {program} eval --model MODEL --model_args ARGS --tasks TASKS "
        "[lm-eval flags]\n\n"
        "lm-eval's run command with the compressbench models and tasks registered; the same "
        "as the stock `lm_eval` with the same flags.\n\n"
        f"example:\n  {EXAMPLE.replace('python -m bench', program)}\n"
    )
    groups = [f"{entry.name} ({', '.join(entry.members)})" for entry in read_tasks()
              if entry.is_group]
    tasks = (f"tasks: {'; '.join(groups)}; `python -m bench tasks` lists them with the data "
             "each needs.")
    parts = [intro, _models_help(), compressors_help(), "\n".join(_wrap(tasks, "")),
             "lm-eval flags:\n" + lm_eval_flags_help(program)]
    return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"
