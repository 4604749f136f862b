// The immutable, thread-shared half of talking to kube-apiserver: the TLS context built from a
// KubeClientConfig and the bearer token source. Each event loop owns its own ApiServerClient
// on top of one shared KubeTransport.
#pragma once

#include <openssl/ssl.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/openssl_handles.h"
#include "config/kubeconfig.h"

namespace aaproxy {

// Bearer token of the client: a static token, or one re-read from a file the way client-go's
// cachedFileTokenSource does (kept for `refresh_period` minus `leeway`, i.e. re-read every 50 s
// by default, and dropped early when kube-apiserver answers 401). A failed re-read keeps the last
// good token. Thread-safe.
class BearerTokenSource {
 public:
  struct Options {
    absl::Duration refresh_period = absl::Minutes(1);
    absl::Duration leeway = absl::Seconds(10);
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  BearerTokenSource(std::string initial_token, std::string token_file, Options options);

  // The token to send; empty: none. May read the token file (small, local; done on the caller's
  // loop, like client-go does on the request goroutine).
  std::string token();

  // Forgets a token obtained before `t` (client-go's ResetTokenOlderThan after a 401).
  void resetTokenOlderThan(absl::Time t);

  absl::Time now() const { return options_.now(); }

 private:
  const std::string file_;
  const Options options_;
  Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time read_at_ ABSL_GUARDED_BY(mu_);  // InfinitePast: re-read on next use
  bool have_token_ ABSL_GUARDED_BY(mu_) = false;
};

class KubeTransport {
 public:
  struct Options {
    BearerTokenSource::Options token;
  };

  // Builds the SSL_CTX: CA from the config (else the system store) unless insecure-skip-tls-verify,
  // the client certificate and key when given, TLS >= 1.2, ALPN http/1.1.
  static absl::StatusOr<std::shared_ptr<KubeTransport>> create(
      std::shared_ptr<const KubeClientConfig> config, const Options& options);
  static absl::StatusOr<std::shared_ptr<KubeTransport>> create(
      std::shared_ptr<const KubeClientConfig> config) {
    return create(std::move(config), Options());
  }

  const KubeClientConfig& config() const { return *config_; }
  // Shared by all loops; OpenSSL allows concurrent SSL_new() on a configured SSL_CTX.
  SSL_CTX* sslContext() const { return ssl_ctx_.get(); }
  BearerTokenSource& tokens() const { return *tokens_; }

 private:
  KubeTransport(std::shared_ptr<const KubeClientConfig> config, SslCtxPtr ctx,
                std::unique_ptr<BearerTokenSource> tokens)
      : config_(std::move(config)), ssl_ctx_(std::move(ctx)), tokens_(std::move(tokens)) {}

  const std::shared_ptr<const KubeClientConfig> config_;
  const SslCtxPtr ssl_ctx_;
  const std::unique_ptr<BearerTokenSource> tokens_;
};

}  // namespace aaproxy
