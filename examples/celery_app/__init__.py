"""A Django project whose Celery worker calls CometAPI (``pip install -e '.[celery,django]'``,
a Redis server on localhost:6379).

From the repository's root, start a worker and the web server, then ask through the views::

    celery -A examples.celery_app worker --pool threads --concurrency 8 --loglevel INFO
    python -m examples.celery_app.manage runserver
    curl -d q="Say hello." http://127.0.0.1:8000/ask   # 202 {"task": "<id>", ...}
    curl http://127.0.0.1:8000/answer/<id>             # {"state": "SUCCESS", "answer": ...}

or, with the worker running, in one command through the same views (Django's test client)::

    python -m examples.celery_app "Say hello."

``--pool prefork --concurrency 8`` works too (a client per child). The worker's key is
``COMETAPI_KEY``; without one, start the fake server (``comet-sync fake-server --port 8765``)
and give the worker ``COMETAPI_KEY=any COMETAPI_BASE_URL=http://127.0.0.1:8765/v1``.
``CELERY_BROKER_URL`` names the broker (default ``redis://localhost:6379/0``), which is also
the result store and the Redis every worker's shared limit lives on.

``settings.py`` holds Django's settings, comet_sync's and Celery's (the ``CELERY_`` names);
``celery.py`` is the Celery app, set up for comet_sync; ``tasks.py`` the task calling the
client; ``views.py`` and ``urls.py`` enqueue a question and read its answer. While a long
server wait requeues the task, ``/answer`` says ``RETRY``; a failed task, ``FAILURE`` and its
error (README, "Running on Celery", for what happens on each kind of failure).
"""

# Django's way with Celery: the project package loads the Celery app, so that the web
# processes (and `celery -A examples.celery_app`) find it.
from .celery import app

__all__ = ["app"]
