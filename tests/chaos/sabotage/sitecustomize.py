"""A deliberately broken system, for the test that shows the chaos run's checks can fail.

Python imports this module at start-up in every process whose PYTHONPATH names this folder
(the chaos run hands its environment to the workers). BILLING_SABOTAGE chooses the defect:

- ``mail-twice``: notify hands every e-mail to the server twice, as a sender that sent a
  whole batch again after a crash did before the chaos run found it;
- ``inbox``: the workers' inbox no longer skips an event it applied before, and each member
  handed partitions reads them from the start of the topics. (The handlers' own keys still
  keep money and messages single, so what this breaks depends on when a rebalance falls:
  an experiment, not a test.)
"""

from __future__ import annotations

import os

_SABOTAGE = os.environ.get("BILLING_SABOTAGE")

if _SABOTAGE == "mail-twice":
    from typing import Any

    from services.notify import channels

    send_once = channels.Email.send

    async def _send_twice(self: Any, msg: Any) -> None:
        await send_once(self, msg)
        await send_once(self, msg)

    channels.Email.send = _send_twice  # type: ignore[method-assign]

if _SABOTAGE == "inbox":
    from typing import Any

    from services.runtime import consumer, source

    async def _claim_every_event(self: Any, conn: Any, parsed: list[Any]) -> list[Any]:
        return parsed

    assigned = source._Listener.on_partitions_assigned

    async def _replay_from_the_start(self: Any, partitions: list[Any]) -> None:
        await assigned(self, partitions)
        if partitions:
            await self.source.consumer.seek_to_beginning(*partitions)

    consumer.BatchConsumer._claim = _claim_every_event  # type: ignore[method-assign]
    source._Listener.on_partitions_assigned = _replay_from_the_start  # type: ignore[method-assign,assignment]
