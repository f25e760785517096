"""The fakes' HTTP server: the standard library's threading server, quiet when a client hangs up."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
    """A client that resets or leaves a connection (a proxy's pool closing a kept-alive one, a cancelled stream)
    is not an error here: the standard server prints a traceback of each, noise in the suite's output."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)
