"""Unions of closed intervals: merge() and total_length()."""


def merge(intervals):
    """A new sorted list of (start, end) with overlapping or touching intervals
    merged; ValueError for a pair whose start is after its end."""
    for start, end in intervals:
        if start > end:
            raise ValueError(f"interval ({start}, {end}) starts after it ends")
    out = []
    for start, end in sorted((s, e) for s, e in intervals):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def total_length(intervals):
    """The length covered by the union of INTERVALS."""
    return sum(end - start for start, end in merge(intervals))
