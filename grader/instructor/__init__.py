"""The instructor's commands: verify, release, bench (never in the student copy)."""
