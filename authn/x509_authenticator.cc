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

absl::StatusOr<std::string> parseUid(X509* cert) {
  ASN1_OBJECT* uidOid = OBJ_txt2obj(kUserUidOid, 1);
  std::vector<std::optional<std::string>> values = subjectAttributeValues(cert, uidOid);
  ASN1_OBJECT_free(uidOid);
  std::vector<std::string> uids;
  for (std::optional<std::string>& v : values) {
    if (!v) {
      return absl::UnauthenticatedError("unable to parse UID into a string");
    }
    uids.push_back(*std::move(v));
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
  for (std::optional<std::string>& v : subjectAttributeValues(cert, NID_organizationName)) {
    if (v) {
      out.push_back(*std::move(v));
    }
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

namespace {

AuthenticationResult resultFor(const absl::StatusOr<std::optional<UserInfo>>& user) {
  if (!user.ok()) {
    return AuthenticationResult::failed(std::string(user.status().message()));
  }
  if (!user->has_value()) {
    return AuthenticationResult::noOpinion();
  }
  // A copy with room for the group the chain adds (system:authenticated): no reallocation.
  const UserInfo& cached = **user;
  UserInfo copy;
  copy.name = cached.name;
  copy.uid = cached.uid;
  copy.groups.reserve(cached.groups.size() + 1);
  copy.groups = cached.groups;
  copy.extra = cached.extra;
  return AuthenticationResult::authenticated(std::move(copy));
}

}  // namespace

AuthenticationResult X509Authenticator::authenticate(const AuthenticationRequest& request) const {
  if (request.peer.leaf == nullptr || clientCa_ == nullptr) {
    return AuthenticationResult::noOpinion();
  }
  if (absl::Status s = verifyClientCertificate(*clientCa_, request.peer, clock_()); !s.ok()) {
    return AuthenticationResult::failed(absl::StrCat("verifying certificate ",
                                                     certificateIdentifier(request.peer.leaf),
                                                     " failed: ", s.message()));
  }
  PeerVerificationCache* cache = request.peer.verification_cache;
  if (cache == nullptr) {
    return resultFor(userFromCertificate(request.peer.leaf));
  }
  // Parsing the subject on every request of a keep-alive connection was a tenth of the
  // proxy's user-space time; the leaf cannot change, so convert it once.
  if (cache->leafUser() == nullptr) {
    cache->storeLeafUser(userFromCertificate(request.peer.leaf));
  }
  return resultFor(*cache->leafUser());
}

}  // namespace aaproxy
