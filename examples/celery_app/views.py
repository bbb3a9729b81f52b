"""Two views: one enqueues a question for the workers, one reads its answer."""

from __future__ import annotations

from celery.result import AsyncResult
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse

from .celery import app
from .tasks import ask


def ask_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    # The web process never calls CometAPI here: the question waits on the broker for a worker.
    # (Celery ships no types: pyright takes the task for the bare function it decorates.)
    question = request.POST.get("q", "Say hello.")
    result = ask.delay(question)  # pyright: ignore[reportFunctionMemberAccess]
    return JsonResponse({"task": result.id, "answer": f"/answer/{result.id}"}, status=202)


def answer_view(request: HttpRequest, task_id: str) -> JsonResponse:
    result = AsyncResult(task_id, app=app)
    if result.successful():
        return JsonResponse({"state": result.state, "answer": result.result})
    if result.failed():
        # The task's error (its message never holds the key). Celery's JSON result store
        # gives comet_sync's errors back as an Exception whose text names their class.
        return JsonResponse({"state": result.state, "error": str(result.result)})
    # PENDING (queued, or unknown), STARTED, RETRY (requeued after a long server wait).
    return JsonResponse({"state": result.state}, status=202)
