"""A warm Python for the mutation runner: the heavy third-party imports once, one fork per command.

Every mutant is graded by ``python -m grader EXERCISE ...`` (see ``grader.instructor.mutation``).
Started cold, about 60 % of that command's CPU time on a killed mutant is spent importing torch
and transformers before the first test runs.  This server imports them once (nothing of the
kata: ``grader``, ``tests`` and ``solutions`` are imported afresh in every child), then, for each
request line on stdin, forks a child that runs ``python -m grader ARGS`` exactly as a new process
would (its own session, stdin from /dev/null, stdout and stderr into the request's log file).

Protocol, one JSON object per line: request ``{"argv": [...], "log": PATH, "cwd": DIR}``;
replies ``{"pid": N}`` when the child is forked, then ``{"pid": N, "exit": CODE}`` when it ends
(a child killed by signal ``S`` exits ``-S``, as ``subprocess`` reports it).  The runner kills a
child that runs past its timeout with ``os.killpg(pid, SIGKILL)``.
"""
from __future__ import annotations

import json
import os
import sys

# What every grading command imports anyway; transformers loads its modules lazily, so the names
# the suites use are looked up to load them here.
WARM_MODULES = ("numpy", "torch", "torch.nn.functional", "torch.utils.data", "transformers")
WARM_TRANSFORMERS = ("BertConfig", "BertModel", "BertForPreTraining", "BertForMaskedLM",
                     "BertForSequenceClassification", "BertTokenizer", "Trainer", "TrainingArguments")


def warm_up() -> None:
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    import transformers

    for name in WARM_TRANSFORMERS:
        getattr(transformers, name)


def run_child(argv: list[str], log: str, cwd: str, replies_fd: int) -> None:
    """In the forked child: become ``python -m grader ARGV``; never returns."""
    code = 1
    try:
        os.setsid()
        os.close(replies_fd)
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)
        sys.argv = ["grader", *argv]
        import runpy

        try:
            runpy.run_module("grader", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:  # as the interpreter does: None is 0, a message is printed and gives 1
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported in the log, like an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def serve(requests, replies) -> None:
    for line in requests:
        if not line.strip():
            continue
        req = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            run_child(req["argv"], req["log"], req["cwd"], replies.fileno())
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        replies.write(json.dumps({"pid": pid, "exit": code}) + "\n")
        replies.flush()


def main() -> None:
    warm_up()
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
