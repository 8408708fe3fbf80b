"""Run an app with uvicorn in a thread on a free loopback port, for the API and browser tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from assistant.cli.serve import bind_socket, make_server


@contextmanager
def live_server(app, *, timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    ready = threading.Event()
    server = make_server(app, on_started=ready.set)
    # The product waits up to 5 s for open connections (a UI's event stream) when it stops; a test
    # is done with its server by then (a module's servers cost ~5 s each to stop otherwise).
    server.config.timeout_graceful_shutdown = 0.5
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not ready.wait(0.05):
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the test server on port {port} did not start")
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
