"""CloudEvents 1.0 envelope, structured mode, JSON (DESIGN section 3)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

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
        id=uuid.uuid4(),
        source=source,
        type=type_,
        time=time,
        subject=subject,
        data=data.model_dump(mode="json"),
    )
