"""Invoices: the time of a period priced by the hourly rates of the config.

    [rates]             # per hour, in the currency of the invoice
    acme = 95
    "acme/site" = 80    # a sub-project's own rate wins over its parent's

Amounts are computed in cents from each entry's (rounded) minutes, so the
lines add up exactly to the total.
"""
import dataclasses
import decimal

from . import timeutil


class InvoiceError(Exception):
    """An invoice that cannot be made (a project without a rate)."""


@dataclasses.dataclass
class Line:
    project: str
    minutes: int
    rate_cents: int   # per hour
    amount_cents: int


def rate_for(project, rates):
    """The rate (cents per hour) of PROJECT: its own, else the nearest parent's."""
    parts = project.split("/")
    while parts:
        name = "/".join(parts)
        if name in rates:
            return rates[name]
        parts.pop()
    raise InvoiceError(f"no rate for project {project!r}; add it to the [rates] table")


def cents(amount):
    """A rate from the config (int or float, in currency units) as cents."""
    d = decimal.Decimal(str(amount)).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)
    return int(d * 100)


def lines(entries, rates, rounding=0, now=None):
    """One Line per project (sorted), the amount from the summed minutes."""
    minutes = {}
    for e in entries:
        minutes[e.project] = minutes.get(e.project, 0) + timeutil.round_minutes(e.minutes(now), rounding)
    out = []
    for project in sorted(minutes):
        rate = rate_for(project, rates)
        amount = (minutes[project] * rate + 30) // 60
        out.append(Line(project, minutes[project], rate, amount))
    return out


def money(c):
    sign = "-" if c < 0 else ""
    c = abs(c)
    return f"{sign}{c // 100:,}.{c % 100:02d}"


def hours(minutes):
    return f"{minutes / 60:.2f}"
