"""Conversation rows: role names, ShareGPT turns, named chat templates and text previews."""

from __future__ import annotations

import json
import logging
from typing import Any

logger = logging.getLogger(__name__)

KNOWN_ROLES = frozenset({"system", "user", "assistant", "tool"})
"""Roles that TRL's conversational format and common chat templates accept."""

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
"""Mapping from ShareGPT `from` values to `role` values. Any other `from` value rejects its row."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""ChatML with `{% generation %}` markers, so TRL's assistant-only loss finds the assistant tokens."""

NAMED_CHAT_TEMPLATES = {"chatml": CHATML_TEMPLATE}
"""Chat templates that a caller can choose by name for a tokenizer that ships none."""


class UnknownRoleError(ValueError):
    """A turn names a role that no mapping covers."""

    def __init__(self, role: object, turn_index: int):
        super().__init__(f"turn {turn_index} has unknown role {role!r}")
        self.role = role
        self.turn_index = turn_index


def resolve_chat_template(choice: str) -> str:
    """Return the template text for a template name such as `chatml`, or `choice` itself when it is Jinja text."""
    if choice in NAMED_CHAT_TEMPLATES:
        return NAMED_CHAT_TEMPLATES[choice]
    if "{%" in choice or "{{" in choice:
        return choice
    known = ", ".join(sorted(NAMED_CHAT_TEMPLATES))
    raise ValueError(f"Unknown chat template name {choice!r}; choose one of: {known}, or pass Jinja template text.")


def is_sharegpt_turns(value: object) -> bool:
    """Tell whether `value` is a list of ShareGPT turns (dicts with `from` and `value`)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(turn, dict) and "from" in turn and "value" in turn for turn in value)
    )


def sharegpt_to_messages(turns: list[dict]) -> list[dict]:
    """Convert ShareGPT turns to `role`/`content` messages.

    Raises:
        UnknownRoleError: If a turn's `from` value is not in `SHAREGPT_ROLES`.
    """
    messages = []
    for index, turn in enumerate(turns):
        role = SHAREGPT_ROLES.get(turn["from"])
        if role is None:
            raise UnknownRoleError(turn["from"], index)
        messages.append({"role": role, "content": turn["value"]})
    return messages


def is_message_list(value: object) -> bool:
    """Tell whether `value` looks like a list of chat messages (dicts with a `role` key)."""
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def prompt_completion_to_messages(prompt: object, completion: object) -> list[dict]:
    """Join a prompt and its completion, each a string or a message list, into one message list."""
    prompt_messages = prompt if is_message_list(prompt) else [{"role": "user", "content": prompt}]
    completion_messages = completion if is_message_list(completion) else [{"role": "assistant", "content": completion}]
    return [*prompt_messages, *completion_messages]


def preview_row(row: dict[str, Any], *, max_chars: int = 500) -> str:
    """Render a row as short readable text, whatever its content types (None, lists, tool calls)."""
    lines = []
    for key, value in row.items():
        if is_message_list(value):
            for message in value:
                content = message.get("content")
                if content is None:
                    text = ""
                elif isinstance(content, str):
                    text = content
                else:
                    text = json.dumps(content)
                if message.get("tool_calls"):
                    text += f" [tool calls: {json.dumps(message['tool_calls'], default=str)}]"
                lines.append(f"{key}/{message.get('role')}: {text}")
        else:
            lines.append(f"{key}: {value if isinstance(value, str) else json.dumps(value, default=str)}")
    preview = "\n".join(lines)
    return preview if len(preview) <= max_chars else preview[: max_chars - 3] + "..."
