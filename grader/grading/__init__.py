"""Judges a folder: runs the suites under pytest (trusted) and scores what happened."""
