# syntax=docker/dockerfile:1
# aa-proxy image: built with Bazel on Debian 12, run on debian:12-slim as a non-root user.
#
#   docker build -f deploy/aa-proxy.Dockerfile -t aa-proxy:dev .     # from the repository root
#
# The build context is the repository root; deploy/aa-proxy.Dockerfile.dockerignore keeps Bazel's
# output trees and local runs out of it (BuildKit reads <Dockerfile>.dockerignore).

FROM debian:12 AS build
# The same -dev packages tools/install-deps.sh installs, minus the test-only ones (gtest,
# benchmark, nginx). bazel-bootstrap is Debian's offline Bazel 4.2.3; bazel-rules-java provides
# the @rules_java repository WORKSPACE points at.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bazel-bootstrap bazel-rules-java g++ ca-certificates \
      libevent-dev libssl-dev libsimdjson-dev libabsl-dev libyaml-cpp-dev libhttp-parser-dev \
      libnghttp2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --spawn_strategy=local: Bazel's linux-sandbox needs namespaces that unprivileged image builds
# usually do not have. --symlink_prefix=/ : no bazel-* symlinks in the tree.
RUN bazel --output_user_root=/root/.cache/bazel build --spawn_strategy=local --symlink_prefix=/ \
      //proxy:aa-proxy \
 && mkdir -p /out \
 && cp "$(bazel --output_user_root=/root/.cache/bazel info bazel-bin)/proxy/aa-proxy" /out/aa-proxy \
 && strip /out/aa-proxy \
 && /out/aa-proxy --help >/dev/null

FROM debian:12-slim
# Only the shared libraries aa-proxy links (`ldd aa-proxy`; libc6, libstdc++6 and libgcc-s1 are
# in the base image; //deploy:manifests_test checks this list against ldd), and ca-certificates
# for kube-apiserver endpoints given by a kubeconfig without a CA.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libevent-core-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 \
      libssl3 libsimdjson14 libabsl20220623 libyaml-cpp0.7 libhttp-parser2.9 libatomic1 \
      libnghttp2-14 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/aa-proxy /usr/local/bin/aa-proxy
# 65532 is the conventional "nonroot" uid/gid (distroless); no home directory or shell needed.
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/aa-proxy"]
CMD ["--help"]
