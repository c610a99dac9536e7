"""A to-do list manager for the terminal: python3 -m todo --help."""
