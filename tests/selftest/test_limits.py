"""The sandbox's resource limits are what the controller's docstring and the README say."""
import resource
from pathlib import Path

from grader import manifest, settings
from grader.sandbox.controller import Sandbox
from grader.sandbox.remote import StudentModule

ROOT = Path(__file__).resolve().parents[2]


def test_limits_are_applied_in_the_sandbox():
    name = "attention_numpy"
    ex = manifest.by_name()[name]
    target = ROOT / "solutions"
    box = Sandbox(target, name, [e.name for e in manifest.load()], **settings.sandbox_settings(target, ex, "cpu"))
    try:
        student = StudentModule(box, "cpu", name)
        got = {what: tuple(student.build("resource.getrlimit", getattr(resource, what)))
               for what in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NOFILE")}
    finally:
        box.close()

    def expected(what, value):
        hard = resource.getrlimit(getattr(resource, what))[1]       # never raised above a lower hard limit
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        return (value, value)

    cpu_s = int(ex.budget + settings.START_TIMEOUT_S + settings.CPU_SLACK_S)
    assert got["RLIMIT_CPU"] == expected("RLIMIT_CPU", cpu_s), got
    assert got["RLIMIT_AS"] == expected("RLIMIT_AS", ex.memory_mb << 20), got
    assert got["RLIMIT_FSIZE"] == expected("RLIMIT_FSIZE", settings.FILE_MB << 20), got
    assert got["RLIMIT_CORE"] == (0, 0) and got["RLIMIT_NOFILE"] == expected("RLIMIT_NOFILE", 1024), got
