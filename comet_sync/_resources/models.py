"""``client.models``: the model catalogue, cached per client."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from cachetools import TTLCache

from .._exceptions import InvalidArgumentError
from .._types import Model

if TYPE_CHECKING:
    from .._client import CallPath

__all__ = ["DEFAULT_MODELS_TTL", "ModelPage", "Models"]

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
