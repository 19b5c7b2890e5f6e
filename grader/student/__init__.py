"""The student's commands: ``python -m grader`` (cli), watch, hint, plots."""
