// TLS context and bearer token source for the kube-apiserver client.
#include "kube/kube_transport.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

using PkeyDeleter = EvpPkeyDeleter;

std::string opensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

std::unique_ptr<BIO, BioDeleter> memBio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

absl::Status loadCaBundle(SSL_CTX* ctx, const std::string& pem) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  auto bio = memBio(pem);
  int added = 0;
  while (true) {
    std::unique_ptr<X509, X509Deleter> cert(
        PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      break;
    }
    if (X509_STORE_add_cert(store, cert.get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat("certificate-authority: ", opensslErrors()));
    }
    ++added;
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (added == 0) {
    return absl::InvalidArgumentError("certificate-authority: no PEM certificates found");
  }
  return absl::OkStatus();
}

absl::Status loadClientCertificate(SSL_CTX* ctx, const std::string& cert_pem,
                                   const std::string& key_pem) {
  auto cert_bio = memBio(cert_pem);
  std::unique_ptr<X509, X509Deleter> leaf(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!leaf) {
    return absl::InvalidArgumentError(absl::StrCat("client-certificate: ", opensslErrors()));
  }
  if (SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("client-certificate: ", opensslErrors()));
  }
  // Intermediates after the leaf are sent as the chain.
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {  // takes ownership on success
      X509_free(extra);
      return absl::InvalidArgumentError(absl::StrCat("client-certificate: ", opensslErrors()));
    }
  }
  ERR_clear_error();
  auto key_bio = memBio(key_pem);
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(absl::StrCat("client-key: ", opensslErrors()));
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("client-key: does not match client-certificate: ", opensslErrors()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> readTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("failed to read token file \"", path, "\""));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(ss.str()));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("read empty token from file \"", path, "\""));
  }
  return token;
}

}  // namespace

BearerTokenSource::BearerTokenSource(std::string initial_token, std::string token_file,
                                     Options options)
    : file_(std::move(token_file)), options_(std::move(options)) {
  MutexLock lock(&mu_);
  token_ = std::move(initial_token);
  have_token_ = !token_.empty();
  read_at_ = have_token_ ? options_.now() : absl::InfinitePast();
}

std::string BearerTokenSource::token() {
  MutexLock lock(&mu_);
  if (file_.empty()) {
    return token_;
  }
  const absl::Time now = options_.now();
  if (have_token_ && read_at_ != absl::InfinitePast() &&
      read_at_ + options_.refresh_period - options_.leeway > now) {
    return token_;
  }
  absl::StatusOr<std::string> fresh = readTokenFile(file_);
  if (!fresh.ok()) {
    // As client-go: keep serving the last good token; with none, send no token.
    return have_token_ ? token_ : std::string();
  }
  token_ = *std::move(fresh);
  have_token_ = true;
  read_at_ = now;
  return token_;
}

void BearerTokenSource::resetTokenOlderThan(absl::Time t) {
  MutexLock lock(&mu_);
  if (!file_.empty() && read_at_ < t) {
    read_at_ = absl::InfinitePast();
  }
}

absl::StatusOr<std::shared_ptr<KubeTransport>> KubeTransport::create(
    std::shared_ptr<const KubeClientConfig> config, const Options& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    return absl::InternalError(absl::StrCat("SSL_CTX_new: ", opensslErrors()));
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof(kAlpn) - 1);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  if (config->insecure_skip_tls_verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!config->ca_pem.empty()) {
      if (absl::Status s = loadCaBundle(ctx.get(), config->ca_pem); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(config->source, ": ", s.message()));
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
      return absl::InternalError(absl::StrCat("system trust store: ", opensslErrors()));
    }
  }
  if (!config->client_cert_pem.empty()) {
    if (absl::Status s =
            loadClientCertificate(ctx.get(), config->client_cert_pem, config->client_key_pem);
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(config->source, ": ", s.message()));
    }
  }
  auto tokens = std::make_unique<BearerTokenSource>(config->bearer_token, config->bearer_token_file,
                                                    options.token);
  return std::shared_ptr<KubeTransport>(
      new KubeTransport(std::move(config), std::move(ctx), std::move(tokens)));
}

}  // namespace aaproxy
