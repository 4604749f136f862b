// Client certificate -> user conversion and authentication.
#include "authn/x509_authenticator.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "authn/x509_verifier.h"

namespace aaproxy {
namespace {

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

absl::StatusOr<std::string> parseUid(X509* cert) {
  ASN1_OBJECT* uidOid = OBJ_txt2obj(kUserUidOid, 1);
  std::vector<std::string> uids;
  absl::Status error;
  X509_NAME* name = X509_get_subject_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(name) && error.ok(); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    if (OBJ_cmp(X509_NAME_ENTRY_get_object(entry), uidOid) != 0) {
      continue;
    }
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
    unsigned char* utf8 = nullptr;
    int len = isGoStringType(ASN1_STRING_type(data)) ? ASN1_STRING_to_UTF8(&utf8, data) : -1;
    if (len < 0) {
      ERR_clear_error();
      error = absl::UnauthenticatedError("unable to parse UID into a string");
      break;
    }
    uids.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  ASN1_OBJECT_free(uidOid);
  if (!error.ok()) {
    return error;
  }
  if (uids.empty()) {
    return std::string();
  }
  if (uids.size() != 1) {
    return absl::UnauthenticatedError(
        absl::StrCat("expected 1 UID, but found multiple: [", absl::StrJoin(uids, " "), "]"));
  }
  if (uids[0].empty()) {
    return absl::UnauthenticatedError("UID cannot be an empty string");
  }
  return uids[0];
}

std::vector<std::string> organizations(X509* cert) {
  std::vector<std::string> out;
  X509_NAME* name = X509_get_subject_name(cert);
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry)) != NID_organizationName) {
      continue;
    }
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (len < 0) {
      ERR_clear_error();
      continue;
    }
    out.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::optional<UserInfo>> userFromCertificate(X509* leaf) {
  UserInfo user;
  user.name = subjectCommonName(leaf);
  if (user.name.empty()) {
    return std::optional<UserInfo>();
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLen = 0;
  if (X509_digest(leaf, EVP_sha256(), digest, &digestLen) != 1) {
    ERR_clear_error();
    return absl::InternalError("cannot hash the client certificate");
  }
  absl::StatusOr<std::string> uid = parseUid(leaf);
  if (!uid.ok()) {
    return uid.status();
  }
  user.uid = *std::move(uid);
  user.groups = organizations(leaf);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "X509SHA256=";
  for (unsigned int i = 0; i < digestLen; ++i) {
    id += kHex[digest[i] >> 4];
    id += kHex[digest[i] & 0xf];
  }
  user.extra[kCredentialIdExtraKey] = {std::move(id)};
  return std::optional<UserInfo>(std::move(user));
}

AuthenticationResult X509Authenticator::authenticate(const AuthenticationRequest& request) const {
  if (request.peer.leaf == nullptr || clientCa_ == nullptr) {
    return AuthenticationResult::noOpinion();
  }
  if (absl::Status s = verifyClientCertificate(*clientCa_, request.peer, clock_()); !s.ok()) {
    return AuthenticationResult::failed(absl::StrCat("verifying certificate ",
                                                     certificateIdentifier(request.peer.leaf),
                                                     " failed: ", s.message()));
  }
  absl::StatusOr<std::optional<UserInfo>> user = userFromCertificate(request.peer.leaf);
  if (!user.ok()) {
    return AuthenticationResult::failed(std::string(user.status().message()));
  }
  if (!user->has_value()) {
    return AuthenticationResult::noOpinion();
  }
  return AuthenticationResult::authenticated(**std::move(user));
}

}  // namespace aaproxy
