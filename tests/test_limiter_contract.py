"""The limiter contract (``comet_sync/_rate/protocol.py``), run against both implementations:
the process-local ``Limiter`` and ``contrib.redis.RedisLimiter`` on a real redis-server.

What is asserted is what a client relies on whichever limiter it is given: a permit when
there is room, a ``LimiterTimeoutError`` naming what held the send when there is none within
the timeout, one release per permit (a second is a no-op) from any thread, a wait that ends
when the asking call's stop scope (given as ``scope=``) stops, and a state that counts what is
in flight and can be read while calls run.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from comet_sync import ClientClosedError, Clock, LimiterTimeoutError
from comet_sync._cancel import Scope
from comet_sync._config import RateControl
from comet_sync._rate.limiter import Limiter
from comet_sync._rate.protocol import LimiterProtocol, LimiterState

from .redis_process import RedisProcess, require_redis_server


def _local() -> Iterator[LimiterProtocol]:
    yield Limiter(1, RateControl())


def _redis() -> Iterator[LimiterProtocol]:
    require_redis_server()
    from comet_sync.contrib.redis import RedisLimiter

    server = RedisProcess()
    try:
        yield RedisLimiter.from_url(server.url, namespace=uuid.uuid4().hex, max_concurrency=1)
    finally:
        server.kill()


@pytest.fixture(params=[_local, _redis], ids=["local", "redis"])
def one_slot(request: pytest.FixtureRequest) -> Iterator[LimiterProtocol]:
    """A limiter of each kind with room for one request in flight, on the system clock."""
    for limiter in request.param():
        limiter.bind(clock=Clock(), max_hold=30.0)
        yield limiter


def test_a_permit_when_there_is_room_and_a_named_timeout_when_there_is_none(
    one_slot: LimiterProtocol,
) -> None:
    permit = one_slot.acquire("m")
    with pytest.raises(LimiterTimeoutError) as caught:
        one_slot.acquire("m", timeout=0.2)
    assert caught.value.held_by  # what held it, in words a log line can carry
    permit.release(200)
    one_slot.acquire("m", timeout=1.0).release(200)


def test_a_permit_is_released_once_from_any_thread(one_slot: LimiterProtocol) -> None:
    permit = one_slot.acquire("m")
    assert one_slot.state().in_flight == 1
    releaser = threading.Thread(target=permit.release, args=(200,))
    releaser.start()
    releaser.join()
    permit.release(200)  # a second release: nothing
    state = one_slot.state()
    assert isinstance(state, LimiterState) and state.in_flight == 0
    # Were the second release counted, the slot would be over-freed: two would fit now.
    first = one_slot.acquire("m", timeout=1.0)
    with pytest.raises(LimiterTimeoutError):
        one_slot.acquire("m", timeout=0.2)
    first.release(200)


def test_the_state_is_read_while_a_permit_is_out_and_names_the_model(
    one_slot: LimiterProtocol,
) -> None:
    permit = one_slot.acquire("m")
    seen: list[LimiterState] = []
    reader = threading.Thread(target=lambda: seen.append(one_slot.state()))
    reader.start()
    reader.join(timeout=5.0)
    assert not reader.is_alive() and seen[0].in_flight == 1
    permit.release(200, throttled=False)
    state = one_slot.state()
    assert state.models is not None and "m" in state.models
    assert state.held_for == 0.0 and state.deferred == 0
    assert one_slot.paces_tokens("m") is False  # nothing told, nothing configured


def test_a_wait_ends_when_the_scope_given_stops(one_slot: LimiterProtocol) -> None:
    """``close()`` or a stopped ``map`` reaches a send held by the limiter through the scope
    handed to ``acquire``, not through anything the waiting thread happens to carry."""
    permit = one_slot.acquire("m")
    scope = Scope(what="the test's map")
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            one_slot.acquire("m", timeout=20.0, scope=scope).release(200)
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    # Whether the stop comes before the wait begins or during it, the send must not wait out
    # its 20 s: a scope stopped first wakes the wait at once (on_stop runs the callback).
    scope.stop()
    waiter.join(timeout=5.0)  # far under the 20 s the limiter would otherwise hold it
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ClientClosedError)
    assert "the test's map" in str(outcome[0])
    permit.release(200)
    one_slot.acquire("m", timeout=1.0).release(200)  # the stopped waiter took no slot
