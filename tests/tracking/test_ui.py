"""``recnas ui`` serves the MLflow UI over the job's store on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from recnas.tracking.mlflow_tracker import Tracker, default_tracking_uri

from ..ports import free_port


def get(url: str, data: dict | None = None) -> tuple[int, bytes]:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def test_ui_lists_the_job_experiment(tmp_path: Path) -> None:
    storage = tmp_path / "runs"
    tracker = Tracker(default_tracking_uri(str(storage)), "ui-job")
    tracker.end_run(tracker.start_run("search", tags={"recnas.stage": "search"}))
    port = free_port()
    command = [sys.executable, "-m", "recnas.cli", "ui", "--storage", str(storage),
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, page = get(base + "/")
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "the UI did not answer in 90 s"
                time.sleep(1)
        assert status == 200 and b"<html" in page.lower()
        status, body = get(base + "/ajax-api/2.0/mlflow/experiments/search",
                           {"max_results": 10})  # fmt: skip
        names = [e["name"] for e in json.loads(body)["experiments"]]
        assert "ui-job" in names
        assert _listen_addresses(port) == {"127.0.0.1"}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _listen_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            octets = bytes.fromhex(address)[::-1]
            found.add(".".join(str(b) for b in octets))
    return found
