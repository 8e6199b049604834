"""Command-line entry points: each module parses its arguments and calls the library.

Stage 13, the top. May import: every stage.
"""
