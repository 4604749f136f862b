// TLS to an https:// backend: the client SSL_CTX (built once at start-up from the
// UpstreamAddress, shared by every worker's pool) and what its failures mean in Go's words.
#pragma once

#include <string_view>

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/openssl_handles.h"
#include "config/proxy_options.h"

namespace aaproxy {

// The last resumable session one pool's backend issued, offered again on the pool's next new
// connection. One per pool; used on its worker's thread only.
class UpstreamTlsSessions {
 public:
  SSL_SESSION* last() const { return last_.get(); }
  void keep(SslSessionPtr session) { last_ = std::move(session); }

 private:
  SslSessionPtr last_;
};

// Why an upstream TLS connection failed, worded as Go's crypto/tls and crypto/x509 word it
// (kube-aggregator's messages for the same failures read alike).
struct UpstreamTlsError {
  std::string message;  // empty: TLS has nothing to add (a socket error or a plain close)
  // The backend sent a fatal alert: it refused us (no or an unknown client certificate).
  bool peer_alert = false;
};

// Immutable after create(); OpenSSL allows SSL_new() on a configured SSL_CTX from any thread.
class UpstreamTlsContext {
 public:
  // TLS 1.2+, ALPN http/1.1, the backend's chain verified against tls.ca_file (else the system
  // trust store) and its name against tls.server_name (else the host). Errors name the flag:
  // `--upstream-ca-file: no PEM certificates found in "/etc/ca.crt"`.
  static absl::StatusOr<std::shared_ptr<const UpstreamTlsContext>> create(
      const UpstreamAddress& address);

  // A client SSL for one new connection: SNI (for a DNS name) and the session `sessions` last
  // kept, offered for resumption. Sessions the backend issues on the connection go to
  // `sessions`, which must outlive the SSL. Null only when OpenSSL cannot allocate.
  SslPtr newSsl(UpstreamTlsSessions& sessions) const;

  // The name the backend's certificate must hold.
  const std::string& serverName() const { return server_name_; }

  // Reads the cause of a failed handshake or read on `ssl` from its verification result and
  // `errors`, the OpenSSL errors the operation left (bufferevent_get_openssl_error).
  UpstreamTlsError describeError(SSL* ssl, const std::vector<unsigned long>& errors) const;

 private:
  UpstreamTlsContext() = default;

  SslCtxPtr ctx_;
  std::string server_name_;
  bool server_name_is_ip_ = false;
};

// Whether a backend connection error is a failed TLS handshake (a certificate that does not
// verify, a refused client certificate, a backend that does not speak TLS): the error texts
// UpstreamTlsContext gives, which start with "tls: " or "remote error: tls: ". Such a request is
// answered 502 (a bad gateway, as Go's ReverseProxy in kube-rbac-proxy), not the 503 of a
// backend that cannot be reached, and does not count against the backend's readiness.
bool isUpstreamTlsHandshakeError(std::string_view error);

}  // namespace aaproxy
