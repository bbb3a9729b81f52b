"""``python -m examples.celery_app "Say hello."``: ask through the project's views, with
Django's test client, and wait for a worker's answer (start a worker first)."""

import sys
import time
from typing import Any

import django
from django.test import Client

WAIT = 60.0  # seconds for a worker to answer

if __name__ == "__main__":
    django.setup()  # (the package set DJANGO_SETTINGS_MODULE when it loaded the Celery app)
    web: Any = Client()  # (Django ships no types: its answers are untyped here)
    asked = web.post("/ask", {"q": " ".join(sys.argv[1:]) or "Say hello."}).json()
    end = time.monotonic() + WAIT
    reply = web.get(asked["answer"])
    while reply.status_code == 202 and time.monotonic() < end:
        time.sleep(0.1)
        reply = web.get(asked["answer"])
    body = reply.json()
    if body["state"] != "SUCCESS":
        sys.exit(f"{body['state']}: {body.get('error', f'no answer after {WAIT:g} s')}")
    print(body["answer"])
