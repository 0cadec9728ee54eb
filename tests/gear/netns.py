"""A small test network in Linux network namespaces:

    customer (10.254.1.2-.9) ──veth── gateway (nftables) ──veth── internet (198.51.100.0/24)

The gateway forwards between the two; the internet namespace runs plain HTTP servers (an
ordinary site, a "bank" in the walled garden, and a stand-in notice server). Needs root,
``ip`` (iproute2) and ``nft`` (nftables).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CUSTOMER_NET = "10.254.1"
SITE, BANK, NOTICE = "198.51.100.10", "198.51.100.30", "198.51.100.20"

SERVER = r"""
import http.server, socketserver, sys
body_of = {"/": sys.argv[2].encode(), "/big": b"x" * int(sys.argv[3])}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = body_of.get(self.path, sys.argv[2].encode())
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
host, port = sys.argv[1].rsplit(":", 1)
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer((host, int(port)), H).serve_forever()
"""


def missing() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces and nftables need root"
    for tool in ("ip", "nft", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make test installs it with apt-get when root)"
    return None


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@dataclass
class Net:
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def customer(self) -> str:
        return f"bt{self.tag}c"

    @property
    def gateway(self) -> str:
        return f"bt{self.tag}g"

    @property
    def internet(self) -> str:
        return f"bt{self.tag}i"

    def up(self, customers: int = 6, work: Path | None = None) -> None:
        c, g, i = self.customer, self.gateway, self.internet
        for ns in (c, g, i):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"{c}0", "netns", c, "type", "veth", "peer", f"{g}0", "netns", g)
        sh("ip", "link", "add", f"{g}1", "netns", g, "type", "veth", "peer", f"{i}0", "netns", i)
        for n in range(2, 2 + customers):
            sh("ip", "-n", c, "addr", "add", f"{CUSTOMER_NET}.{n}/24", "dev", f"{c}0")
        sh("ip", "-n", g, "addr", "add", f"{CUSTOMER_NET}.1/24", "dev", f"{g}0")
        sh("ip", "-n", g, "addr", "add", "198.51.100.1/24", "dev", f"{g}1")
        for addr in (SITE, BANK, NOTICE):
            sh("ip", "-n", i, "addr", "add", f"{addr}/24", "dev", f"{i}0")
        for ns, dev in ((c, f"{c}0"), (g, f"{g}0"), (g, f"{g}1"), (i, f"{i}0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        for ns in (c, g, i):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", c, "route", "add", "default", "via", f"{CUSTOMER_NET}.1")
        sh("ip", "-n", i, "route", "add", "default", "via", "198.51.100.1")
        sh("ip", "netns", "exec", g, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for addr, port, text in (
            (SITE, 80, "INTERNET"),
            (SITE, 8081, "INTERNET-8081"),
            (BANK, 80, "BANK"),
            (NOTICE, 8080, "NOTICE-PAGE"),
        ):
            self.procs.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        i,
                        sys.executable,
                        "-c",
                        SERVER,
                        f"{addr}:{port}",
                        text,
                        str(400_000),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if all(
                self.curl_from_gateway(f"http://{a}:{p}/") is not None
                for a, p in ((SITE, 80), (SITE, 8081), (BANK, 80), (NOTICE, 8080))
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("test HTTP servers did not start")

    def down(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in (self.customer, self.gateway, self.internet):
            sh("ip", "netns", "del", ns, check=False)

    def curl_from_gateway(self, url: str) -> str | None:
        r = sh("ip", "netns", "exec", self.gateway, "curl", "-s", "-m", "2", url, check=False)
        return r.stdout if r.returncode == 0 else None

    def curl(self, source: str, url: str, timeout: float = 3.0) -> tuple[int, str, float]:
        """curl from one customer address: (exit code, body, seconds)."""
        started = time.monotonic()
        r = sh(
            "ip", "netns", "exec", self.customer, "curl", "-s", "-o", "-", "--interface", source,
            "-m", str(timeout), url, check=False,
        )  # fmt: skip
        return r.returncode, r.stdout, time.monotonic() - started

    def nft(self) -> list[str]:
        return ["ip", "netns", "exec", self.gateway, "nft"]

    def set_members(self, name: str) -> str:
        return sh(*self.nft(), "list", "set", "inet", "billing", name, check=False).stdout
