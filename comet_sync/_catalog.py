"""``client.models`` and ``client.embeddings``."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from cachetools import TTLCache

from ._config import TimeoutArg
from ._exceptions import InvalidArgumentError
from ._models import CreateEmbeddingResponse, Model
from ._params import NOT_GIVEN, NotGiven, plain_params
from ._raw import WithRawResponse
from ._records import RequestRecord

if TYPE_CHECKING:
    from ._client import CallPath

__all__ = ["Embeddings", "ModelPage", "Models"]

# The catalogue changes a few times a week; ten minutes keeps a busy process from asking for
# it on every view while still noticing a new model soon.
DEFAULT_MODELS_TTL = 600.0


class ModelPage(list["Model"]):
    """The models list: a list of :class:`Model`, with ``.data`` (itself) so that code
    written for openai-python's page (``client.models.list().data``) ports unchanged."""

    @property
    def data(self) -> list[Model]:
        return self

    object = "list"


class Models:
    """``client.models``: the model catalogue, cached per client."""

    def __init__(self, calls: CallPath, ttl: float) -> None:
        self._calls = calls
        # One entry; the lock guards it (cachetools caches are not thread-safe).
        self._lock = threading.Lock()
        self._cache: TTLCache[str, list[Model]] = TTLCache(1, ttl, timer=calls.clock.monotonic)

    def list(self, *, refresh: bool = False) -> ModelPage:
        """Every model ``GET /models`` lists; from the cache unless ``refresh=True``. A list,
        which also has openai-python's ``.data``."""
        if not refresh:
            with self._lock:
                cached = self._cache.get("models")
            if cached is not None:
                return ModelPage(cached)
        data = self._calls.json(
            "GET", "/models", None, options=self._calls.options(), required=("data",)
        )
        items = data["data"] if isinstance(data["data"], list) else []
        models = [Model(item) for item in items if isinstance(item, dict) and "id" in item]
        with self._lock:
            self._cache["models"] = models
        return ModelPage(models)

    def retrieve(self, model: str) -> Model:
        """One model by id. CometAPI documents no per-model route, so this looks the id up in
        the (cached) list, refreshed once if the id is not there."""
        if not isinstance(model, str) or not model:
            raise InvalidArgumentError("model", f"expected a model id, got {model!r}")
        for refresh in (False, True):
            entry: Model
            for entry in self.list(refresh=refresh):
                if entry.id == model:
                    return entry
        raise InvalidArgumentError("model", f"{model!r} is not among the models /models lists")


class Embeddings:
    """``client.embeddings``."""

    def __init__(self, calls: CallPath) -> None:
        self._calls = calls

    @property
    def with_raw_response(self) -> WithRawResponse:
        """The same methods, returning a ``RawResponse`` (``.status_code``, ``.headers``,
        ``.request_id``, ``.parse()``) as openai-python's ``with_raw_response`` does."""
        return WithRawResponse(self)

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
        **params: Any,
    ) -> CreateEmbeddingResponse:
        """Embed a string or a list of them: ``.data[i].embedding``, ``.usage``.

        >>> client.embeddings.create(model="text-embedding-3-small", input="hello")
        """
        payload = _embedding_payload(
            {"model": model, "input": input, **params, **(extra_body or {})}
        )
        options = self._calls.options(
            timeout=timeout,
            max_retries=max_retries,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
        )
        return CreateEmbeddingResponse(
            self._calls.json("POST", "/embeddings", payload, options=options, required=("data",))
        )

    def _create_raw(
        self, params: dict[str, Any], *, sink: Callable[[RequestRecord], None]
    ) -> dict[str, Any]:
        """One call from a request body: the answer's raw JSON (for the batch engine)."""
        payload = _embedding_payload(params)
        options = self._calls.options()
        return self._calls.json(
            "POST", "/embeddings", payload, options=options, required=("data",), sink=sink
        )


def _embedding_payload(params: dict[str, Any]) -> dict[str, Any]:
    """The body, checked: nothing is sent if this raises."""
    params = plain_params(params)
    model, input = params.get("model"), params.get("input")
    if not isinstance(model, str) or not model.strip():
        raise InvalidArgumentError("model", f"expected a non-empty string, got {model!r}")
    if isinstance(input, str):
        if not input:
            raise InvalidArgumentError("input", "must not be empty")
    elif not isinstance(input, list) or not input:
        raise InvalidArgumentError("input", "expected a string or a non-empty list")
    elif not all(isinstance(item, (str, list)) for item in input):
        raise InvalidArgumentError("input", "list items must be strings or token lists")
    return params
