"""aa_fuzz_target: one libFuzzer target and its corpus regression test.

`name` (a cc_binary): with --config=fuzz, linked with libFuzzer's main (-fsanitize=fuzzer);
otherwise linked with :regression_main, which runs the target over the files it is given.
`name + "_corpus_test"` (a cc_test): the same function over fuzz/corpus/<corpus>/, so that
`bazel test //...` checks every target's invariants on its seeds with the normal toolchain.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_test")

def aa_fuzz_target(name, srcs, corpus, deps = [], dict = None):
    common = deps + [":fuzz_check"]
    cc_binary(
        name = name,
        testonly = True,
        srcs = srcs,
        linkopts = select({
            ":libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = common + select({
            ":libfuzzer": [],
            "//conditions:default": [":regression_main"],
        }),
    )
    cc_test(
        name = name + "_corpus_test",
        size = "small",
        srcs = srcs,
        args = ["fuzz/corpus/" + corpus],
        data = native.glob(["corpus/" + corpus + "/**"]),
        deps = common + [":regression_main"],
    )
