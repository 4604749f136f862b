// The upstream client SSL_CTX, and OpenSSL's verification results and alerts turned into the
// messages Go's crypto/tls and crypto/x509 give for the same failures.
#include "proxy/upstream_tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proxy/tls_context.h"

namespace aaproxy {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

bool isIpLiteral(const std::string& host) {
  in_addr v4;
  in6_addr v6;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

int sessionsIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Every session the backend issues (in TLS 1.3, every ticket) replaces the pool's last one.
int keepNewSession(SSL* ssl, SSL_SESSION* session) {
  auto* sessions = static_cast<UpstreamTlsSessions*>(SSL_get_ex_data(ssl, sessionsIndex()));
  if (sessions == nullptr || SSL_SESSION_is_resumable(session) != 1) {
    return 0;
  }
  sessions->keep(SslSessionPtr(session));
  return 1;  // the reference is ours
}

// Go's crypto/tls alert texts (alert.go), which its "remote error: tls: ..." messages carry.
std::string alertText(int alert) {
  static const std::pair<int, const char*> kAlerts[] = {
      {0, "close notify"},
      {10, "unexpected message"},
      {20, "bad record MAC"},
      {21, "decryption failed"},
      {22, "record overflow"},
      {30, "decompression failure"},
      {40, "handshake failure"},
      {42, "bad certificate"},
      {43, "unsupported certificate"},
      {44, "revoked certificate"},
      {45, "expired certificate"},
      {46, "unknown certificate"},
      {47, "illegal parameter"},
      {48, "unknown certificate authority"},
      {49, "access denied"},
      {50, "error decoding message"},
      {51, "error decrypting message"},
      {60, "export restriction"},
      {70, "protocol version not supported"},
      {71, "insufficient security level"},
      {80, "internal error"},
      {86, "inappropriate fallback"},
      {90, "user canceled"},
      {100, "no renegotiation"},
      {109, "missing extension"},
      {110, "unsupported extension"},
      {111, "certificate unobtainable"},
      {112, "unrecognized name"},
      {113, "bad certificate status response"},
      {114, "bad certificate hash value"},
      {115, "unknown PSK identity"},
      {116, "certificate required"},
      {120, "no application protocol"},
  };
  for (const auto& [code, text] : kAlerts) {
    if (code == alert) {
      return text;
    }
  }
  return absl::StrCat("alert(", alert, ")");
}

std::string rfc3339(const ASN1_TIME* time) {
  tm parsed{};
  if (ASN1_TIME_to_tm(time, &parsed) != 1) {
    return "an invalid time";
  }
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromTM(parsed, absl::UTCTimeZone()),
                          absl::UTCTimeZone());
}

// The subjectAltName entries of `cert` of one type, printed as Go prints them.
std::vector<std::string> subjectAltNames(X509* cert, int type) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != type) {
      continue;
    }
    const ASN1_STRING* value = type == GEN_DNS ? name->d.dNSName : name->d.iPAddress;
    const unsigned char* data = ASN1_STRING_get0_data(value);
    int length = ASN1_STRING_length(value);
    if (type == GEN_DNS) {
      out.emplace_back(reinterpret_cast<const char*>(data), static_cast<size_t>(length));
      continue;
    }
    char text[INET6_ADDRSTRLEN] = "";
    if (length == 4 || length == 16) {
      inet_ntop(length == 4 ? AF_INET : AF_INET6, data, text, sizeof(text));
      out.emplace_back(text);
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string commonName(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) {
    return "";
  }
  const ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
                     static_cast<size_t>(ASN1_STRING_length(value)));
}

// Go's x509.HostnameError.
std::string hostnameError(X509* leaf, const std::string& host, bool is_ip) {
  bool has_san = X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1) >= 0;
  if (!has_san && absl::EqualsIgnoreCase(commonName(leaf), host)) {
    return "x509: certificate relies on legacy Common Name field, use SANs instead";
  }
  std::vector<std::string> valid = subjectAltNames(leaf, is_ip ? GEN_IPADD : GEN_DNS);
  if (is_ip && valid.empty()) {
    return absl::StrCat("x509: cannot validate certificate for ", host,
                        " because it doesn't contain any IP SANs");
  }
  if (valid.empty()) {
    return absl::StrCat("x509: certificate is not valid for any names, but wanted to match ", host);
  }
  return absl::StrCat("x509: certificate is valid for ", absl::StrJoin(valid, ", "), ", not ",
                      host);
}

