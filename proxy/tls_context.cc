// Builds the serving SSL_CTX: TLS 1.2+, client certificates requested but not verified (the
// authenticators verify them per request), and a session id context so that resumption works.
#include "proxy/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace aaproxy {
namespace {

std::string bioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

// The server's ALPN preference: h2 first when HTTP/2 is served, as Go's server offers it.
constexpr unsigned char kAlpnH2Http11[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* http2) {
  const unsigned char* server = http2 != nullptr ? kAlpnH2Http11 : kAlpnHttp11;
  unsigned int server_len = http2 != nullptr ? sizeof(kAlpnH2Http11) : sizeof(kAlpnHttp11);
  // A client offering only protocols we do not serve gets no ALPN, which means HTTP/1.1.
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, server, server_len, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// Sessions the server keeps for resumption (the oldest go first; each expires after OpenSSL's
// default 300 s). A session whose connection closed keeps the client's parsed certificates
// alive, about 11 KiB in all: 10,000 sessions grew the proxy by 110 MiB under a stream of new
// connections (bench/abuse.sh soak). An aggregated API server has few clients; 1,024 sessions
// cost at most about 11 MiB.
constexpr long kSessionCacheSize = 1024;

}  // namespace

X509StackPtr peerCertificateChain(SSL* ssl) {
  X509StackPtr out(sk_X509_new_null());
  if (STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl); chain != nullptr) {
    for (int i = 0; i < sk_X509_num(chain); ++i) {
      X509* cert = sk_X509_value(chain, i);
      X509_up_ref(cert);
      sk_X509_push(out.get(), cert);
    }
  }
  return out;
}

std::string drainOpenSslErrors() {
  std::string out;
  while (unsigned long err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown TLS error" : out;
}

absl::StatusOr<std::string> readFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read \"", path, "\""));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::vector<X509Ptr>> parsePemCertificates(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the loop ends on a "no start line" error
  if (certs.empty()) {
    return absl::InvalidArgumentError("no PEM certificates found");
  }
  return certs;
}

std::optional<double> earliestExpiry(std::string_view pem) {
  absl::StatusOr<std::vector<X509Ptr>> certs = parsePemCertificates(pem);
  if (!certs.ok()) {
    return std::nullopt;
  }
  std::optional<double> earliest;
  for (const X509Ptr& cert : *certs) {
    tm t{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &t) == 1) {
      double seconds = static_cast<double>(timegm(&t));
      earliest = earliest.has_value() ? std::min(*earliest, seconds) : seconds;
    }
  }
  return earliest;
}

absl::StatusOr<std::pair<std::string, std::string>> generateSelfSignedCertificate(
    const std::string& common_name) {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    return absl::InternalError(absl::StrCat("generating a key: ", drainOpenSslErrors()));
  }
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string san = absl::StrCat("DNS:", common_name, ",DNS:localhost,IP:127.0.0.1,IP:::1");
  const std::pair<int, std::string> extensions[] = {
      {NID_subject_alt_name, san},
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
  };
  for (const auto& [nid, value] : extensions) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (ext == nullptr) {
      return absl::InternalError(absl::StrCat("certificate extension: ", drainOpenSslErrors()));
    }
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return absl::InternalError(absl::StrCat("signing: ", drainOpenSslErrors()));
  }
  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(cert_bio.get(), cert.get());
  PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return std::make_pair(bioToString(cert_bio.get()), bioToString(key_bio.get()));
}

