import sys

from grader.student.cli import main

if __name__ == "__main__":
    sys.exit(main())
