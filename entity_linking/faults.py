"""Fault points for the crash tests: `LTPROBE_FAULT=POINT[@N][:ACTION]` makes the process
kill itself with SIGKILL (ACTION `kill`, the default) or stop forever (`hang`, after writing
`LTPROBE_FAULT: stopped at SPEC` to stderr) the N-th time
(default: the first) it passes `fault_point(POINT)`.

Points are named `stage:where`, e.g. `link-corpus:shard-written` or `eval:batch`; the list is
in docs/reliability.md. Without the variable a fault point costs one dictionary lookup. This is
test machinery: nothing in a normal run sets the variable.
"""

from __future__ import annotations

import os
import signal
import time

_hits: dict[str, int] = {}
SPEC = os.environ.get("LTPROBE_FAULT") or ""
"""The fault asked for (read once, at import); empty in a normal run."""


def fault_point(name: str) -> None:
    """Die (or hang) here when LTPROBE_FAULT names this point and its hit count is reached."""
    spec = SPEC
    if not spec:
        return
    # POINT[@N][:ACTION]: the action is what follows the last ':' when it is a known action
    head, sep, tail = spec.rpartition(":")
    if sep and tail in ("kill", "hang"):
        point, action = head, tail
    else:
        point, action = spec, "kill"
    point, _, nth = point.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != (int(nth) if nth else 1):
        return
    if action == "hang":
        # a test that kills the process from outside waits for this line
        os.write(2, f"LTPROBE_FAULT: stopped at {spec}\n".encode())
        while True:
            time.sleep(3600)
    os.kill(os.getpid(), signal.SIGKILL)
