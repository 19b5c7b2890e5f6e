"""The kata's grader: ``python -m grader`` grades one folder of exercise modules."""
