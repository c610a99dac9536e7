"""Roman numerals from 1 to 3999: to_roman() and from_roman()."""

_VALUES = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
           (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


def to_roman(n):
    """The upper-case numeral of N (1..3999); ValueError otherwise."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 3999:
        raise ValueError(f"roman numerals cover 1 to 3999, not {n!r}")
    out = []
    for value, sym in _VALUES:
        while n >= value:
            out.append(sym)
            n -= value
    return "".join(out)


_TABLE = {}


def from_roman(s):
    """The number of the canonical numeral S (any case); ValueError otherwise."""
    if not _TABLE:
        for n in range(1, 4000):
            _TABLE[to_roman(n)] = n
    if not isinstance(s, str) or s.upper() not in _TABLE:
        raise ValueError(f"not a canonical roman numeral: {s!r}")
    return _TABLE[s.upper()]
