"""The text a served model's request carries, as the compression front end sees it.

A completions request carries a prompt string; a chat request carries messages (lm-eval's
JSON chat string), whose user message holds instruction, context and question as the
paper's prompt does. :class:`PromptView` exposes that text to the front end under the
request's document and puts the compressed text back in the same form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lm_eval.models.api_models import JsonChatStr

_ORIGINAL_PROMPT = "_compressbench_original_prompt"


def original_prompt(request: Any) -> Any:
    """The request's uncompressed prompt (lm-eval passes a repeated request more than once)."""
    if not hasattr(request, _ORIGINAL_PROMPT):
        setattr(request, _ORIGINAL_PROMPT, request.args[0])
        return request.args[0]
    original = getattr(request, _ORIGINAL_PROMPT)
    request.arguments = (original, *request.arguments[1:])
    return original


def dump_messages(messages: list[dict[str, Any]]) -> JsonChatStr:
    """Messages as lm-eval's chat string (the same JSON its chat template path writes)."""
    return JsonChatStr(json.dumps(messages, ensure_ascii=False))


@dataclass(frozen=True)
class PromptView:
    """One request's prompt text with the request's document, in the shape the front end
    reads (``args``, ``doc``, ``task_name``, ``doc_id``)."""

    text: str
    gen_kwargs: dict[str, Any]
    doc: dict[str, Any]
    task_name: str
    doc_id: int
    messages: tuple[dict[str, Any], ...] | None = None
    message_index: int = -1

    @property
    def args(self) -> tuple[str, dict[str, Any]]:
        return (self.text, self.gen_kwargs)

    @classmethod
    def of(cls, request: Any, prompt: Any, as_chat: bool) -> PromptView:
        """The view of ``request`` whose uncompressed prompt is ``prompt``."""
        where = f"task {request.task_name}, doc {request.doc_id}"
        common = {"gen_kwargs": request.args[1], "doc": request.doc,
                  "task_name": str(request.task_name), "doc_id": int(request.doc_id)}
        if isinstance(prompt, JsonChatStr):
            messages = json.loads(prompt.prompt)
            index = _context_message(messages, request.doc, where)
            return cls(text=messages[index]["content"], messages=tuple(messages),
                       message_index=index, **common)
        if not isinstance(prompt, str):
            raise TypeError(f"{where}: expected a prompt string, got {type(prompt).__name__}")
        if as_chat:
            return cls(text=prompt, messages=({"role": "user", "content": prompt},),
                       message_index=0, **common)
        return cls(text=prompt, **common)

    def rebuild(self, text: str) -> str | JsonChatStr:
        """The request's prompt with its text replaced by ``text``, in the original form."""
        if self.messages is None:
            return text
        messages = [dict(message) for message in self.messages]
        messages[self.message_index]["content"] = text
        return dump_messages(messages)


def _context_message(messages: Any, doc: dict[str, Any], where: str) -> int:
    """Index of the last user message holding the document's context."""
    context = doc.get("context")
    if not isinstance(messages, list) or not isinstance(context, str):
        raise ValueError(f"{where}: expected chat messages and a document with a string "
                         "field 'context'")
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str) and context in content:
            return index
    raise ValueError(f"{where}: no user message (with text content) contains the document's "
                     "context")
