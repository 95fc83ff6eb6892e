"""Drive a running Lifeline with the official Anthropic Python SDK, unchanged,
on POST /v1/messages; and the OpenAI Python SDK on a model whose first tier is
an Anthropic deployment.

usage: python3 scripts/sdk-check-anthropic.py GATEWAY_URL MOCK_URL [MOCK_URL ...]
  GATEWAY_URL without /v1 (Anthropic's SDKs add it), e.g. http://127.0.0.1:8080;
  MOCK_URL: the simulated providers' OpenAI base URLs (.../v1), for faults.
Expects scripts/sdk-check.sh's config: model `claude-first` (tier 1 an
Anthropic deployment, tier 2 an OpenAI-shaped one), model `demo` (OpenAI-shaped
deployments only), client key `unused`, and key `sk-limited` with rpm = 1.
Exits non-zero on the first check that fails.
"""
import json
import sys
import urllib.request

import anthropic
import openai

base = sys.argv[1]
mocks = sys.argv[2:]
client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=2)
hi = [{"role": "user", "content": "Hello"}]

# Passthrough (an Anthropic deployment) and translated (an OpenAI-shaped one).
for model in ["claude-first", "demo"]:
    m = client.messages.create(model=model, max_tokens=64, messages=hi)
    assert m.type == "message" and m.role == "assistant", m
    assert m.content and m.content[0].type == "text" and m.content[0].text, m
    assert m.stop_reason in ("end_turn", "max_tokens"), m
    assert m.usage.output_tokens > 0, m
    print(f"messages ({model}):", m.stop_reason, repr(m.content[0].text[:40]))

    with client.messages.stream(model=model, max_tokens=64, messages=hi) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.content[0].text == text, (text, final)
    assert final.stop_reason in ("end_turn", "max_tokens"), final
    print(f"stream ({model}):", repr(text[:40]), "output_tokens", final.usage.output_tokens)

    tools = [{
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }]
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    t = client.messages.create(model=model, max_tokens=64, messages=ask, tools=tools)
    calls = [b for b in t.content if b.type == "tool_use"]
    assert t.stop_reason == "tool_use" and calls and calls[0].name == "get_weather", t
    assert calls[0].input == {"city": "Paris"}, calls[0]
    with client.messages.stream(model=model, max_tokens=64, messages=ask, tools=tools) as s:
        final = s.get_final_message()
    calls = [b for b in final.content if b.type == "tool_use"]
    assert final.stop_reason == "tool_use" and calls and calls[0].input == {"city": "Paris"}, final
    print(f"tools ({model}): tool_use", calls[0].name, calls[0].input, "(whole and streamed)")

try:
    client.messages.create(model="no-such-model", max_tokens=8, messages=hi)
    raise SystemExit("unknown model did not raise")
except anthropic.NotFoundError as err:
    assert err.body["error"]["type"] == "not_found_error", err.body
    print("unknown model -> NotFoundError")

try:
    client.messages.create(model="demo", max_tokens=8, messages=hi, extra_body={"stream": "yes"})
    raise SystemExit("bad request did not raise")
except anthropic.BadRequestError as err:
    print("bad request -> BadRequestError:", err.body["error"]["message"][:50])

limited = anthropic.Anthropic(base_url=base, api_key="sk-limited", max_retries=0)
try:
    for _ in range(3):
        limited.messages.create(model="demo", max_tokens=8, messages=hi)
    raise SystemExit("a key over its rpm did not raise")
except anthropic.RateLimitError as err:
    assert err.response.headers.get("retry-after"), err.response.headers
    print("key over its rpm -> RateLimitError, retry-after", err.response.headers["retry-after"])

bad = anthropic.Anthropic(base_url=base, api_key="sk-wrong", max_retries=0)
try:
    bad.messages.create(model="demo", max_tokens=8, messages=hi)
    raise SystemExit("a wrong key did not raise")
except anthropic.AuthenticationError:
    print("wrong key -> AuthenticationError")

# The OpenAI SDK on a model whose first tier is an Anthropic deployment.
oai = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=2)
r = oai.chat.completions.create(model="claude-first", messages=hi)
assert r.choices[0].message.content and r.usage.total_tokens > 0, r
parts, usage = [], None
with oai.chat.completions.create(
    model="claude-first", messages=hi, stream=True, stream_options={"include_usage": True}
) as stream:
    for c in stream:
        if c.choices and c.choices[0].delta.content:
            parts.append(c.choices[0].delta.content)
        if c.usage:
            usage = c.usage
assert parts and usage and usage.total_tokens > 0, (parts, usage)
print("openai sdk on claude-first:", repr(r.choices[0].message.content[:30]), "and a stream with usage")


def control(url, method, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.replace("/v1", "/_mock/faults"), data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.read()


# Every provider failing: Lifeline's 503 (x-should-retry: false) is the SDK's APIStatusError.
for m in mocks:
    control(m, "POST", {"error_rate": 1.0, "error_status": 500})
try:
    client.messages.create(model="claude-first", max_tokens=8, messages=hi)
    raise SystemExit("all providers failing did not raise")
except anthropic.APIStatusError as err:
    assert err.status_code == 503, err
    assert err.body["type"] == "error" and err.body["error"]["type"] == "api_error", err.body
    print("all failing -> APIStatusError 503", type(err).__name__)
finally:
    for m in mocks:
        control(m, "DELETE")

print("OK: the official Anthropic SDK works unchanged")
