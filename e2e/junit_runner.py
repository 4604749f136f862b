#!/usr/bin/env python3
"""Runs one e2e unittest file and, under `bazel test`, writes its cases to $XML_OUTPUT_FILE as
JUnit XML, so that tools/test.sh counts every test case of a suite, not one per suite.

Usage: junit_runner.py SUITE.py   (what run_python_test.sh runs)
"""
import importlib.util
import os
import sys
import time
import unittest
from xml.etree import ElementTree as ET


class RecordingResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []  # (class, name, seconds, outcome, message)
        self._started = {}

    def startTest(self, test):
        self._started[test.id()] = time.monotonic()
        super().startTest(test)

    def _record(self, test, outcome, message=""):
        seconds = time.monotonic() - self._started.get(test.id(), time.monotonic())
        class_name, _, name = test.id().rpartition(".")
        self.cases.append((class_name, name, seconds, outcome, message))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._record(test, "passed")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)  # also setUpClass/tearDownClass errors (an _ErrorHolder)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._record(test, "failure", "unexpected success")


def write_junit(path, suite_name, cases):
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(cases)),
                       failures=str(sum(c[3] == "failure" for c in cases)),
                       errors=str(sum(c[3] == "error" for c in cases)),
                       skipped=str(sum(c[3] == "skipped" for c in cases)))
    for class_name, name, seconds, outcome, message in cases:
        case = ET.SubElement(suite, "testcase", classname=class_name, name=name,
                             time=f"{seconds:.3f}")
        if outcome in ("failure", "error", "skipped"):
            ET.SubElement(case, outcome, message=message[:2000])
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main():
    path = sys.argv[1]
    sys.argv = [path]
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    result = unittest.TextTestRunner(verbosity=2, resultclass=RecordingResult).run(suite)
    xml_path = os.environ.get("XML_OUTPUT_FILE")
    if xml_path:
        write_junit(xml_path, name, result.cases)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
