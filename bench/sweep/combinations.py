"""The compressors of a sweep: ``--compressors`` read, expanded and checked before any load.

``--compressors "none;truncate:rate=0.5,0.25;llmlingua2:rate=0.33"``: entries separated by
``;``, each a compressor name with, after ``:``, its options as in ``--model_args``
(``key=value`` joined by ``,``). A comma item without ``=`` is one more value of the option
before it, so ``rate=0.5,0.25`` is two values; every option with several values multiplies
the entry, in the order written (``selective_context:rate=0.5,0.25,unit=token,sentence`` is
four combinations).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.substrate.errors import InputError

FIELD = "--compressors"
ENTRY_SEPARATOR = ";"
NAME_SEPARATOR = ":"
OPTION_SEPARATOR = ","


@dataclass(frozen=True)
class Combination:
    """One compressor with one value per option, in the order the options were written."""

    compressor: str
    options: tuple[tuple[str, str], ...] = ()

    def options_text(self) -> str:
        """The options as ``--model_args`` writes them: ``rate=0.5,seed=0``."""
        return OPTION_SEPARATOR.join(f"{key}={value}" for key, value in self.options)

    def label(self) -> str:
        """``truncate (rate=0.5)``, or the bare name without options."""
        options = ", ".join(f"{key}={value}" for key, value in self.options)
        return f"{self.compressor} ({options})" if options else self.compressor


def parse_compressors(spec: str) -> list[Combination]:
    """Every combination ``spec`` names, entry by entry; a malformed entry or one
    combination written twice is an :class:`InputError`."""
    entries = [entry.strip() for entry in spec.split(ENTRY_SEPARATOR)]
    while entries and not entries[-1]:
        entries.pop()  # a trailing separator
    if not entries:
        raise InputError("no compressor given", field=FIELD,
                         hint='write e.g. "none;truncate:rate=0.5,0.25"')
    combinations: list[Combination] = []
    for entry in entries:
        for combination in _expand(entry):
            if combination in combinations:
                raise InputError(f"{combination.label()} is named twice", field=FIELD)
            combinations.append(combination)
    return combinations


def _expand(entry: str) -> list[Combination]:
    if not entry:
        raise InputError(f"an empty entry between two {ENTRY_SEPARATOR!r}", field=FIELD)
    name, _, options_text = (part.strip() for part in entry.partition(NAME_SEPARATOR))
    if not name or any(character in name for character in "=,"):
        raise InputError(f"entry {entry!r} does not start with a compressor name", field=FIELD,
                         hint="write NAME or NAME:key=value,...")
    values = _option_values(options_text, entry) if options_text else {}
    keys = list(values)
    return [Combination(name, tuple(zip(keys, chosen, strict=True)))
            for chosen in itertools.product(*values.values())]


def _option_values(text: str, entry: str) -> dict[str, list[str]]:
    """``rate=0.5,0.25,seed=0`` -> ``{"rate": ["0.5", "0.25"], "seed": ["0"]}``."""
    values: dict[str, list[str]] = {}
    current: list[str] | None = None
    for item in (part.strip() for part in text.split(OPTION_SEPARATOR)):
        key, has_key, value = item.partition("=")
        if has_key:
            key = key.strip()
            if not key or key in values:
                problem = "an option without a name" if not key else f"option {key} twice"
                raise InputError(f"entry {entry!r} has {problem}", field=FIELD)
            current = values[key] = []
            item = value.strip()
        if current is None:
            raise InputError(f"entry {entry!r}: {item!r} is not key=value", field=FIELD)
        if not item or item in current:
            problem = "an empty value" if not item else f"the value {item!r} twice"
            raise InputError(f"entry {entry!r} has {problem}", field=FIELD)
        current.append(item)
    return values


def check_combinations(combinations: Iterable[Combination], model: str,
                       text_only: bool) -> None:
    """Refuse, before anything is loaded, an unknown compressor (with the closest names),
    an option it does not take or a value it cannot read, a ``rate`` outside [0, 1], and
    (``text_only``: the ``model`` reads text) a compressor that feeds vectors to the model."""
    from bench.compressors import available_compressors

    known = available_compressors()
    for combination in combinations:
        if combination.compressor not in known:
            raise InputError(f"unknown compressor {combination.compressor!r}"
                             f"{suggestion(combination.compressor, known)}", field=FIELD,
                             hint="`python -m bench eval --help` lists the compressors")
        check_options(combination, _typed(combination.options))
        if text_only:
            _check_text_output(combination, model)


def check_options(combination: Combination, options: Mapping[str, Any]) -> None:
    """The options read as the compressor's factory reads them, without building it
    (:func:`bench.compressors.validate_options`): an option it does not take (with the closest
    it takes), a value it cannot read or outside the option's declared range (``rate`` in
    [0, 1])."""
    from bench.compressors import validate_options

    try:
        validate_options(combination.compressor, options)
    except InputError as error:
        raise InputError(error.problem, field=FIELD) from error


def _check_text_output(combination: Combination, model: str) -> None:
    from bench.compressors import capabilities_of

    family = capabilities_of(combination.compressor).family
    if family.feeds_the_model:
        raise InputError(f"--model {model} answers from text; compressor "
                         f"{combination.compressor!r} ({family.value}) feeds vectors into the "
                         "target model", field=FIELD, hint="use --model compressed")


def _typed(options: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The options with the types lm-eval gives ``--model_args`` values."""
    from bench.lmeval.run import parse_model_args

    return parse_model_args(OPTION_SEPARATOR.join(f"{key}={value}" for key, value in options))


def suggestion(name: str, known: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for the known names closest to ``name``, else nothing."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(match) for match in close)}?)" if close else ""
