from django.urls import path

from .views import answer_view, ask_view

urlpatterns = [path("ask", ask_view), path("answer/<str:task_id>", answer_view)]
