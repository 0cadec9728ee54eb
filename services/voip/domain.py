"""VoIP's decisions, pure: which calls of a CDR file are rated at what price (and which
lines are refused, and why), and what a change of a prepaid balance announces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from schemas.events import RatedCall
from schemas.pricelist import NoPrice, NumberError, PriceList
from services.voip.cdr import CallRecord, ParsedCdr, Refusal

MAX_CALLS_PER_EVENT = 1000


@dataclass(frozen=True)
class Terms:
    """What voip knows of a contract from ``contract.upserted``."""

    currency: str
    prepaid: bool  # its voip service is prepaid; unknown or none: postpaid


@dataclass(frozen=True, slots=True)
class Rated:
    contract: str
    call: RatedCall


@dataclass
class Rating:
    rated: list[Rated] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    duplicates: int = 0  # a call id seen earlier in the same file


def rate(
    parsed: ParsedCdr,
    prices: PriceList,
    contracts: Mapping[str, Terms],
    tz: ZoneInfo,
    country_prefix: str,
) -> Rating:
    """Rate every readable call: the price list's rate on the call's local day (the PBX's
    time zone), in the rate's currency, which must be the contract's. A call of a
    contract voip does not know, to a number that is no number or has no price, or in a
    currency its contract does not bill in, is refused naming the column."""
    out = Rating(refused=list(parsed.refused))
    seen: set[str] = set()
    for c in parsed.calls:
        if c.call_id in seen:
            out.duplicates += 1
            continue
        seen.add(c.call_id)
        try:
            out.rated.append(_rate_one(c, prices, contracts, tz, country_prefix))
        except _Refused as r:
            out.refused.append(Refusal(c.line, r.column, r.value, r.problem, c.call_id))
    return out


class _Refused(Exception):
    def __init__(self, column: str, value: str, problem: str) -> None:
        self.column, self.value, self.problem = column, value, problem


def _rate_one(
    c: CallRecord,
    prices: PriceList,
    contracts: Mapping[str, Terms],
    tz: ZoneInfo,
    country_prefix: str,
) -> Rated:
    terms = contracts.get(c.contract)
    if terms is None:
        raise _Refused("contract", c.contract, "expected a contract number voip knows")
    day = c.started_at.astimezone(tz).date()
    try:
        quote = prices.quote(c.number, day, c.seconds, country_prefix)
    except NumberError as e:
        raise _Refused("number", c.number, str(e)) from None
    except NoPrice:
        raise _Refused("number", c.number, f"expected a price for it on {day}") from None
    rate_ = quote.rate
    if rate_.currency != terms.currency:
        raise _Refused(
            "number",
            c.number,
            f"price list line {rate_.line} prices it in {rate_.currency}, the contract bills in"
            f" {terms.currency}",
        )
    call = RatedCall(
        call_id=c.call_id,
        started_at=c.started_at,
        seconds=c.seconds,
        caller=c.caller,
        number=c.number,
        destination=rate_.destination,
        prefix=rate_.prefix,
        price_minor=quote.price_minor,
        currency=rate_.currency,
        prepaid=terms.prepaid,
    )
    return Rated(c.contract, call)


def events_of(rated: list[Rated]) -> dict[str, list[list[RatedCall]]]:
    """Each contract's calls in file order, in parts of at most 1,000 (one event each)."""
    by_contract: dict[str, list[RatedCall]] = {}
    for r in rated:
        by_contract.setdefault(r.contract, []).append(r.call)
    return {
        contract: [
            calls[i : i + MAX_CALLS_PER_EVENT] for i in range(0, len(calls), MAX_CALLS_PER_EVENT)
        ]
        for contract, calls in by_contract.items()
    }


# --- prepaid credit ------------------------------------------------------------------------


@dataclass(frozen=True)
class Credit:
    """A prepaid balance and which announcements it has made since it was last lifted."""

    balance_minor: int = 0
    low_sent: bool = False
    exhausted_sent: bool = False


@dataclass(frozen=True)
class CreditChange:
    credit: Credit
    low: bool  # announce voip.credit_low now
    exhausted: bool  # announce voip.credit_exhausted now


def change_credit(before: Credit, change_minor: int, threshold_minor: int) -> CreditChange:
    """The balance after ``change_minor``. Each announcement is made once per crossing:
    low when the balance falls below ``threshold_minor`` (0: never), exhausted when it
    reaches zero or less; only a change that lifts the balance back (a top-up: calls
    never raise it) re-arms them, low above the threshold, exhausted above zero."""
    balance = before.balance_minor + change_minor
    low_sent, exhausted_sent = before.low_sent, before.exhausted_sent
    if change_minor > 0:
        low_sent = low_sent and balance < threshold_minor
        exhausted_sent = exhausted_sent and balance <= 0
    low = not low_sent and balance < threshold_minor
    exhausted = not exhausted_sent and balance <= 0
    return CreditChange(
        Credit(balance, low_sent or low, exhausted_sent or exhausted), low, exhausted
    )
