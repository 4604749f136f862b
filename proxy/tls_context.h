// The serving TLS configuration: certificate (from files or generated), client-certificate request.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/libevent_handles.h"

namespace aaproxy {

struct ServerTlsSettings {
  std::string cert_file;  // empty with key_file empty: generate a self-signed certificate
  std::string key_file;
  // The files' contents, already read: when cert_pem is set, the files are not read again.
  std::string cert_pem;
  std::string key_pem;
  int min_version = TLS1_2_VERSION;
  bool http2 = false;  // ALPN offers h2 before http/1.1
  std::string cipher_list;  // TLS 1.2 suites in OpenSSL's syntax; empty: OpenSSL's defaults
  // PEM bundles whose CA names the handshake advertises when it asks for a client certificate.
  // Empty: no certificate is asked for. Any certificate sent completes the handshake (Go's
  // RequestClientCert, as k8s.io/apiserver serves); the authenticators verify it per request
  // against the bundle that vouches for their identity.
  std::vector<std::string> client_ca_pems;
};

// An immutable SSL_CTX; new connections take the current one, so a reload swaps the whole object.
class ServerTlsContext {
 public:
  static absl::StatusOr<std::shared_ptr<const ServerTlsContext>> create(
      const ServerTlsSettings& settings);

  SSL_CTX* get() const { return ctx_.get(); }
  // The serving certificate in PEM (useful when it was generated in memory).
  const std::string& certificatePem() const { return cert_pem_; }

 private:
  SslCtxPtr ctx_;
  std::string cert_pem_;
};

// The certificates a TLS client sent after its leaf (SSL_get_peer_cert_chain on a server), also
// on a resumed session, which comes from the server's session cache with its chain (see
// ServerTlsContext::create). Empty when the client sent no chain.
X509StackPtr peerCertificateChain(SSL* ssl);

// Reads a whole file; the error names the path.
absl::StatusOr<std::string> readFileToString(const std::string& path);

// Parses every certificate of a PEM bundle; an error when it holds none.
absl::StatusOr<std::vector<X509Ptr>> parsePemCertificates(std::string_view pem);

// A self-signed ECDSA P-256 certificate for localhost/127.0.0.1/::1, as extension API servers
// generate when no serving certificate is configured. Returns {cert PEM, key PEM}.
absl::StatusOr<std::pair<std::string, std::string>> generateSelfSignedCertificate(
    const std::string& common_name);

// The earliest notAfter (Unix seconds) among the certificates of a PEM bundle; nullopt if none.
std::optional<double> earliestExpiry(std::string_view pem);

// The OpenSSL error queue as text (and cleared), for error messages.
std::string drainOpenSslErrors();

}  // namespace aaproxy
