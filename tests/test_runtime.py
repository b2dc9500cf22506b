"""The local Ray that ``recnas run`` starts listens on loopback only."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run in a fresh process: Ray is imported before recnas starts it, as it is
# when ``recnas run`` reaches the runtime.
_PROBE = """
import json, os
import ray
from recnas.runtime import ray_session
from tests.test_runtime import listening_addresses
with ray_session(num_cpus=1):
    print(json.dumps(listening_addresses(os.getpid())))
"""


def _tree(root: int) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def _hex_address(text: str) -> str:
    """The IP of a ``/proc/net/tcp{,6}`` local address (hex words, host order)."""
    raw = bytes.fromhex(text.split(":")[0])
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(packed) == 4:
        return str(ipaddress.IPv4Address(packed))
    address = ipaddress.IPv6Address(packed)
    return str(address.ipv4_mapped or address)


def listening_addresses(root: int) -> list[list[str]]:
    """``[process name, IP]`` of every TCP listener of ``root``'s process tree."""
    listeners = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listeners[fields[9]] = _hex_address(fields[1])
    found = set()
    for pid in _tree(root):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                inode = target[len("socket:[") : -1]
                if target.startswith("socket:[") and inode in listeners:
                    found.add((name, listeners[inode]))
        except OSError:
            continue
    return sorted([name, ip] for name, ip in found)


def test_local_ray_listens_on_loopback_only() -> None:
    env = {**os.environ}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=True,
    )
    listeners = json.loads(done.stdout.strip().splitlines()[-1])
    names = {name for name, _ in listeners}
    assert "gcs_server" in names and "raylet" in names, listeners
    assert {ip for _, ip in listeners} == {"127.0.0.1"}, listeners