absl::StatusOr<std::shared_ptr<const ServerTlsContext>> ServerTlsContext::create(
    const ServerTlsSettings& settings) {
  auto context = std::shared_ptr<ServerTlsContext>(new ServerTlsContext());
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    return absl::InternalError(drainOpenSslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx.get(), settings.min_version);
  if (!settings.cipher_list.empty() &&
      SSL_CTX_set_cipher_list(ctx.get(), settings.cipher_list.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-cipher-suites: ", drainOpenSslErrors()));
  }
  // A client that closes its side without close_notify has simply closed, as for Go's server
  // and nginx: OpenSSL 3 otherwise answers that close with a fatal decode_error alert. Requests
  // are framed (length or chunks), so a cut-off one is still seen as incomplete.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                     SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Writes handed from our own SSL_write to the bufferevent's retry may see the bytes at a
  // different address; OpenSSL only needs the same bytes.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One read() per TLS record instead of two (header, then body); ClientConnection moves
  // records read ahead into its input (see pullBufferedTls).
  SSL_CTX_set_read_ahead(ctx.get(), 1);

  std::string cert_pem;
  std::string key_pem;
  if (!settings.cert_pem.empty()) {
    cert_pem = settings.cert_pem;
    key_pem = settings.key_pem;
  } else if (settings.cert_file.empty()) {
    auto generated = generateSelfSignedCertificate("localhost");
    if (!generated.ok()) {
      return generated.status();
    }
    std::tie(cert_pem, key_pem) = *std::move(generated);
  } else {
    auto cert = readFileToString(settings.cert_file);
    if (!cert.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--tls-cert-file: ", cert.status().message()));
    }
    auto key = readFileToString(settings.key_file);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-private-key-file: ", key.status().message()));
    }
    cert_pem = *std::move(cert);
    key_pem = *std::move(key);
  }
  auto chain = parsePemCertificates(cert_pem);
  if (!chain.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-cert-file: ", chain.status().message()));
  }
  if (SSL_CTX_use_certificate(ctx.get(), (*chain)[0].get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--tls-cert-file: ", drainOpenSslErrors()));
  }
  for (size_t i = 1; i < chain->size(); ++i) {
    // SSL_CTX_add1_chain_cert takes its own reference.
    SSL_CTX_add1_chain_cert(ctx.get(), (*chain)[i].get());
  }
  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-private-key-file: not a private key matching --tls-cert-file: ",
                     drainOpenSslErrors()));
  }

  if (!settings.client_ca_pems.empty()) {
    // Go's tls.RequestClientCert, as k8s.io/apiserver serves: ask for a certificate, advertise
    // the configured CA names so a client can pick one, but verify nothing here. Which
    // authority vouches for which identity is the authenticators' business, per request (see
    // authn/x509_verifier.h); a certificate none of them accepts is a 401 there, and a bearer
    // token on the same request can still authenticate. Nothing is loaded into the context's
    // X509_STORE: no verification in the handshake consults it.
    STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
    for (const std::string& pem : settings.client_ca_pems) {
      auto cas = parsePemCertificates(pem);
      if (!cas.ok()) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return cas.status();
      }
      for (const X509Ptr& ca : *cas) {
        sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(ca.get())));
      }
    }
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    // SSL_VERIFY_PEER without SSL_VERIFY_FAIL_IF_NO_PEER_CERT: a certificate is requested, not
    // required (token and anonymous requests come without one). The replacement for
    // X509_verify_cert accepts whatever was sent (unknown CA, expired, serverAuth-only), so no
    // chain is built against an empty store on every handshake; OpenSSL still keeps the leaf
    // and the chain for SSL_get1_peer_certificate and SSL_get_peer_cert_chain.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(
        ctx.get(), [](X509_STORE_CTX*, void*) { return 1; }, nullptr);
  }
  static const unsigned char kSessionContext[] = "aa-proxy";
  SSL_CTX_set_session_id_context(ctx.get(), kSessionContext, sizeof(kSessionContext) - 1);
  // Resumption from the server's session cache (TLS 1.2 session ids, TLS 1.3 stateful tickets)
  // rather than from stateless tickets: a resumed session is then the cached object with the
  // client's leaf and chain already parsed, where a ticket must be decrypted and decoded again,
  // public keys included (d2i_SSL_SESSION and the chain in its application data were 40% of
  // the proxy's CPU per resumed TLS 1.3 connection, bench/abuse.sh handshakes). One ticket per
  // connection (OpenSSL sends two) keeps one cache entry per client connection.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx.get(), 1);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(ctx.get(), kSessionCacheSize);
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn,
                             settings.http2 ? const_cast<unsigned char*>(kAlpnH2Http11)
                                            : nullptr);

  context->ctx_ = std::move(ctx);
  context->cert_pem_ = std::move(cert_pem);
  return std::shared_ptr<const ServerTlsContext>(std::move(context));
}

}  // namespace aaproxy