// Go's x509.CertificateInvalidError{Reason: Expired}, for the first certificate of the chain
// outside its validity period.
std::string expiryError(STACK_OF(X509) * chain) {
  std::string now = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::Now(), absl::UTCTimeZone());
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* cert = sk_X509_value(chain, i);
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
      return absl::StrCat("x509: certificate has expired or is not yet valid: current time ", now,
                          " is after ", rfc3339(X509_get0_notAfter(cert)));
    }
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
      return absl::StrCat("x509: certificate has expired or is not yet valid: current time ", now,
                          " is before ", rfc3339(X509_get0_notBefore(cert)));
    }
  }
  return "x509: certificate has expired or is not yet valid";
}

}  // namespace

absl::StatusOr<std::shared_ptr<const UpstreamTlsContext>> UpstreamTlsContext::create(
    const UpstreamAddress& address) {
  if (address.kind != UpstreamAddress::Kind::kHttps) {
    return absl::InvalidArgumentError(
        absl::StrCat("--upstream: \"", address.display, "\" is not an https:// address"));
  }
  const UpstreamTlsOptions& options = address.tls;
  auto context = std::shared_ptr<UpstreamTlsContext>(new UpstreamTlsContext());
  context->server_name_ = options.server_name.empty() ? address.host : options.server_name;
  context->server_name_is_ip_ = isIpLiteral(context->server_name_);

  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    return absl::InternalError(drainOpenSslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION);  // as Go's client by default
  // Pooled idle connections keep no record buffers.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  // HTTP/1.1 is all the pool speaks; a backend that insists on h2 fails the handshake.
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpnHttp11, sizeof(kAlpnHttp11));

  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!options.ca_file.empty()) {
    absl::StatusOr<std::string> pem = readFileToString(options.ca_file);
    if (!pem.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-ca-file: ", pem.status().message()));
    }
    absl::StatusOr<std::vector<X509Ptr>> cas = parsePemCertificates(*pem);
    if (!cas.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-ca-file: no PEM certificates found in \"", options.ca_file, "\""));
    }
    X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
    for (const X509Ptr& ca : *cas) {
      if (X509_STORE_add_cert(store, ca.get()) != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("--upstream-ca-file: \"", options.ca_file, "\": ", drainOpenSslErrors()));
      }
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    return absl::InternalError(
        absl::StrCat("--upstream-ca-file: the system trust store: ", drainOpenSslErrors()));
  }
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx.get());
  // Go's name matching: only the SANs count (never the subject's CN), and a wildcard is a whole
  // leftmost label.
  X509_VERIFY_PARAM_set_hostflags(
      param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
  const std::string& name = context->server_name_;
  if ((context->server_name_is_ip_ ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                                   : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0)) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.server_name.empty() ? "--upstream" : "--upstream-server-name",
                     ": cannot check certificates for \"", name, "\": ", drainOpenSslErrors()));
  }

  if (!options.client_cert_file.empty()) {
    absl::StatusOr<std::string> cert_pem = readFileToString(options.client_cert_file);
    if (!cert_pem.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-client-cert-file: ", cert_pem.status().message()));
    }
    absl::StatusOr<std::vector<X509Ptr>> chain = parsePemCertificates(*cert_pem);
    if (!chain.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-client-cert-file: no PEM certificates found in \"",
                       options.client_cert_file, "\""));
    }
    if (SSL_CTX_use_certificate(ctx.get(), (*chain)[0].get()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-client-cert-file: ", drainOpenSslErrors()));
    }
    for (size_t i = 1; i < chain->size(); ++i) {
      SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i].get());  // intermediates, sent after the leaf
    }
    absl::StatusOr<std::string> key_pem = readFileToString(options.client_key_file);
    if (!key_pem.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-client-key-file: ", key_pem.status().message()));
    }
    BioPtr key_bio(BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          absl::StrCat("--upstream-client-key-file: no PEM private key found in \"",
                       options.client_key_file, "\""));
    }
    if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
        SSL_CTX_check_private_key(ctx.get()) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--upstream-client-key-file: not the private key of --upstream-client-cert-file: ",
          drainOpenSslErrors()));
    }
  }

  // Resumption: OpenSSL hands each new session to keepNewSession, the pool offers the last one.
  SSL_CTX_set_session_cache_mode(ctx.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), keepNewSession);
  ERR_clear_error();
  context->ctx_ = std::move(ctx);
  return std::shared_ptr<const UpstreamTlsContext>(std::move(context));
}

