"""``client.embeddings``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .._config import TimeoutArg
from .._exceptions import InvalidArgumentError
from .._params import NOT_GIVEN, NotGiven
from .._types import CreateEmbeddingResponse
from .resource import Resource

__all__ = ["Embeddings"]


class Embeddings(Resource):
    """``client.embeddings``."""

    route: ClassVar[str] = "/embeddings"
    required: ClassVar[tuple[str, ...]] = ("data",)
    # An embedding from another model lives in another vector space: mixed into one index it
    # matches nothing, silently. So a client-wide list or a "*" entry (written with chat
    # models in mind) never moves an embedding; the call's own fallbacks, or an entry naming
    # its model, do: the user chose those for it.
    named_fallbacks_only: ClassVar[bool] = True

    def create(
        self,
        *,
        model: str,
        input: str | list[Any],
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        total_timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        fallbacks: Sequence[str] | None = None,
        **params: Any,
    ) -> CreateEmbeddingResponse:
        """Embed a string or a list of them: ``.data[i].embedding``, ``.usage``. The options
        are those of ``chat.completions.create``, ``fallbacks`` included.

        >>> client.embeddings.create(model="text-embedding-3-small", input="hello")
        """
        call = self._prepare(
            {"model": model, "input": input, **params},
            timeout=timeout,
            max_retries=max_retries,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
            fallbacks=fallbacks,
        )
        return CreateEmbeddingResponse(self._door.post_json(call, self.required))

    def _check(self, body: Mapping[str, Any]) -> None:
        model, input = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model.strip():
            raise InvalidArgumentError("model", f"expected a non-empty string, got {model!r}")
        if isinstance(input, str):
            if not input:
                raise InvalidArgumentError("input", "must not be empty")
        elif not isinstance(input, list) or not input:
            raise InvalidArgumentError("input", "expected a string or a non-empty list")
        elif not all(isinstance(item, (str, list)) for item in input):
            raise InvalidArgumentError("input", "list items must be strings or token lists")
