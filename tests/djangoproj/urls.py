from django.http import JsonResponse
from django.urls import path

from comet_sync.contrib.django import get_client, metrics_view


def ask(request):
    question = request.GET.get("q", "hello")
    reply = get_client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )
    return JsonResponse({"answer": reply.choices[0].message.content})


urlpatterns = [path("ask", ask), path("metrics", metrics_view)]
