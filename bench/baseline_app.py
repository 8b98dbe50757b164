"""The baseline the HTTP benchmark compares with: a bare Flask app, no product code.

It does what any JSON endpoint must (route, parse the body, answer JSON) and nothing of
the product (no auth, validation, rules or database), so the ratio of the service to it
is the cost of the product's own work. gunicorn serves it with the same config as the
service: ``gunicorn --config deploy/gunicorn.conf.py 'bench.baseline_app:create_app()'``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request


def create_app() -> Flask:
    app = Flask("loyalty-baseline")

    @app.get("/healthz")
    @app.get("/readyz")
    def health() -> Any:
        return jsonify({"status": "ok"})

    @app.post("/v1/events")
    def post_event() -> Any:
        event = request.get_json(silent=True)
        if not isinstance(event, dict):
            abort(400)
        return jsonify({"event_id": event.get("event_id"), "status": "applied", "effects": []}), 201

    @app.post("/v1/events/batch")
    def post_batch() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            abort(400)
        results = [{"event_id": e.get("event_id"), "status": "applied"} for e in body["events"]]
        return jsonify({"results": results}), 200

    return app
