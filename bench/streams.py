"""Open N concurrent streaming chat requests to a gateway and hold them open.

usage: streams.py URL N   — prints completed/broken/failed counts and the time
Each stream must end with `data: [DONE]`; nothing else counts as completed.
"""
import asyncio
import sys
import time
from urllib.parse import urlparse

url = urlparse(sys.argv[1])
N = int(sys.argv[2])
BODY = b'{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"hi"}]}'
REQ = (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\ncontent-type: application/json\r\n"
       f"content-length: {len(BODY)}\r\nconnection: close\r\n\r\n").encode() + BODY


async def one(results):
    try:
        r, w = await asyncio.open_connection(url.hostname, url.port)
        w.write(REQ)
        await w.drain()
        data = await asyncio.wait_for(r.read(-1), timeout=120)
        w.close()
        results["completed" if b"data: [DONE]" in data else "broken"] += 1
    except Exception as e:  # noqa: BLE001 - counted, and the first few printed
        results["failed"] += 1
        if results["failed"] <= 3:
            print("failed:", repr(e), file=sys.stderr)


async def main():
    results = {"completed": 0, "broken": 0, "failed": 0}
    t = time.monotonic()
    tasks = []
    for i in range(N):
        tasks.append(asyncio.create_task(one(results)))
        if i % 500 == 499:
            await asyncio.sleep(0.05)  # do not flood the accept backlog
    await asyncio.gather(*tasks)
    print(f"{N} streams: {results} in {time.monotonic() - t:.1f} s")


asyncio.run(main())
