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

def python_e2e_test(name, src = None, env = {}, data = [], **kwargs):
    """Runs `src` (default `<name>.py`) with python3; `data` adds runtime files, `env` sets
    environment variables (Bazel 4.2's sh_test has no `env` for `bazel test`)."""
    src = src or "%s.py" % name
    native.sh_test(
        name = name,
        srcs = ["run_python_test.sh"],
        args = ["%s=%s" % (k, v) for k, v in env.items()] + ["$(location %s)" % src],
        data = [src, "junit_runner.py"] + data,
        **kwargs
    )
