"""A Flask app with one comet_sync client per process, a 25 s budget per view, and upstream
failures answered as 503/504/502 with JSON instead of a 500 page.

    python examples/flask_app.py            # asks its own view a few times and prints
    python examples/flask_app.py --serve    # http://127.0.0.1:5000/ask?q=hello

Without COMETAPI_KEY it talks to the embedded fake server. Needs comet-sync[flask].
Under gunicorn: gunicorn -w 4 --threads 8 --chdir examples 'flask_app:create_app()'.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, Response, jsonify, request

from comet_sync.contrib.flask import CometSync, get_client
from comet_sync.testing import real_or_fake


def create_app(**settings: object) -> Flask:
    app = Flask(__name__)
    app.config.update(
        COMET_SYNC_MAX_CONCURRENCY=8,  # per worker process: see the README on gunicorn
        COMET_SYNC_VIEW_DEADLINE=25,  # under a typical 30 s proxy timeout
    )
    app.config.update({k.upper(): v for k, v in settings.items()})
    CometSync(app)

    @app.get("/ask")
    def ask() -> Response:
        reply = get_client().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": request.args.get("q", "Say hello.")}],
        )
        return jsonify(answer=reply.choices[0].message.content)

    return app


if __name__ == "__main__":
    with real_or_fake(rps=20, burst=4) as settings:
        app = create_app(
            cometapi_key=settings.get("api_key"), cometapi_base_url=settings.get("base_url")
        )
        if "--serve" in sys.argv:
            app.run(threaded=True)
        else:

            def ask(i: int) -> str:
                reply = app.test_client().get(f"/ask?q=question {i}")
                return f"{reply.status_code} {reply.get_json()}"

            with ThreadPoolExecutor(8) as pool:  # eight views at once, one shared client
                for line in pool.map(ask, range(12)):
                    print(line)
