"""``client.chat.completions``: create, submit, map."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from .. import _cancel
from .._call.streaming import Stream
from .._config import TimeoutArg
from .._exceptions import InvalidArgumentError
from .._fanout import ordered_map, window_for
from .._params import NOT_GIVEN, ChatCreateArgs, ChatParseArgs, NotGiven
from .._types import ChatCompletion
from .._validation import check_chat_params, check_stream
from .chat_raw import (
    ChatWithRawResponse,
    ChatWithStreamingResponse,
    CompletionsWithRawResponse,
    CompletionsWithStreamingResponse,
)
from .function_tools import argument_parsers
from .resource import Resource
from .structured import ParsedChatCompletion, content_format, parse_completion

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .._call.door import Door, Prepared

__all__ = ["Chat", "Completions"]

M = TypeVar("M")


class Completions(Resource):
    """Chat completions. Shared by every thread of the client, like the client itself."""

    route: ClassVar[str] = "/chat/completions"
    required: ClassVar[tuple[str, ...]] = ("choices",)

    @property  # typed by stream and response_format, unlike other resources'
    def with_raw_response(self) -> CompletionsWithRawResponse:  # type: ignore[override]
        """``create`` and ``parse`` returning a ``RawResponse`` (``.status_code``,
        ``.headers``, ``.request_id``, ``.parse()``) as openai-python's
        ``with_raw_response`` does."""
        return CompletionsWithRawResponse(self)

    @property
    def with_streaming_response(  # type: ignore[override]
        self,
    ) -> CompletionsWithStreamingResponse:
        """``create`` and ``parse`` as context managers: ``with ... as response`` sends the
        call and gives its head (``.status_code``, ``.headers``), then ``response.parse()``
        the body or, with ``stream=True``, the stream to read inside the block (openai-python's
        ``with_streaming_response``)."""
        return CompletionsWithStreamingResponse(self)

    @overload
    def create(self, *, stream: Literal[True], **params: Unpack[ChatCreateArgs]) -> Stream: ...

    @overload
    def create(
        self, *, stream: Literal[False] = False, **params: Unpack[ChatCreateArgs]
    ) -> ChatCompletion: ...

    @overload
    def create(
        self, *, stream: bool, **params: Unpack[ChatCreateArgs]
    ) -> ChatCompletion | Stream: ...

    def create(
        self,
        *,
        stream: bool = False,
        timeout: TimeoutArg | NotGiven = NOT_GIVEN,
        max_retries: int | None = None,
        total_timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, Any] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        fallbacks: Sequence[str] | None = None,
        **params: Any,
    ) -> ChatCompletion | Stream:
        """Send one chat completion and wait for it, retrying what can heal.

        ``params`` is the request body (``model``, ``messages`` and any other parameter, passed
        through as given; response objects such as a previous reply's message are accepted
        wherever a dict is, and ``NOT_GIVEN`` values are left out). ``timeout`` (None: no
        timeout), ``max_retries``, ``total_timeout`` and ``extra_headers`` override the
        client's settings for this call; ``extra_query`` adds query parameters and
        ``extra_body`` fields of the body.

        >>> completion = client.chat.completions.create(
        ...     model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello."}])
        >>> completion.choices[0].message.content
        'Hello.'

        With ``stream=True`` it returns a :class:`Stream` of chunks once the first one has
        arrived (retries happen only before that); use it in a ``with`` block.

        ``fallbacks`` names models to move on to, in order, when this one is unavailable,
        saturated or failing through all its retries (never for an error the request itself
        causes); the client's ``fallbacks`` apply when none are given. The record of a call
        made on a fallback says which model it left and why.
        """
        check_stream(stream)
        if stream:
            params["stream"] = True
        call = self._prepare(
            params,
            timeout=timeout,
            max_retries=max_retries,
            total_timeout=total_timeout,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
            fallbacks=fallbacks,
        )
        if stream:
            return self._door.post_stream(call, Stream)
        return self._run(call)

    @overload
    def parse(
        self, *, response_format: type[M], **params: Unpack[ChatParseArgs]
    ) -> ParsedChatCompletion[M]: ...

    @overload
    def parse(
        self,
        *,
        response_format: Mapping[str, Any] | NotGiven = NOT_GIVEN,
        **params: Unpack[ChatParseArgs],
    ) -> ParsedChatCompletion[None]: ...

    def parse(
        self, *, response_format: object = NOT_GIVEN, **kwargs: Any
    ) -> ParsedChatCompletion[Any]:
        """A completion in the shape of a pydantic model class: its strict JSON schema is sent
        as ``response_format`` and each choice's content comes back validated into it,
        ``completion.choices[0].message.parsed`` (None when the model refused). Calls to
        strict function tools (``tools=[pydantic_function_tool(Model)]``, or a dict tool with
        ``"strict": True``) come back with ``tool_call.function.parsed_arguments``; either
        may be given without the other. Every other argument is :meth:`create`'s; it does
        not stream. Needs pydantic v2.

        As openai-python's: content that does not fit the class raises pydantic's
        ``ValidationError``; a reply cut at the token limit raises
        :class:`LengthFinishReasonError`, one the content filter stopped
        :class:`ContentFilterFinishReasonError`; a tool that is not a strict function tool
        is refused before anything is sent.

        >>> class Capital(BaseModel):
        ...     city: str
        ...     country: str
        >>> client.chat.completions.parse(model="gpt-4o-mini", messages=msgs,
        ...                               response_format=Capital).choices[0].message.parsed
        Capital(city='Rome', country='Italy')
        """
        if kwargs.get("stream"):
            raise InvalidArgumentError("stream", "parse() cannot stream: use create(stream=True)")
        tools, argument_parser = argument_parsers(kwargs.get("tools"))
        if tools is not None:
            kwargs["tools"] = tools
        wire_format, content_parser = content_format(response_format)
        if wire_format is not None:
            kwargs["response_format"] = wire_format
        completion = self.create(**kwargs)
        return parse_completion(completion.to_dict(), content_parser, argument_parser)

    def submit(self, **kwargs: Any) -> Future[ChatCompletion]:
        """Run :meth:`create` on the client's bounded executor.

        The arguments are checked now, in the calling thread, so a wrong one raises here
        rather than from the future.
        """
        call = self._prepare_job(kwargs, "submit()")
        # The caller's context (a deadline block, say) goes with the call to the worker.
        return self._door.runtime.submit(_model_of(call.body), self._run, call)

    @overload
    def map(
        self,
        jobs: Iterable[Mapping[str, Any]],
        *,
        return_exceptions: Literal[False] = False,
        window: int | None = None,
    ) -> Iterator[ChatCompletion]: ...

    @overload
    def map(
        self,
        jobs: Iterable[Mapping[str, Any]],
        *,
        return_exceptions: bool,
        window: int | None = None,
    ) -> Iterator[ChatCompletion | BaseException]: ...

    def map(
        self,
        jobs: Iterable[Mapping[str, Any]],
        *,
        return_exceptions: bool = False,
        window: int | None = None,
    ) -> Iterator[ChatCompletion | BaseException] | Iterator[ChatCompletion]:
        """Run many calls on the client's executor and yield their results in input order.

        ``jobs`` is any iterable of keyword dicts for :meth:`create`; it is read lazily, with at
        most ``window`` jobs (default: four times the executor's workers, at least 1,024)
        submitted ahead of the result being yielded, so a generator of a million jobs is never
        held in memory.
        With ``return_exceptions=True`` a failed job yields its exception in its place;
        otherwise the first failure is raised.

        However the loop ends before the last job (a failure, ``break`` and the iterator
        dropped or closed, Ctrl-C), the map stops: jobs not started are cancelled and calls
        already on the wire are abandoned, so nothing more is sent for it. Jobs are handed
        to the executor only as its workers can take them, and only while the loop pulls.

        >>> jobs = ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": p}]}
        ...         for p in prompts)
        >>> for completion in client.chat.completions.map(jobs):
        ...     print(completion.choices[0].message.content)
        """
        runtime = self._door.runtime
        runtime.check_open()
        size = window if window is not None else window_for(runtime.max_workers)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidArgumentError("window", f"expected an int >= 1, got {window!r}")
        context = contextvars.copy_context()
        # The map's own scope: stopping it stops its jobs, not the client's other calls.
        scope = runtime.scope("the map")

        def submit(job: Mapping[str, Any]) -> Future[ChatCompletion]:
            # Each job in a copy of the context map() was called in (a deadline block).
            return context.run(runtime.submit, _model_of(job), self._call_job, job, scope)

        return ordered_map(
            submit,
            jobs,
            window=size,
            # Each model's executor runs max_workers jobs; more submitted would only queue.
            ahead=runtime.max_workers,
            key=_model_of,
            return_exceptions=return_exceptions,
            on_exit=scope.abandon,
        )

    def _call_job(self, job: Mapping[str, Any], scope: _cancel.Scope) -> ChatCompletion:
        if not isinstance(job, Mapping):
            raise InvalidArgumentError("jobs", f"each job must be a dict, got {type(job).__name__}")
        with _cancel.entered(scope):
            scope.raise_if_stopped()
            if not job.get("stream"):
                # stream=False, or None, is create()'s default: no reason to refuse the job.
                job = {k: v for k, v in job.items() if k != "stream"}
            return self._run(self._prepare_job(job, "a map job"))

    def _run(self, call: Prepared) -> ChatCompletion:
        return ChatCompletion(self._door.post_json(call, self.required))

    def _check(self, body: Mapping[str, Any]) -> None:
        check_chat_params(body)


def _model_of(job: object) -> str | None:
    model = job.get("model") if isinstance(job, Mapping) else None
    return model if isinstance(model, str) else None


class Chat:
    """``client.chat``: ``.completions``."""

    completions: Completions

    def __init__(self, door: Door) -> None:
        self.completions = Completions(door)

    @property
    def with_raw_response(self) -> ChatWithRawResponse:
        """``client.chat.with_raw_response.completions``, as openai-python has it."""
        return ChatWithRawResponse(self.completions)

    @property
    def with_streaming_response(self) -> ChatWithStreamingResponse:
        """``client.chat.with_streaming_response.completions``, as openai-python has it."""
        return ChatWithStreamingResponse(self.completions)
