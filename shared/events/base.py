"""The CloudEvents 1.0 envelope (structured JSON mode) and the base of every payload.

Payload models are strict: no silent coercion of `"true"` into a bool or of a
number into a date, money only as two-decimal strings, times only with an
offset. Fields the contract does not name are ignored on input, so senders may
add their own; the project's outbound events only ever add fields.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

SPECVERSION = "1.0"

Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")
]
"""An identifier: settlement, filing, person, hospital or agency code."""

RegionCode = Annotated[str, StringConstraints(pattern=r"^[1-8][0-9]{5}$")]
Text = Annotated[str, StringConstraints(max_length=500)]


class Payload(BaseModel):
    """Base of every event's ``data``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    #: The CloudEvents ``type`` this payload travels under.
    TYPE: ClassVar[str] = ""


P = TypeVar("P", bound="Payload")


class Reason(BaseModel):
    """Why something was refused: a stable code (documented in docs/) and a human message."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    code: Code
    message: Text


class Envelope(BaseModel, Generic[P]):
    """A CloudEvents 1.0 event with its typed payload in ``data``.

    Extension attributes other than the two below are kept in ``model_extra``.
    """

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    specversion: Annotated[str, StringConstraints(pattern=r"^1\.0$")]
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    time: AwareDatetime
    subject: str | None = None
    datacontenttype: str | None = "application/json"
    data: P
    #: Extension attributes: the event that started a chain and the one that caused this.
    correlationid: str | None = None
    causationid: str | None = None
