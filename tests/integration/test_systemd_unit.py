"""The shipped systemd units start as shipped. Every worker is started from
``deploy/systemd/billing@.service`` itself in that unit's sandbox, approximated with a mount
namespace (``unshare -m``): the whole file system read-only (ProtectSystem=strict), empty
/home, /root and /run/user (ProtectHome=true), a private /tmp and /var/tmp (PrivateTmp),
writable only the directories the unit declares (StateDirectory= and the like, with the
variables systemd sets for them), as an unprivileged user without new privileges. Each must
reach ready (``/readyz`` 200: database, Kafka and the group) against a real Kafka node and
PostgreSQL, write only where the unit lets it, and print nothing but JSON lines.

Approximations: the user is ``nobody`` (the unit's ``billing`` comes from
deploy/sysusers.d, checked here); the install directory is this checkout and the
interpreter this test's (re-exposed read-only if it lives under a home that ProtectHome
hides: production's venv comes from /usr/bin/python3, deploy/README.md); PostgreSQL is
reached over TCP through a proxy (the embedded server's socket is in a private folder).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.devstack.stack import DEV_SUPPLIER, create_topics, free_port, stop
from services.runtime.settings import Settings, Topics
from services.workers import SERVICES
from tests.conftest import ROOT, unavailable
from tests.integration.test_health import Proxy, json_lines, socket_of, tcp_url, wait_health

UNITS = ROOT / "deploy" / "systemd"
SYSUSERS = ROOT / "deploy" / "sysusers.d" / "billing.conf"
NOBODY = 65534
# systemd's directory settings: where each puts its folders, and the variable it sets
DIRECTORIES = {
    "StateDirectory": ("/var/lib", "STATE_DIRECTORY"),
    "CacheDirectory": ("/var/cache", "CACHE_DIRECTORY"),
    "LogsDirectory": ("/var/log", "LOGS_DIRECTORY"),
    "RuntimeDirectory": ("/run", "RUNTIME_DIRECTORY"),
}
HOMES = ("/home", "/root", "/run/user")


def parse_unit(path: Path, instance: str | None = None) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections and settings (a setting may repeat), ``%i`` filled in."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        if instance is not None:
            value = value.replace("%i", instance)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(service: dict[str, list[str]], key: str, default: str | None = None) -> str:
    values = service.get(key)
    if not values:
        assert default is not None, f"the unit sets no {key}="
        return default
    return values[-1]


class Sandbox:
    """What the unit's [Service] section lets a process see and write."""

    def __init__(self, service: dict[str, list[str]]) -> None:
        self.service = service
        self.writable: dict[str, str] = {}  # path -> the variable systemd names it in
        self.env: dict[str, str] = {}
        for key, (base, variable) in DIRECTORIES.items():
            paths = [f"{base}/{p}" for v in service.get(key, []) for p in v.split()]
            for p in paths:
                self.writable[p] = variable
            if paths:
                self.env[variable] = ":".join(paths)
        for v in service.get("ReadWritePaths", []):
            for p in v.split():
                self.writable[p.lstrip("-")] = ""
        for v in service.get("Environment", []):
            for item in shlex.split(v):
                name, _, value = item.partition("=")
                self.env[name] = value

    def script(self, binds: dict[str, Path], keep: str | None) -> str:
        """The shell that builds the sandbox in a fresh mount namespace, then execs."""
        assert one(self.service, "ProtectSystem") == "strict"
        lines = ["set -e"]
        if keep:  # the interpreter, kept open across the hiding of homes
            lines.append(f"exec 3< {shlex.quote(keep)}")
        parents = {_existing_parent(p) for p in self.writable if not Path(p).exists()}
        for parent in sorted(parents):  # mount points for folders systemd would create
            lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {parent}")
        for path in self.writable:
            lines.append(f"mkdir -p {path}")
        lines += [  # ProtectSystem=strict: every mount read-only but the API file systems
            "for mp in $(awk '{print $5}' /proc/self/mountinfo); do",
            "  case $mp in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue;; esac",
            "  mount -o remount,bind,ro $mp",
            "done",
        ]
        for path, host in binds.items():
            lines.append(f"mount --bind {shlex.quote(str(host))} {path}")
            lines.append(f"mount -o remount,bind,rw {path}")
        if one(self.service, "PrivateTmp", "false") == "true":
            lines += [f"mount -t tmpfs -o mode=1777 tmpfs {t}" for t in ("/tmp", "/var/tmp")]
        if one(self.service, "ProtectHome", "false") == "true":
            for home in HOMES:
                mode = "0711" if keep and keep.startswith(home + "/") else "0000"
                lines.append(f"[ ! -d {home} ] || mount -t tmpfs -o mode={mode} tmpfs {home}")
            if keep:
                lines += [
                    f"mkdir -p {shlex.quote(keep)}",
                    f"mount --no-canonicalize --bind /proc/self/fd/3 {shlex.quote(keep)}",
                    f"mount -o remount,bind,ro {shlex.quote(keep)}",
                    "exec 3<&-",
                ]
            for home in HOMES:
                lines.append(f"[ ! -d {home} ] || mount -o remount,ro {home}")
        lines.append('cd "$WORKDIR"')
        no_new = one(self.service, "NoNewPrivileges", "false") == "true"
        lines.append(
            f"exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups"
            + (" --no-new-privs" if no_new else "")
            + ' -- "$@"'
        )
        return "\n".join(lines)


def _existing_parent(path: str) -> str:
    p = Path(path).parent
    while not p.exists():
        p = p.parent
    return str(p)


