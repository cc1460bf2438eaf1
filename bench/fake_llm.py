#!/usr/bin/env python3
"""A fake OpenAI-compatible LLM for the benchmarks: POST .../chat/completions answers, after
DELAY seconds, one edit raising lodash ^4.17.20 to ^4.17.21 in package.json (the answer schema
of src/llm/answer.rs). Counts requests and the largest number in flight (GET /stats, POST /reset).

Usage: fake_llm.py PORT DELAY_SECONDS
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, DELAY = int(sys.argv[1]), float(sys.argv[2])
ANSWER = json.dumps({
    "edits": [{
        "path": "package.json",
        "search": '"lodash": "^4.17.20"',
        "replace": '"lodash": "^4.17.21"',
    }],
    "confidence": 0.9,
    "explanation": "Raise lodash to 4.17.21, the first release with the fix.",
})
lock = threading.Lock()
stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            self.reply(dict(stats))

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/reset"):
            with lock:
                stats.update(requests=0, max_in_flight=stats["in_flight"])
            return self.reply(dict(stats))
        with lock:
            stats["requests"] += 1
            stats["in_flight"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            time.sleep(DELAY)
            self.reply({
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "bench-model",
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050},
            })
        finally:
            with lock:
                stats["in_flight"] -= 1


class Server(ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
