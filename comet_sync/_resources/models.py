"""``client.models``: the model catalogue, cached per client (and what it sends)."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Callable, ClassVar

from cachetools import TTLCache

from .._exceptions import InvalidArgumentError
from .._types import Model
from .resource import Resource

if TYPE_CHECKING:
    from .._call.door import Door

__all__ = ["DEFAULT_MODELS_TTL", "ModelPage", "Models", "ModelsCache"]

# The catalogue changes a few times a week; ten minutes keeps a busy process from asking for
# it on every view while still noticing a new model soon.
DEFAULT_MODELS_TTL = 600.0
# Distinct sets of default headers and query a client's views send, each with its own cached
# catalogue. Views are made per request, but with a handful of settings (a header per tenant);
# past this many the least recently used entry goes, costing one more GET /models.
MAX_CACHED_CATALOGUES = 32


class ModelPage(list["Model"]):
    """The models list: a list of :class:`Model`, with ``.data`` (itself) so that code
    written for openai-python's page (``client.models.list().data``) ports unchanged."""

    @property
    def data(self) -> list[Model]:
        return self

    object = "list"


class ModelsCache:
    """A client's cached catalogues, shared by its ``with_options`` views: one entry for each
    set of default headers and query parameters sent, since those may change the answer (a
    tenant header, say), while a view that only changes timeouts finds its parent's entry.
    Built with the client's runtime, so a forked child gets a fresh lock."""

    def __init__(self, ttl: float, timer: Callable[[], float]) -> None:
        # The lock guards the entries (cachetools caches are not thread-safe).
        self._lock = threading.Lock()
        self._entries: TTLCache[Hashable, list[Model]] = TTLCache(
            MAX_CACHED_CATALOGUES, ttl, timer=timer
        )

    def get(self, key: Hashable) -> list[Model] | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: Hashable, models: list[Model]) -> None:
        with self._lock:
            self._entries[key] = models


class Models(Resource):
    """``client.models``: the model catalogue, cached per client and what it sends. Its
    ``with_raw_response`` gives a list served from the cache with no head of its own: status
    200, no headers."""

    route: ClassVar[str] = "/models"
    required: ClassVar[tuple[str, ...]] = ("data",)

    def __init__(self, door: Door, catalogues: Callable[[], ModelsCache]) -> None:
        super().__init__(door)
        # The client's cached catalogues, which its views share; asked for on each call, since
        # a forked child builds its own.
        self._catalogues = catalogues

    def list(self, *, refresh: bool = False) -> ModelPage:
        """Every model ``GET /models`` lists; from the cache unless ``refresh=True``. A list,
        which also has openai-python's ``.data``."""
        cache, key = self._catalogues(), self._door.sent_by_default()
        if not refresh:
            cached = cache.get(key)
            if cached is not None:
                return ModelPage(cached)
        data = self._door.get_json(self.route, self.required)
        items = data["data"] if isinstance(data["data"], list) else []
        models = [Model(item) for item in items if isinstance(item, dict) and "id" in item]
        cache.put(key, models)
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
