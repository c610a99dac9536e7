"""Word frequencies: top_words() and a command line (python3 wordfreq.py -h)."""
import argparse
import sys
from collections import Counter


def words(text):
    """Yields the words of TEXT: maximal runs of alphanumeric characters, lower-cased."""
    cur = []
    for ch in text:
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            yield "".join(cur).lower()
            cur = []
    if cur:
        yield "".join(cur).lower()


def rank(counter, n):
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def top_words(text, n):
    """The N most frequent words of TEXT as (word, count), most frequent first,
    ties alphabetical."""
    return rank(Counter(words(text)), n)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Prints the most frequent words of files.")
    ap.add_argument("-n", type=int, default=10, help="how many words (default 10)")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    counter = Counter()
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as f:
                counter.update(words(f.read()))
        except (OSError, UnicodeDecodeError) as e:
            print(f"wordfreq: {path}: {e}", file=sys.stderr)
            return 1
    for word, count in rank(counter, args.n):
        print(f"{word} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
