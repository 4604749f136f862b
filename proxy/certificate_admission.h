// Interim admission until the authn/authz chain is wired: a verified client certificate is the
// identity (CN, O), everything authenticated is allowed, and credentials never pass through.
#pragma once

#include "proxy/admission.h"

namespace aaproxy {

class CertificateAdmission : public RequestAdmission {
 public:
  explicit CertificateAdmission(bool anonymous_auth) : anonymous_auth_(anonymous_auth) {}
  void admit(RequestHead& head, const ConnectionInfo& connection, Dispatcher& loop,
             std::function<void(AdmissionVerdict)> done) override;

 private:
  bool anonymous_auth_;
};

}  // namespace aaproxy
