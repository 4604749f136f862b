// Go-compatible client certificate verification on top of X509_verify_cert.
#include "authn/x509_verifier.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "authn/openssl_handles.h"

namespace aaproxy {
namespace {

constexpr char kUnknownAuthority[] = "x509: certificate signed by unknown authority";

std::optional<absl::Time> asn1ToTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return std::nullopt;
  }
  return absl::FromTimeT(timegm(&tm));
}

// Go's CertificateInvalidError{Reason: Expired}, or OK when `cert` is valid at `now`.
absl::Status checkValidity(X509* cert, absl::Time now) {
  std::optional<absl::Time> notBefore = asn1ToTime(X509_get0_notBefore(cert));
  std::optional<absl::Time> notAfter = asn1ToTime(X509_get0_notAfter(cert));
  if (!notBefore || !notAfter) {
    return absl::UnauthenticatedError("x509: malformed validity");
  }
  if (now < *notBefore) {
    return absl::UnauthenticatedError(
        absl::StrCat("x509: certificate has expired or is not yet valid: current time ",
                     formatRfc3339(now), " is before ", formatRfc3339(*notBefore)));
  }
  if (now > *notAfter) {
    return absl::UnauthenticatedError(
        absl::StrCat("x509: certificate has expired or is not yet valid: current time ",
                     formatRfc3339(now), " is after ", formatRfc3339(*notAfter)));
  }
  return absl::OkStatus();
}

// Go's %q for the strings we quote (ASCII messages and certificate names).
std::string goQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

bool isGoStringType(int type) {
  switch (type) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_T61STRING:
    case V_ASN1_BMPSTRING:
    case V_ASN1_NUMERICSTRING:
      return true;
    default:
      return false;
  }
}

std::vector<std::string> subjectStrings(X509* cert, int nid) {
  std::vector<std::string> out;
  for (std::optional<std::string>& v : subjectAttributeValues(cert, nid)) {
    if (v) {
      out.push_back(*std::move(v));  // Go skips values that are not strings.
    }
  }
  return out;
}

// Go's UnknownAuthorityError name for the hint certificate: CN, else first O, else serial.
std::string candidateName(X509* cert) {
  std::string cn = subjectCommonName(cert);
  if (!cn.empty()) {
    return cn;
  }
  std::vector<std::string> orgs = subjectStrings(cert, NID_organizationName);
  if (!orgs.empty()) {
    return orgs.front();
  }
  std::string id = certificateIdentifier(cert);  // "SN=<serial>, ..."
  return absl::StrCat("serial:", id.substr(3, id.find(',') - 3));
}

std::string unknownAuthorityWithHint(std::string_view hint, X509* candidate) {
  return absl::StrCat(kUnknownAuthority, " (possibly because of ", goQuote(hint),
                      " while trying to verify candidate authority certificate ",
                      goQuote(candidateName(candidate)), ")");
}

// The error Go's CheckSignatureFrom returns for a bad signature by `issuer`'s key type.
std::string signatureFailureText(X509* issuer) {
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  int type = key != nullptr ? EVP_PKEY_get_base_id(key) : EVP_PKEY_NONE;
  switch (type) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
      return "crypto/rsa: verification error";
    case EVP_PKEY_EC:
      return "x509: ECDSA verification failure";
    case EVP_PKEY_ED25519:
      return "x509: Ed25519 verification failure";
    default:
      return "x509: signature verification failure";
  }
}

// Go refuses signatures made with these hashes (InsecureAlgorithmError); OpenSSL accepts them
// when verifying chains outside TLS. Returns Go's algorithm name, or nullptr when acceptable.
const char* insecureSignatureAlgorithm(X509* cert) {
  switch (X509_get_signature_nid(cert)) {
    case NID_md2WithRSAEncryption:
      return "MD2-RSA";
    case NID_md5WithRSAEncryption:
      return "MD5-RSA";
    case NID_sha1WithRSAEncryption:
    case NID_sha1WithRSA:
      return "SHA1-RSA";
    case NID_dsaWithSHA1:
      return "DSA-SHA1";
    case NID_ecdsa_with_SHA1:
      return "ECDSA-SHA1";
    default:
      return nullptr;
  }
}

