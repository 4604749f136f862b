#!/usr/bin/env python3
"""Counts test cases for `tools/test.sh` from Bazel's summary and the targets' test.xml files.

Usage: count_tests.py BAZEL_OUTPUT_LOG TESTLOGS_DIR. Prints "N passed, N failed".
Each target in the summary contributes its test cases (from test.xml, cached results included);
a target without a readable test.xml counts as one case; targets that failed to build, timed out
or have no status count as one failed case.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

SUMMARY = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|FLAKY|TIMEOUT|NO STATUS|"
                     r"FAILED TO BUILD|INCOMPLETE)\b")


def cases(xml_path):
    """(total, failed) test cases in a JUnit XML file, or None when unreadable."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return None
    total = failed = 0
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            continue  # neither passed nor failed
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
    return (total, failed) if total else None


def main():
    log, testlogs = sys.argv[1], sys.argv[2]
    passed = failed = 0
    with open(log, errors="replace") as f:
        for line in f:
            m = SUMMARY.match(line.strip())
            if not m:
                continue
            target, status = m.groups()
            package, _, name = target[2:].partition(":")
            counted = cases(os.path.join(testlogs, package, name, "test.xml"))
            if status in ("PASSED", "FLAKY"):
                total, bad = counted or (1, 0)
                passed += total - bad
                failed += bad
            elif status == "FAILED" and counted and counted[1] > 0:
                passed += counted[0] - counted[1]
                failed += counted[1]
            else:
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
