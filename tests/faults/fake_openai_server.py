"""A small OpenAI-compatible completions server backed by a real transformers model, for the
generation-server fault tests (a real vLLM server is too heavy to start several times on the
shared CPU machine).

    python fake_openai_server.py MODEL_DIR PORT [--die-after N]

Serves `GET /v1/models` and `POST /v1/completions` (greedy, one prompt at a time, so answers
do not depend on how prompts are batched). `--die-after N`: SIGKILL itself on receiving its
N-th completions request, before answering (a server killed in the middle of an evaluation).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("port", type=int)
    parser.add_argument("--die-after", type=int, default=0)
    args = parser.parse_args()

    from probe.generation import TransformersGenerator

    generator = TransformersGenerator(args.model, batch_size=1)
    lock = threading.Lock()
    served = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "tiny", "object": "model",
                                                             "owned_by": "test", "max_model_len": 512}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path.rstrip("/") != "/v1/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            with lock:
                served["n"] += 1
                if args.die_after and served["n"] >= args.die_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
                texts = [generator.generate([p], int(body.get("max_tokens", 16)), body.get("stop"))[0]
                         for p in prompts]
            self._send(200, {"id": "cmpl", "object": "text_completion", "created": 0, "model": "tiny",
                             "choices": [{"index": i, "text": t, "finish_reason": "stop", "logprobs": None}
                                         for i, t in enumerate(texts)],
                             "usage": {"prompt_tokens": 0, "completion_tokens": len(texts),
                                       "total_tokens": len(texts)}})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