def _under_home(path: str) -> bool:
    return any(path == h or path.startswith(h + "/") for h in HOMES)


def _exec_start(service: dict[str, list[str]]) -> list[str]:
    """ExecStart= with the install directory as this checkout, the venv's python as ours."""
    install = one(service, "WorkingDirectory")
    argv = shlex.split(one(service, "ExecStart"))
    if argv[0] == f"{install}/.venv/bin/python":
        argv[0] = sys.executable
    return [a.replace(install, str(ROOT)) for a in argv]


def test_units_are_sandboxed_and_their_user_is_declared() -> None:
    declared = {
        line.split()[1]
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.startswith("#") and line.split()[0] in ("u", "g")
    }
    units = sorted(UNITS.glob("*.service"))
    assert units
    for unit in units:
        service = parse_unit(unit)["Service"]
        assert one(service, "User") in declared and one(service, "Group") in declared, unit
        assert one(service, "ProtectSystem") == "strict", unit
        assert one(service, "PrivateTmp") == "true", unit
    worker = parse_unit(UNITS / "billing@.service", "payments")["Service"]
    assert Sandbox(worker).env["STATE_DIRECTORY"] == "/var/lib/billing/payments"
    assert "78" in one(worker, "RestartPreventExitStatus").split()


def production_secrets(folder: Path) -> dict[str, str]:
    """What /etc/billing/billing.env names in production (deploy/README.md, Secrets): the
    operator tokens file, the notice page's and the zone's secrets, in files the workers'
    user can read (outside /tmp, which the unit makes private)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tokens, notice = folder / "operator-tokens", folder / "notice-secret"
    zone = folder / "zone-secret"
    tokens.write_text(f"ops:{os.urandom(24).hex()}\n")
    notice.write_text(os.urandom(24).hex())
    zone.write_text(os.urandom(24).hex())
    for path in (folder, tokens, notice, zone):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {
        "BILLING_OPERATOR_TOKENS_FILE": str(tokens),
        "BILLING_NOTICE_SECRET_FILE": str(notice),
        "BILLING_ZONE_SECRET_FILE": str(zone),
    }


def test_every_worker_starts_in_the_units_sandbox(
    database_url: str, broker: str, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        unavailable("needs root, unshare and setpriv for a mount namespace", "the unit test")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        unavailable(f"unshare -m refused: {probe.stderr.decode().strip()}", "the unit test")
    asyncio.run(create_topics(Settings(kafka_bootstrap_servers=broker), Topics()))
    from services.runtime import db

    for service in SERVICES:  # the deploy's `billing migrate`; the workers migrate as well
        asyncio.run(db.migrate(database_url, service))
    proxy = Proxy(socket_of(database_url))
    proxy.start()
    keep = sys.base_prefix if _under_home(sys.base_prefix) else None
    secrets = production_secrets(ROOT / ".run" / f"secrets-{os.getpid()}")
    workers: dict[str, tuple[Any, int, Path, Path]] = {}
    try:
        for name in SERVICES:
            service = parse_unit(UNITS / "billing@.service", name)["Service"]
            sandbox = Sandbox(service)
            binds = {}
            for path in sandbox.writable:
                host = tmp_path / name / path.strip("/").replace("/", "_")
                host.mkdir(parents=True)
                os.chown(host, NOBODY, NOBODY)
                binds[path] = host
            port = free_port()
            env = {
                "PATH": "/usr/bin:/bin",
                "HOME": "/",  # deploy/sysusers.d: the billing user's home
                "WORKDIR": str(ROOT),
                **sandbox.env,
                # /etc/billing/billing.env
                "BILLING_DATABASE_URL": tcp_url(database_url, proxy),
                "BILLING_KAFKA_BOOTSTRAP_SERVERS": broker,
                "BILLING_METRICS_PORT": str(port),
                "BILLING_NOTICE_PORT": str(free_port()),
                "BILLING_ZONE_PORT": str(free_port()),
                # the supplier's identity: invoicing refuses to start without it
                **DEV_SUPPLIER,
                **secrets,
            }
            out = tmp_path / f"{name}.out"
            with out.open("wb") as o:
                proc = subprocess.Popen(
                    ["unshare", "-m", "--propagation", "private", "sh", "-c",
                     sandbox.script(binds, keep), "sandbox", *_exec_start(service)],
                    env=env, stdout=o, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            workers[name] = (proc, port, out, binds[sandbox.env["STATE_DIRECTORY"]])
        for name, (proc, port, out, state) in workers.items():
            try:
                body = wait_health(port, 200, timeout=90, proc=proc)
            except AssertionError:
                pytest.fail(f"{name} not ready in its sandbox (exit {proc.poll()}):\n"
                            + out.read_text()[-3000:])  # fmt: skip
            assert body["checks"]["database"]["ok"] and body["checks"]["kafka"]["ok"]
            # it wrote where the unit says, as the unit's user
            made = list(state.iterdir())
            assert [p.name for p in made] == [f"billing-{name}-data"], made
            assert all(p.stat().st_uid == NOBODY for p in made)
    finally:
        for proc, *_ in workers.values():
            stop(proc)
        proxy.close()
        shutil.rmtree(Path(secrets["BILLING_OPERATOR_TOKENS_FILE"]).parent)
    for name, (proc, _, out, _) in workers.items():
        lines = json_lines(out.read_text(), f"{name}'s output")
        assert "worker started" in [line.get("event") for line in lines], name
        assert proc.returncode in (0, -15), f"{name} exit {proc.returncode}"