// Go's checkChainForKeyUsage with KeyUsages = [ClientAuth].
bool chainAllowsClientAuth(STACK_OF(X509) * chain) {
  for (int i = sk_X509_num(chain) - 1; i >= 0; --i) {
    X509* cert = sk_X509_value(chain, i);
    int critical = 0;
    auto* eku = static_cast<EXTENDED_KEY_USAGE*>(
        X509_get_ext_d2i(cert, NID_ext_key_usage, &critical, nullptr));
    if (eku == nullptr) {
      continue;  // No EKU extension: good for any usage.
    }
    bool ok = sk_ASN1_OBJECT_num(eku) == 0;  // An empty list counts as no restriction in Go.
    for (int j = 0; j < sk_ASN1_OBJECT_num(eku) && !ok; ++j) {
      int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, j));
      ok = nid == NID_anyExtendedKeyUsage || nid == NID_client_auth;
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string colonHex(const ASN1_OCTET_STRING* s) {
  std::string out;
  if (s == nullptr) {
    return out;
  }
  const unsigned char* data = ASN1_STRING_get0_data(s);
  for (int i = 0; i < ASN1_STRING_length(s); ++i) {
    if (i > 0) {
      out += ':';
    }
    absl::StrAppendFormat(&out, "%02X", data[i]);
  }
  return out;
}

}  // namespace

std::string formatRfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::vector<std::optional<std::string>> subjectAttributeValues(X509* cert,
                                                               const ASN1_OBJECT* type) {
  std::vector<std::optional<std::string>> values;
  X509_NAME* name = X509_get_subject_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    if (OBJ_cmp(X509_NAME_ENTRY_get_object(entry), type) != 0) {
      continue;
    }
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
    unsigned char* utf8 = nullptr;
    int len = isGoStringType(ASN1_STRING_type(data)) ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
    if (len < 0) {
      ERR_clear_error();
      values.emplace_back(std::nullopt);
      continue;
    }
    values.emplace_back(std::string(reinterpret_cast<char*>(utf8), static_cast<size_t>(len)));
    OPENSSL_free(utf8);
  }
  return values;
}

std::vector<std::optional<std::string>> subjectAttributeValues(X509* cert, int nid) {
  return subjectAttributeValues(cert, OBJ_nid2obj(nid));
}

std::string subjectCommonName(X509* cert) {
  std::vector<std::string> cns = subjectStrings(cert, NID_commonName);
  return cns.empty() ? std::string() : cns.back();  // The last CN wins, as in Go.
}

std::string certificateIdentifier(X509* cert) {
  std::string serial = "<nil>";
  if (const ASN1_INTEGER* sn = X509_get0_serialNumber(cert); sn != nullptr) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(sn, nullptr);
    if (bn != nullptr) {
      char* dec = BN_bn2dec(bn);
      if (dec != nullptr) {
        serial = dec;
        OPENSSL_free(dec);
      }
      BN_free(bn);
    }
  }
  return absl::StrCat("SN=", serial, ", SKID=", colonHex(X509_get0_subject_key_id(cert)),
                      ", AKID=", colonHex(X509_get0_authority_key_id(cert)));
}

absl::Status checkAllowedCommonName(X509* leaf, const std::vector<std::string>& allowedNames) {
  if (allowedNames.empty()) {
    return absl::OkStatus();
  }
  std::string cn = subjectCommonName(leaf);
  for (const std::string& allowed : allowedNames) {
    if (allowed == cn) {
      return absl::OkStatus();
    }
  }
  return absl::UnauthenticatedError(
      absl::StrCat("x509: subject with cn=", cn, " is not in the allowed list"));
}

namespace {

absl::Status verifyUncached(const CertificatePool& roots, const PeerCertificates& peer,
                            absl::Time now);

// How long a verification outcome is reused on one connection.
constexpr absl::Duration kPeerVerificationTtl = absl::Minutes(1);

// The SHA-256 digests of the leaf and of every other certificate of the chain, in order: what
// verification depends on besides the pool and the time. Empty if a digest fails.
std::string chainKey(const PeerCertificates& peer) {
  std::string key;
  auto append = [&key](X509* cert) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), digest, &len) != 1) {
      ERR_clear_error();
      return false;
    }
    key.append(reinterpret_cast<const char*>(digest), len);
    return true;
  };
  if (!append(peer.leaf)) {
    return {};
  }
  for (int i = 0; peer.chain != nullptr && i < sk_X509_num(peer.chain); ++i) {
    X509* cert = sk_X509_value(peer.chain, i);
    if (X509_cmp(cert, peer.leaf) != 0 && !append(cert)) {
      return {};
    }
  }
  return key;
}

// The leaf's notAfter, or the end of the connection TTL when it cannot be read.
absl::Time notAfter(X509* leaf, absl::Time now) {
  absl::Time result = now + kPeerVerificationTtl;
  int days = 0;
  int seconds = 0;
  ASN1_TIME* now_asn1 = ASN1_TIME_set(nullptr, absl::ToTimeT(now));
  if (now_asn1 != nullptr &&
      ASN1_TIME_diff(&days, &seconds, now_asn1, X509_get0_notAfter(leaf)) == 1) {
    result = now + absl::Hours(24) * days + absl::Seconds(seconds);
  }
  ASN1_TIME_free(now_asn1);
  return result;
}

}  // namespace

