#!/usr/bin/env python3
"""Run one pytest file and report each test as a TAP line on stdout, for
automake's tap-driver (Makefile.am's PY_LOG_COMPILER): every test counts as
one PASS or FAIL in `make check` and .ci/run. pytest's own report goes to
stderr, i.e. to the test's .log file."""

import os
import sys
from typing import Any, Dict, List

import pytest


class TapReporter:
    """Collects each test's setup/call/teardown outcome, prints one TAP line."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.n = 0
        self.reports: Dict[str, List[Any]] = {}

    def _emit(self, ok: bool, name: str, directive: str = "") -> None:
        self.n += 1
        status = "ok" if ok else "not ok"
        self.out.write(f"{status} {self.n} - {name}{directive}\n")
        self.out.flush()

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self._emit(False, f"collect {report.nodeid}")

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.reports.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        reports = self.reports.pop(nodeid, [])
        name = nodeid.split("::", 1)[-1]
        if any(r.failed for r in reports):
            self._emit(False, name)
        elif any(r.skipped for r in reports):
            reason = next(r for r in reports if r.skipped).longrepr
            why = reason[2] if isinstance(reason, tuple) else str(reason)
            self._emit(True, name, f" # SKIP {why}")
        else:
            self._emit(True, name)

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        self.out.write(f"1..{self.n}\n")
        self.out.flush()


def main() -> int:
    """pytap.py TESTFILE [pytest args...]"""
    tap = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)                    # pytest's terminal output to stderr
    args = [sys.argv[1], "-p", "no:cacheprovider", "-rfE", "-v", *sys.argv[2:]]
    rc = pytest.main(args, plugins=[TapReporter(tap)])
    # failures are "not ok" lines already; other codes are errors of pytest
    return 0 if rc in (0, 1, 5) else int(rc)


if __name__ == "__main__":
    sys.exit(main())
