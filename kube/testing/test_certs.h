// Certificates generated at test time (EC P-256), for TLS tests that need a CA, a server and a
// client certificate.
#pragma once

#include <string>
#include <vector>

namespace aaproxy::testing {

struct TestCertificate {
  std::string cert_pem;
  std::string key_pem;
};

struct LeafSpec {
  std::string common_name;
  std::vector<std::string> organizations;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  bool server_auth = false;
  bool client_auth = false;
};

TestCertificate makeCa(const std::string& common_name);
TestCertificate makeLeaf(const TestCertificate& issuer, const LeafSpec& spec);

// Writes `contents` to `path`, atomically (temp file + rename) so that pollers never see a
// partial file.
void writeFileAtomically(const std::string& path, const std::string& contents);

}  // namespace aaproxy::testing