SslPtr UpstreamTlsContext::newSsl(UpstreamTlsSessions& sessions) const {
  SslPtr ssl(SSL_new(ctx_.get()));
  if (!ssl) {
    ERR_clear_error();
    return nullptr;
  }
  if (!server_name_is_ip_) {
    SSL_set_tlsext_host_name(ssl.get(), server_name_.c_str());  // no SNI for an IP (RFC 6066)
  }
  SSL_set_ex_data(ssl.get(), sessionsIndex(), &sessions);
  if (SSL_SESSION* session = sessions.last(); session != nullptr) {
    SSL_set_session(ssl.get(), session);
  }
  return ssl;
}

UpstreamTlsError UpstreamTlsContext::describeError(SSL* ssl,
                                                   const std::vector<unsigned long>& errors) const {
  UpstreamTlsError out;
  for (unsigned long error : errors) {
    if (ERR_GET_LIB(error) == ERR_LIB_SSL &&
        ERR_GET_REASON(error) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      long result = SSL_get_verify_result(ssl);
      STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // a client's starts with the leaf
      X509* leaf = chain != nullptr && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : nullptr;
      std::string reason;
      switch (result) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_CERT_UNTRUSTED:
          reason = "x509: certificate signed by unknown authority";
          break;
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
          reason = leaf != nullptr
                       ? hostnameError(leaf, server_name_, server_name_is_ip_)
                       : absl::StrCat("x509: certificate is not valid for ", server_name_);
          break;
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
          reason = expiryError(chain);
          break;
        case X509_V_ERR_INVALID_PURPOSE:
          reason = "x509: certificate specifies an incompatible key usage";
          break;
        default:
          reason = absl::StrCat("x509: ", X509_verify_cert_error_string(result));
      }
      out.message = absl::StrCat("tls: failed to verify certificate: ", reason);
      return out;
    }
  }
  for (unsigned long error : errors) {
    int reason = ERR_GET_REASON(error);
    if (ERR_GET_LIB(error) == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET &&
        reason < SSL_AD_REASON_OFFSET + 256) {
      out.message = absl::StrCat("remote error: tls: ", alertText(reason - SSL_AD_REASON_OFFSET));
      out.peer_alert = true;
      return out;
    }
  }
  for (unsigned long error : errors) {
    int reason = ERR_GET_REASON(error);
    if (ERR_GET_LIB(error) == ERR_LIB_SYS) {
      out.message = std::strerror(reason);
      return out;
    }
    if (ERR_GET_LIB(error) != ERR_LIB_SSL || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
      continue;  // a close: the caller says when it came
    }
    if (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_PACKET_LENGTH_TOO_LONG) {
      // The usual cause: an https:// --upstream that serves plain HTTP.
      out.message = "tls: first record does not look like a TLS handshake";
      return out;
    }
    const char* text = ERR_reason_error_string(error);
    out.message = absl::StrCat("tls: ", text != nullptr ? text : "error");
    return out;
  }
  return out;
}

bool isUpstreamTlsHandshakeError(std::string_view error) {
  return error.starts_with("tls: ") || error.starts_with("remote error: tls: ");
}

}  // namespace aaproxy
