"""An example Alertmanager webhook receiver for docker compose: prints each notification.

Every POST (Alertmanager's webhook payload, JSON) is written to stdout as one line, so
`docker compose logs -f alert-webhook` shows what would be paged. Replace it with a real
receiver by changing the webhook URL in ops/alertmanager/alertmanager.yml (docs/alerts.md).
Standard library only.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
            alerts = [
                {
                    "status": a.get("status"),
                    "labels": a.get("labels"),
                    "summary": a.get("annotations", {}).get("summary"),
                }
                for a in payload.get("alerts", [])
            ]
            line = {"receiver": payload.get("receiver"), "status": payload.get("status")}
            print(json.dumps({**line, "alerts": alerts}), flush=True)
            self.send_response(200)
        except (ValueError, AttributeError):
            print(f"not an Alertmanager payload: {body[:200]!r}", file=sys.stderr, flush=True)
            self.send_response(400)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"alert-webhook listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