absl::Status verifyClientCertificate(const CertificatePool& roots, const PeerCertificates& peer,
                                     absl::Time now) {
  if (peer.verification_cache == nullptr || peer.leaf == nullptr) {
    return verifyUncached(roots, peer, now);
  }
  if (const absl::Status* cached = peer.verification_cache->find(roots.id(), now)) {
    return *cached;
  }
  // A new connection from a client seen before (a reconnect, a resumed session) presents the
  // same certificates: the pool remembers chains that verified, for the same time as a
  // connection does, so that only the first connection pays for the signature checks.
  std::string key = chainKey(peer);
  if (!key.empty()) {
    if (std::optional<absl::Time> until = roots.verifiedChains().validUntil(key, now)) {
      peer.verification_cache->store(roots.id(), absl::OkStatus(), *until);
      return absl::OkStatus();
    }
  }
  absl::Status status = verifyUncached(roots, peer, now);
  absl::Time valid_until = now + kPeerVerificationTtl;
  if (status.ok()) {
    valid_until = std::min(valid_until, notAfter(peer.leaf, now));
  }
  peer.verification_cache->store(roots.id(), status, valid_until);
  if (status.ok() && !key.empty()) {
    roots.verifiedChains().insert(std::move(key), now, valid_until);
  }
  return status;
}

namespace {

absl::Status verifyUncached(const CertificatePool& roots, const PeerCertificates& peer,
                            absl::Time now) {
  if (peer.leaf == nullptr) {
    return absl::InvalidArgumentError("no client certificate");
  }
  // Go checks the leaf's own validity period before building any chain.
  if (absl::Status s = checkValidity(peer.leaf, now); !s.ok()) {
    return s;
  }

  X509StackPtr untrusted(sk_X509_new_null());
  if (untrusted == nullptr) {
    return absl::InternalError("out of memory");
  }
  if (peer.chain != nullptr) {
    for (int i = 0; i < sk_X509_num(peer.chain); ++i) {
      X509* cert = sk_X509_value(peer.chain, i);
      if (X509_cmp(cert, peer.leaf) == 0) {
        continue;  // The server-side chain may or may not start with the leaf.
      }
      X509_up_ref(cert);
      sk_X509_push(untrusted.get(), cert);
    }
  }

  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (ctx == nullptr ||
      X509_STORE_CTX_init(ctx.get(), roots.store(), peer.leaf, untrusted.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("cannot initialise certificate verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  // Any pool certificate is an anchor, as in Go. No purpose: EKU is checked below, Go's way
  // (OpenSSL's SSL-client purpose would also enforce keyUsage, which Go ignores).
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(now));

  int rc = X509_verify_cert(ctx.get());
  ERR_clear_error();
  if (rc != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    X509* current = X509_STORE_CTX_get_current_cert(ctx.get());
    STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
    switch (err) {
      case X509_V_ERR_CERT_HAS_EXPIRED:
      case X509_V_ERR_CERT_NOT_YET_VALID:
        if (current != nullptr) {
          absl::Status validity = checkValidity(current, now);
          std::string why(validity.ok() ? "x509: certificate has expired or is not yet valid"
                                        : validity.message());
          if (depth == 0) {
            return absl::UnauthenticatedError(why);
          }
          return absl::UnauthenticatedError(unknownAuthorityWithHint(why, current));
        }
        break;
      case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        if (chain != nullptr && depth + 1 < sk_X509_num(chain)) {
          X509* issuer = sk_X509_value(chain, depth + 1);
          return absl::UnauthenticatedError(
              unknownAuthorityWithHint(signatureFailureText(issuer), issuer));
        }
        break;
      case X509_V_ERR_INVALID_CA:
        if (current != nullptr && depth > 0) {
          return absl::UnauthenticatedError(unknownAuthorityWithHint(
              "x509: certificate is not authorized to sign other certificates", current));
        }
        break;
      case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
        if (depth == 0) {
          return absl::UnauthenticatedError("x509: unhandled critical extension");
        }
        break;
      default:
        break;
    }
    return absl::UnauthenticatedError(kUnknownAuthority);
  }

  STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
  // Go checks the signature of every certificate against its parent, not the anchor's own.
  for (int i = 0; i + 1 < sk_X509_num(chain); ++i) {
    if (const char* algorithm = insecureSignatureAlgorithm(sk_X509_value(chain, i))) {
      return absl::UnauthenticatedError(unknownAuthorityWithHint(
          absl::StrCat("x509: cannot verify signature: insecure algorithm ", algorithm),
          sk_X509_value(chain, i + 1)));
    }
  }
  if (!chainAllowsClientAuth(chain)) {
    return absl::UnauthenticatedError("x509: certificate specifies an incompatible key usage");
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace aaproxy
