// Drive a running Lifeline with the official OpenAI Node SDK, unchanged.
// usage: node scripts/sdk-check.mjs BASE_URL MOCK_URL [MOCK_URL ...]
// (`npm install openai` first; scripts/sdk-check.sh does it in a temp dir.)
import OpenAI from "openai";

const [base, ...mocks] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base, apiKey: "unused", maxRetries: 2 });
const check = (ok, what) => { if (!ok) { console.error("FAILED:", what); process.exit(1); } };

const r = await client.chat.completions.create({ model: "demo", messages: [{ role: "user", content: "Hello" }] });
check(r.choices[0].message.content && r.usage.total_tokens > 0, "chat");
console.log("node chat:", r.model);

let text = "", usage = null;
const stream = await client.chat.completions.create({
  model: "demo", messages: [{ role: "user", content: "Hello" }], stream: true, stream_options: { include_usage: true },
});
for await (const c of stream) {
  text += c.choices[0]?.delta?.content ?? "";
  if (c.usage) usage = c.usage;
}
check(text.length > 0 && usage, "stream");
console.log("node stream:", JSON.stringify(text.slice(0, 30)), "usage", usage.total_tokens);

// A model whose first tier is an Anthropic deployment: translated both ways.
const c = await client.chat.completions.create({ model: "claude-first", messages: [{ role: "user", content: "Hello" }] });
check(c.choices[0].message.content && c.choices[0].finish_reason && c.usage.total_tokens > 0, "claude-first chat");
const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
let args = "", finish = null;
const ts = await client.chat.completions.create({
  model: "claude-first", messages: [{ role: "user", content: "What is the weather?" }], tools, tool_choice: "required", stream: true,
});
for await (const ch of ts) {
  for (const t of ch.choices[0]?.delta?.tool_calls ?? []) args += t.function?.arguments ?? "";
  finish = ch.choices[0]?.finish_reason ?? finish;
}
check(finish === "tool_calls" && JSON.parse(args).city === "Paris", `claude-first tool stream: ${finish} ${args}`);
console.log("node on claude-first (Anthropic deployment):", JSON.stringify(c.choices[0].message.content.slice(0, 30)), "and a streamed tool call", args);

const e = await client.embeddings.create({ model: "demo", input: ["a", "b"] }); // the SDK asks for base64
check(e.data.length === 2 && e.data[0].embedding.length > 0 && typeof e.data[0].embedding[0] === "number", "embeddings");
console.log("node embeddings:", e.data.length, "vectors of", e.data[0].embedding.length);

try {
  await client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] });
  check(false, "unknown model did not throw");
} catch (err) {
  check(err instanceof OpenAI.NotFoundError && err.code === "model_not_found", `unknown model: ${err}`);
  console.log("node unknown model -> NotFoundError");
}

const control = async (m, method, body) => {
  const res = await fetch(m.replace("/v1", method === "GET" ? "/_mock/stats" : "/_mock/faults"), {
    method, headers: { "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined,
  });
  return method === "GET" ? res.json() : null;
};
if (mocks.length) {
  const seen = async () => (await Promise.all(mocks.map((m) => control(m, "GET"))))
    .reduce((n, s) => n + (s.by_path["/v1/chat/completions"] ?? 0), 0);
  for (const m of mocks) await control(m, "POST", { error_rate: 1.0, error_status: 500 });
  const before = await seen();
  try {
    await client.chat.completions.create({ model: "demo", messages: [{ role: "user", content: "x" }] });
    check(false, "all failing did not throw");
  } catch (err) {
    check(err instanceof OpenAI.InternalServerError && err.status === 503, `all failing: ${err}`);
  }
  const attempts = (await seen()) - before;
  check(attempts <= 4, `${attempts} upstream attempts: the SDK retried on top of Lifeline`);
  console.log(`node all failing -> 503, ${attempts} upstream attempts, SDK did not retry`);
  for (const m of mocks) await control(m, "POST", { cut_after_chunks: 4 });
  try {
    const s = await client.chat.completions.create({ model: "demo", messages: [{ role: "user", content: "x" }], stream: true });
    for await (const _ of s) { /* drain */ }
    check(false, "a stream broken mid-answer ended cleanly");
  } catch (err) {
    check(err instanceof OpenAI.APIError, `broken stream: ${err}`);
    console.log("node broken stream -> APIError");
  }
  for (const m of mocks) await control(m, "DELETE");
}
console.log("OK: the official Node SDK works unchanged");
