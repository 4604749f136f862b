# syntax=docker/dockerfile:1
# The sample backend (serves the sample-api-server/v1alpha1 API over plain HTTP, TCP or a Unix
# socket) for the deploy/kubernetes walkthrough.
#
#   docker build -f deploy/sample-backend.Dockerfile -t sample-backend:dev .   # from the repository root

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      bazel-bootstrap bazel-rules-java g++ ca-certificates \
      libevent-dev libssl-dev libsimdjson-dev libabsl-dev libyaml-cpp-dev libhttp-parser-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN bazel --output_user_root=/root/.cache/bazel build --spawn_strategy=local --symlink_prefix=/ \
      //sample:sample-backend \
 && mkdir -p /out \
 && cp "$(bazel --output_user_root=/root/.cache/bazel info bazel-bin)/sample/sample-backend" /out/sample-backend \
 && strip /out/sample-backend \
 && /out/sample-backend --help >/dev/null

FROM debian:12-slim
# The shared libraries sample-backend links (`ldd sample-backend`, checked by
# //deploy:manifests_test); libc6, libstdc++6 and libgcc-s1 are in the base image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libevent-2.1-7 libevent-core-2.1-7 libevent-openssl-2.1-7 libevent-pthreads-2.1-7 \
      libssl3 libabsl20220623 libhttp-parser2.9 libatomic1 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/sample-backend /usr/local/bin/sample-backend
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sample-backend"]
CMD ["--listen", "0.0.0.0:8080"]
