"""Run the example Django project in one command.

    python examples/django_project/run.py            # calls its views and prints the answers
    python examples/django_project/run.py --serve    # http://127.0.0.1:8000/ask?q=hello

Without COMETAPI_KEY it starts the embedded fake server and points the project at it.
Needs comet-sync[django] (and comet-sync[prometheus] for /metrics).
"""

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"  # this project's own, whatever is set

from comet_sync.testing import real_or_fake

if __name__ == "__main__":
    with real_or_fake(rps=20, burst=4) as settings:
        if settings:
            os.environ["COMETAPI_KEY"] = settings["api_key"]
            os.environ["COMETAPI_BASE_URL"] = settings["base_url"]
        import django

        django.setup()
        if "--serve" in sys.argv:
            from django.core.management import call_command

            call_command("runserver", "127.0.0.1:8000", use_reloader=False)
        else:
            from django.test import Client

            web: Any = Client()  # (django ships no types: its answers are untyped here)
            print(web.get("/ask?q=what is Django").json())
            print(b"".join(web.get("/stream?q=stream me").streaming_content).decode())
            print(web.get("/metrics").content.decode().splitlines()[0])
