"""One chat call. Runs against the embedded fake server unless COMETAPI_KEY is set.

python examples/one_call.py
"""

from comet_sync import CometClient
from comet_sync.testing import real_or_fake

with real_or_fake() as settings, CometClient(**settings) as client:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Answer in one short sentence."},
            {"role": "user", "content": "What is a rate limit?"},
        ],
        temperature=0.2,
    )
    print(reply.choices[0].message.content)
    print(f"model={reply.model} tokens={reply.usage.total_tokens if reply.usage else '?'}")
