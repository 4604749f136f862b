#include "proxy/certificate_admission.h"

#include <openssl/x509.h>

#include "absl/strings/match.h"
#include "k8s/status.h"

namespace aaproxy {
namespace {

std::vector<std::string> subjectEntries(X509* cert, int nid) {
  std::vector<std::string> values;
  X509_NAME* name = X509_get_subject_name(cert);
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, nid, i)) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len >= 0) {
      values.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
      OPENSSL_free(utf8);
    }
  }
  return values;
}

}  // namespace

void CertificateAdmission::admit(RequestHead& head, const ConnectionInfo& connection, Dispatcher&,
                                 std::function<void(AdmissionVerdict)> done) {
  head.headers.removeIf([](const Header& h) {
    return absl::EqualsIgnoreCase(h.name, "Authorization") ||
           absl::StartsWithIgnoreCase(h.name, "X-Remote-") ||
           absl::StartsWithIgnoreCase(h.name, "Impersonate-");
  });
  if (connection.peer_leaf != nullptr) {
    std::vector<std::string> cn = subjectEntries(connection.peer_leaf, NID_commonName);
    if (!cn.empty() && !cn[0].empty()) {
      UserInfo user;
      user.name = cn[0];
      user.groups = subjectEntries(connection.peer_leaf, NID_organizationName);
      user.groups.push_back(kAuthenticatedGroup);
      done(AdmissionVerdict::forward(std::move(user)));
      return;
    }
  }
  if (anonymous_auth_) {
    done(AdmissionVerdict::forward(UserInfo{kAnonymousUser, "", {kUnauthenticatedGroup}, {}}));
    return;
  }
  done(AdmissionVerdict::respond(401, unauthorizedStatusJson()));
}

}  // namespace aaproxy
