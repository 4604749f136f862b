"""python_e2e_test: one Python unittest file run by the system python3.

An sh_test around run_python_test.sh, not a py_test: Bazel 4.2.3's py_test stub runs `python`,
which Debian 12 does not have.
"""

# What every suite that drives the real proxy needs at run time.
PROXY_SUITE_DATA = [
    "sample_backend_test.py",
    ":harness",
    "//proxy:aa-proxy",
    "//sample:sample-backend",
]

def python_e2e_test(name, data = [], **kwargs):
    """Runs `<name>.py` with python3; `data` adds runtime files."""
    native.sh_test(
        name = name,
        srcs = ["run_python_test.sh"],
        args = ["$(location %s.py)" % name],
        data = ["%s.py" % name] + data,
        **kwargs
    )
