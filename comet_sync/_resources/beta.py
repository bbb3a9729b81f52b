"""``client.beta``: where openai-python 1.x kept ``parse`` (``client.beta.chat.completions.parse``),
the path most code written for it still calls. Here it is ``client.chat`` itself, not a copy, so
the two paths can never drift apart."""

from __future__ import annotations

from .chat import Chat

__all__ = ["Beta"]


class Beta:
    """``client.beta.chat``: the client's ``chat``."""

    chat: Chat

    def __init__(self, chat: Chat) -> None:
        self.chat = chat
