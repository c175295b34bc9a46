"""The text a served model's request carries, as the compression front end sees it.

A completions request carries a prompt string; a chat request carries messages (lm-eval's
JSON chat string), whose user message holds instruction, context and question as the
paper's prompt does. :class:`PromptView` exposes that text to the front end under the
request's document and puts the compressed text back in the same form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.lmeval.adapter import GenerationRequest, chat_messages, chat_prompt
from bench.substrate.errors import InputError


@dataclass(frozen=True)
class PromptView:
    """One request's prompt text with the request's document, in the shape the front end
    reads (``text``, ``doc``, ``task_name``, ``doc_id``)."""

    text: str
    gen_kwargs: dict[str, Any]
    doc: dict[str, Any]
    task_name: str
    doc_id: int
    messages: tuple[dict[str, Any], ...] | None = None
    message_index: int = -1

    @classmethod
    def of(cls, request: GenerationRequest, as_chat: bool) -> PromptView:
        """The view of ``request`` (read with its uncompressed prompt)."""
        common: dict[str, Any] = {"gen_kwargs": request.gen_kwargs, "doc": request.doc,
                                  "task_name": request.task_name, "doc_id": request.doc_id}
        messages = chat_messages(request.prompt)
        if messages is not None:
            index = _context_message(messages, request.doc, request.where)
            return cls(text=messages[index]["content"], messages=tuple(messages),
                       message_index=index, **common)
        prompt = request.text
        if as_chat:
            return cls(text=prompt, messages=({"role": "user", "content": prompt},),
                       message_index=0, **common)
        return cls(text=prompt, **common)

    def rebuild(self, text: str) -> Any:
        """The request's prompt with its text replaced by ``text``, in the original form (a
        string, or lm-eval's chat form)."""
        if self.messages is None:
            return text
        messages = [dict(message) for message in self.messages]
        messages[self.message_index]["content"] = text
        return chat_prompt(messages)


def _context_message(messages: Any, doc: dict[str, Any], where: str) -> int:
    """Index of the last user message holding the document's context."""
    context = doc.get("context")
    if not isinstance(messages, list) or not isinstance(context, str):
        raise InputError(f"{where}: expected chat messages and a document with a string "
                         "field 'context'")
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str) and context in content:
            return index
    raise InputError(f"{where}: no user message (with text content) contains the document's "
                     "context")
