"""The workers this system runs, in the order the dev stack starts them: each is
``services/<name>/worker.py``, whose ``SPEC`` says what it reads, its metrics port and what
the dev stack's quiescence waits for. The command line (``billing migrate``, ``billing audit
log``) and the dev stack go through them; the runtime names none."""

from __future__ import annotations

SERVICES = (
    "invoicing",
    "payments",
    "dunning",
    "provisioning",
    "notify",
    "zone",
    "traffic",
    "voip",
)
