"""CloudEvents 1.0 envelope, structured mode, JSON (DESIGN section 3)."""

from __future__ import annotations

import os
import time as _time
import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"


class CloudEvent(BaseModel):
    """The envelope every record carries. ``data`` is validated against the model its
    ``type`` names (see ``schemas.registry``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str = Field(min_length=1, description="/services/<name> or /importers/<name>")
    type: str = Field(pattern=r"^[a-z][a-z_.]*\.v[0-9]+$", description="e.g. payment.received.v1")
    time: AwareDatetime
    subject: str | None = Field(default=None, description="The contract number, when known.")
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]


def envelope(
    type_: str, source: str, subject: str | None, data: BaseModel, time: datetime
) -> CloudEvent:
    return CloudEvent(
        id=new_event_id(),
        source=source,
        type=type_,
        time=time,
        subject=subject,
        data=data.model_dump(mode="json"),
    )


# Event ids are UUIDs of version 7 (RFC 9562): the first 48 bits are the Unix time in
# milliseconds, the rest random. Every consumer records each id it applies in its inbox,
# whose primary key is (consumer, event_id): ids that grow with time are added at the end
# of that index, where random ones landed all over it, reading and dirtying a different
# page each once the index outgrew memory (docs/performance.md#finding-13). The time in
# the id is the producer's wall clock; nothing reads it back.
class _Ids:
    """Event ids in their text form, written from random hex digits: os.urandom read 40
    KiB at a time (one system call per 4,300 ids), the time's part formatted once a
    millisecond. The 74 random bits of a version 7 id are 18 hex digits and two bits of a
    19th, whose other two are the RFC 9562 variant (10: an 8, 9, a or b)."""

    _VARIANT: ClassVar[dict[str, str]] = {
        c: "89ab"[i & 3] for i, c in enumerate("0123456789abcdef")
    }

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pool, self.pos = "", 0
        self.millis, self.head = -1, ""

    def text(self) -> bytes:
        millis = _time.time_ns() // 1_000_000
        if millis != self.millis:
            h = f"{millis:012x}"
            self.millis, self.head = millis, f"{h[:8]}-{h[8:]}-7"  # 7: the version
        pos = self.pos
        if pos + 19 > len(self.pool):
            self.pool, pos = os.urandom(40 * 1024).hex(), 0
        self.pos = pos + 19
        r = self.pool[pos : pos + 19]
        return f"{self.head}{r[:3]}-{self._VARIANT[r[3]]}{r[4:7]}-{r[7:]}".encode()


_IDS = _Ids()
# a new event id in its text form, as ``str(new_event_id())`` gives it (one per event)
event_id_text = _IDS.text


def new_event_id() -> uuid.UUID:
    return uuid.UUID(event_id_text().decode())


# a forked child must not hand out the ids its parent still holds
os.register_at_fork(after_in_child=_IDS.reset)
