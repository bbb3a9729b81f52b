"""A Flask view that streams a chat answer to the browser as it is written.

    python examples/flask_streaming.py            # asks the view once and prints the answer
    python examples/flask_streaming.py --serve    # serves http://127.0.0.1:5000/chat?q=hello

One client per process, shared by every request thread. The view's generator closes the
stream whatever happens (the client disconnects, the view fails), so its concurrency slot
and connection are always given back. Without COMETAPI_KEY it talks to the embedded fake
server. Needs Flask: pip install 'comet-sync[flask]'.
"""

import sys
from collections.abc import Iterator

from flask import Flask, Response, request

from comet_sync import APIError, CometClient
from comet_sync.testing import real_or_fake

app = Flask(__name__)


def stream_answer(client: CometClient, question: str) -> Iterator[str]:
    try:
        with client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": question}],
            stream=True,
        ) as stream:
            yield from stream.text_deltas()
    except APIError as exc:
        # The headers are gone already: say so in the body rather than cut it silently.
        yield f"\n[error: {type(exc).__name__}]"


@app.get("/chat")
def chat() -> Response:
    client: CometClient = app.config["COMET_CLIENT"]
    question = request.args.get("q", "Say hello.")
    return Response(stream_answer(client, question), mimetype="text/plain")


if __name__ == "__main__":
    with real_or_fake(stream_delay=0.01) as settings, CometClient(**settings) as client:
        app.config["COMET_CLIENT"] = client
        if "--serve" in sys.argv:
            app.run(threaded=True)
        else:
            reply = app.test_client().get("/chat?q=tell me about streaming")
            print(reply.get_data(as_text=True))
