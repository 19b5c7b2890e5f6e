"""Runs the student's module where it cannot touch the grader: the trusted side.

* ``controller``: ``Sandbox``, the child process the grader can always kill (namespaces, limits,
  deadlines), and the errors that come back from it;
* ``worker``: the child's side (run as a script, never imported by the grader);
* ``wire``: the only format that crosses the process boundary (plain data, arrays as raw bytes);
* ``remote``: what a suite holds in its hands (``student.softmax(x)``), proxies over the wire;
* ``inprocess``: a benchmark-only transport that serves the module from a thread (unsafe).

Nothing here imports ``grader.grading``, ``grader.student`` or ``grader.instructor``.
"""
