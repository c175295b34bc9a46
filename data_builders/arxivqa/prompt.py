"""The generation prompt (500xCompressor paper, appendix A.2) and how many pairs to ask for."""

from __future__ import annotations

from pathlib import Path

from bench.substrate.errors import InputError

CONTEXT_FIELD = "{truncated_context}"
NUMBER_FIELD = "{number}"

DEFAULT_TEMPLATE = (
    "context: {truncated_context}\n"
    "task: design the {number} best extractive question answering pairs for the context to "
    "test information loss\n"
    "requirement: the question should be direct; the question should try to use the same "
    "words in the context; the answer should directly appear in the context (a span of the "
    "context); the answer should not be in the question; just output the results in format "
    "and do not output other words\n"
    'output json format: [{"id":1, "question": "", "answer": ""}, ...]'
)


def load_template(path: Path | None) -> str:
    """The default template, or one read from ``path`` (must contain both placeholders)."""
    if path is None:
        return DEFAULT_TEMPLATE
    data = path.read_bytes()
    try:
        template = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(f"not UTF-8 (byte 0x{data[error.start]:02x})", path, line,
                         hint="save the prompt template as UTF-8") from None
    for field in (CONTEXT_FIELD, NUMBER_FIELD):
        if field not in template:
            raise InputError(f"prompt template {path}: missing the placeholder {field}")
    return template


def render(template: str, context: str, number: int) -> str:
    """Fill the two placeholders (plain replacement: JSON braces in the template stay as is)."""
    return template.replace(NUMBER_FIELD, str(number)).replace(CONTEXT_FIELD, context)


def pairs_for(n_tokens: int, per_96_tokens: float) -> int:
    """Pairs to ask for: ``per_96_tokens`` per 96 tokens of context, at least one."""
    return max(1, round(per_96_tokens * n_tokens / 96))
