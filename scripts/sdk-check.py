"""Drive a running Lifeline with the official OpenAI Python SDK, unchanged.

usage: python3 scripts/sdk-check.py [BASE_URL]   (default http://127.0.0.1:8080/v1)
Expects the built-in example (`lifeline serve`): model `demo`, no client key.
Exits non-zero on the first check that fails.
"""
import sys
import time

import openai
from openai import OpenAI

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/v1"
client = OpenAI(base_url=base, api_key="unused", max_retries=2)

r = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "Hello"}])
assert r.choices[0].message.content, r
assert r.usage and r.usage.total_tokens > 0, r
print("chat:", r.model, repr(r.choices[0].message.content[:40]))

parts, chunks, usage = [], 0, None
with client.chat.completions.create(
    model="demo", messages=[{"role": "user", "content": "Hello"}], stream=True,
    stream_options={"include_usage": True},
) as stream:
    for c in stream:
        chunks += 1
        if c.choices and c.choices[0].delta.content:
            parts.append(c.choices[0].delta.content)
        if c.usage:
            usage = c.usage
assert parts and usage, (parts, usage)
print("stream:", chunks, "chunks,", repr("".join(parts)[:40]), "usage", usage.total_tokens)

e = client.embeddings.create(model="demo", input=["a", "b"])  # the SDK asks for base64
assert len(e.data) == 2 and len(e.data[0].embedding) > 0 and isinstance(e.data[0].embedding[0], float), e
print("embeddings:", len(e.data), "vectors of", len(e.data[0].embedding))

img = client.images.generate(model="demo", prompt="a lifeline", response_format="b64_json")
assert img.data[0].b64_json, img
print("images: b64 of", len(img.data[0].b64_json), "chars")

models = client.models.list()
assert "demo" in [m.id for m in models.data], models
print("models:", [m.id for m in models.data])
assert client.models.retrieve("demo").id == "demo"
try:
    client.models.retrieve("no-such-model")
    raise SystemExit("retrieving an unknown model did not raise")
except openai.NotFoundError:
    print("models.retrieve: demo, unknown -> NotFoundError")

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("unknown model did not raise")
except openai.NotFoundError as err:
    assert err.code == "model_not_found", err
    print("unknown model -> NotFoundError", err.code)

try:
    client.chat.completions.create(model="demo", messages="not a list", extra_body={"stream": "yes"})
    raise SystemExit("bad request did not raise")
except openai.BadRequestError as err:
    print("bad request -> BadRequestError:", err.message[:60])

resp = client.responses.create(model="demo", input="Hello")
print("responses:", resp.status, repr(resp.output_text[:30]))

print("OK: the official SDK works unchanged")

# Failure checks, when the simulated providers' URLs are given:
#   sdk-check.py BASE_URL MOCK_URL [MOCK_URL ...]
mocks = sys.argv[2:]
if mocks:
    import json
    import urllib.request

    def control(url, method, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url.replace("/v1", "/_mock/" + ("faults" if method != "GET" else "stats")),
                                     data=data, method=method, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read() or b"{}")

    def requests_seen():
        return sum(control(m, "GET")["by_path"].get("/v1/chat/completions", 0) for m in mocks)

    for m in mocks:
        control(m, "POST", {"error_rate": 1.0, "error_status": 500})
    before, t = requests_seen(), time.monotonic()
    try:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
        raise SystemExit("all providers failing did not raise")
    except openai.InternalServerError as err:
        assert err.status_code == 503, err
        assert err.response.headers.get("x-should-retry") == "false", err.response.headers
    seen = requests_seen() - before
    # One gateway request (the SDK obeyed x-should-retry: false), at most max_attempts upstream.
    assert seen <= 4, f"{seen} upstream attempts: the SDK retried on top of Lifeline"
    print(f"all failing -> 503 in {time.monotonic() - t:.2f}s, {seen} upstream attempts, SDK did not retry")

    for m in mocks:
        control(m, "POST", {"cut_after_chunks": 4})
    try:
        with client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}], stream=True) as s:
            for _ in s:
                pass
        raise SystemExit("a stream broken mid-answer ended cleanly")
    except openai.APIError as err:
        print("broken stream -> APIError:", str(err)[:70])
    for m in mocks:
        control(m, "DELETE")
    print("OK: failures surface as the SDK's own errors")
