"""The Flask layer: one catch-all view that hands every request to the Door (argoproxy/door.py).

Flask's URL map decides nothing: what a request is gets decided once, by the door, on the canonical path.
"""

from __future__ import annotations

from flask import Blueprint, Response

from argoproxy.classify import ALL_METHODS
from argoproxy.door import Door


def build_blueprint(door: Door) -> Blueprint:
    bp = Blueprint("proxy", __name__)

    def enter(path: str = "") -> Response:
        return door.handle()

    methods = sorted(ALL_METHODS)
    bp.add_url_rule("/", "root", enter, methods=methods)
    bp.add_url_rule("/<path:path>", "any", enter, methods=methods)
    return bp
