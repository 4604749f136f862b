// The request authenticator interface every authn stage implements (k8s.io/apiserver's
// authenticator.Request, minus the http.Request).
#pragma once

#include <openssl/x509.h>

#include <string>

#include "k8s/header_map.h"
#include "k8s/user_info.h"

namespace aaproxy {

// The client certificates as the TLS layer saw them. `chain` is what SSL_get_peer_cert_chain
// returns on the server side: it may or may not start with the leaf; both are handled. A null
// leaf means the client sent no certificate. Borrowed: the TLS connection owns them.
struct PeerCertificates {
  X509* leaf = nullptr;
  STACK_OF(X509) * chain = nullptr;
};

struct AuthenticationRequest {
  const HeaderMap& headers;
  PeerCertificates peer;
};

struct AuthenticationResult {
  // kNoOpinion and kFailed both mean "not authenticated"; kFailed carries an error that makes
  // the chain answer 401 instead of falling back to anonymous.
  enum class Outcome { kNoOpinion, kAuthenticated, kFailed };
  Outcome outcome = Outcome::kNoOpinion;
  UserInfo user;
  std::string error;

  static AuthenticationResult noOpinion() { return {}; }
  static AuthenticationResult authenticated(UserInfo user) {
    return {Outcome::kAuthenticated, std::move(user), {}};
  }
  static AuthenticationResult failed(std::string error) {
    return {Outcome::kFailed, {}, std::move(error)};
  }
};

// Immutable once built and safe to call from any thread; configuration reloads build a new
// authenticator and swap a shared_ptr snapshot.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual AuthenticationResult authenticate(const AuthenticationRequest& request) const = 0;
};

}  // namespace aaproxy
