"""What every resource (``chat.completions``, ``responses``, ``embeddings``, ``models``) has:
its client's door, the raw-response views of its methods, and the preparing of a call."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar, TypeVar

from .._exceptions import CometError, ResponseSnapshot
from .._params import CALL_OPTION_NAMES
from .raw import WithRawResponse, WithStreamingResponse

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._call.door import Door, Prepared
    from .._params import CallOptionParams
    from .._records import RequestRecord

__all__ = ["Resource"]

R = TypeVar("R", bound="Resource")


class Resource:
    """One resource of one client or view. Shared by every thread, like the client itself."""

    # Where its calls go, and what each answer must hold to be one.
    route: ClassVar[str]
    required: ClassVar[tuple[str, ...]]
    # Whether only the call's own fallbacks or a client default naming its model apply (not a
    # client-wide list or a "*" entry).
    named_fallbacks_only: ClassVar[bool] = False

    def __init__(self, door: Door) -> None:
        self._door = door

    @property
    def with_raw_response(self) -> WithRawResponse:
        """The same methods, returning a ``RawResponse`` (``.status_code``, ``.headers``,
        ``.request_id``, ``.parse()``) as openai-python's ``with_raw_response`` does."""
        return WithRawResponse(self)

    @property
    def with_streaming_response(self) -> WithStreamingResponse:
        """The same methods as context managers giving a ``RawResponse`` (openai-python's
        ``with_streaming_response``): the call is sent when the ``with`` block is entered."""
        return WithStreamingResponse(self)

    def _capturing(self: R, on_head: Callable[[ResponseSnapshot], None]) -> R:
        """This resource on a door that hands ``on_head`` the head of each answer: what a
        ``with_raw_response`` call runs on, so the head comes back up the way the answer
        does (everything else, a catalogue cache included, is shared with this one)."""
        twin = copy.copy(self)
        twin._door = self._door.capturing(on_head)
        return twin

    def _check(self, body: Mapping[str, Any]) -> None:
        """Refuse a body this resource cannot send (raising ``InvalidArgumentError``)."""
        raise NotImplementedError

    def _prepare(
        self,
        params: Mapping[str, Any],
        *,
        streaming: str | None = None,
        **options: Unpack[CallOptionParams],
    ) -> Prepared:
        """Check everything and build the call; nothing is sent if this raises."""
        return self._door.prepare(
            self.route,
            params,
            self._check,
            streaming=streaming,
            named_fallbacks_only=self.named_fallbacks_only,
            **options,
        )

    def _prepare_job(self, job: Mapping[str, Any], streaming: str) -> Prepared:
        """A call from one dict of ``create``'s keywords (a future's, a map job's): the
        options are taken out by name, the rest is the body."""
        params = dict(job)
        options: Any = {name: params.pop(name) for name in CALL_OPTION_NAMES if name in params}
        return self._prepare(params, streaming=streaming, **options)

    def _answer_line(
        self, body: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | CometError, RequestRecord | None]:
        """A batch line's call, from its request body (its ``fallbacks`` taken out, every
        other key sent): the answer's raw JSON, or the error the call ended with; and the
        record of the last model tried (None when nothing was sent), which gives the line
        its attempts and latency."""
        params = dict(body)
        fallbacks = params.pop("fallbacks", None)
        records: list[RequestRecord] = []
        try:
            call = self._prepare(params, streaming="a batch job", fallbacks=fallbacks)
            answer: dict[str, Any] | CometError = self._door.post_json(
                call, self.required, sink=records.append
            )
        except CometError as exc:
            answer = exc
        return answer, records[-1] if records else None
