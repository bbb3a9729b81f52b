from collections.abc import Iterator

from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import path

from comet_sync.contrib.django import get_client, metrics_view

MODEL = "gpt-4o-mini"


def ask(request: HttpRequest) -> JsonResponse:
    reply = get_client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": request.GET.get("q", "Say hello.")}]
    )
    return JsonResponse({"answer": reply.choices[0].message.content})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def pieces() -> Iterator[str]:
        # The with-block gives the slot back even if the browser goes away mid-answer.
        with get_client().chat.completions.create(
            model=MODEL,
            stream=True,
            messages=[{"role": "user", "content": request.GET.get("q", "Say hello.")}],
        ) as answer:
            yield from answer.text_deltas()

    return StreamingHttpResponse(pieces(), content_type="text/plain")


urlpatterns = [path("ask", ask), path("stream", stream), path("metrics", metrics_view)]
