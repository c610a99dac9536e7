"""Summary statistics of the numeric columns of a CSV file."""
from .stats import summarize

__all__ = ["summarize"]
