"""Write the Anthropic twins of the shared harness's OpenAI answers.

usage: anthropic-fixtures.py HARNESS OUTDIR
The same text, split into the same deltas, as Anthropic's Messages API
answers it (a whole message, and its event stream), so that a benchmark of
a translated request differs from its passthrough twin only by the
translation: OUTDIR/anthropic-message.json and OUTDIR/anthropic-stream.sse.
"""
import json
import os
import sys

harness, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
whole = json.load(open(os.path.join(harness, "mock-completion.json")))
text = whole["choices"][0]["message"]["content"]
usage = whole["usage"]
message = {
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
    "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]},
}
with open(os.path.join(out, "anthropic-message.json"), "w") as f:
    json.dump(message, f, separators=(",", ":"))

deltas = []
for line in open(os.path.join(harness, "mock-stream.sse")):
    if not line.startswith("data: {"):
        continue
    chunk = json.loads(line[6:])
    for choice in chunk.get("choices", []):
        piece = choice.get("delta", {}).get("content")
        if piece:
            deltas.append(piece)


def event(name, data):
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


start = dict(message, content=[], stop_reason=None, usage={"input_tokens": usage["prompt_tokens"], "output_tokens": 1})
parts = [event("message_start", {"type": "message_start", "message": start}),
         event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
         event("ping", {"type": "ping"})]
parts += [event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": d}}) for d in deltas]
parts += [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
          event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": len(deltas)}}),
          event("message_stop", {"type": "message_stop"})]
with open(os.path.join(out, "anthropic-stream.sse"), "w") as f:
    f.write("".join(parts))
