// Test certificate generation with the OpenSSL API.
#include "kube/testing/test_certs.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace aaproxy::testing {
namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    throw std::runtime_error(what);  // test-only code: fail loudly
  }
}

EVP_PKEY* newKey() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  check(key != nullptr, "EVP_EC_gen");
  return key;
}

std::string pemOf(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, len);
  BIO_free(bio);
  return out;
}

std::string pemOf(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, len);
  BIO_free(bio);
  return out;
}

void addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* newCert(EVP_PKEY* key, const std::string& cn, const std::vector<std::string>& orgs) {
  static long serial = 1;
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++ + (getpid() << 8));
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  for (const std::string& o : orgs) {
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

}  // namespace

TestCertificate makeCa(const std::string& common_name) {
  EVP_PKEY* key = newKey();
  X509* cert = newCert(key, common_name, {});
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  addExt(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  addExt(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  addExt(cert, cert, NID_subject_key_identifier, "hash");
  check(X509_sign(cert, key, EVP_sha256()) > 0, "X509_sign");
  TestCertificate out{pemOf(cert), pemOf(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

TestCertificate makeLeaf(const TestCertificate& issuer, const LeafSpec& spec) {
  BIO* bio = BIO_new_mem_buf(issuer.cert_pem.data(), static_cast<int>(issuer.cert_pem.size()));
  X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  bio = BIO_new_mem_buf(issuer.key_pem.data(), static_cast<int>(issuer.key_pem.size()));
  EVP_PKEY* ca_key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  check(ca != nullptr && ca_key != nullptr, "issuer PEM");

  EVP_PKEY* key = newKey();
  X509* cert = newCert(key, spec.common_name, spec.organizations);
  X509_set_issuer_name(cert, X509_get_subject_name(ca));
  addExt(cert, ca, NID_basic_constraints, "critical,CA:FALSE");
  addExt(cert, ca, NID_key_usage, "critical,digitalSignature,keyEncipherment");
  std::vector<std::string> eku;
  if (spec.server_auth) {
    eku.push_back("serverAuth");
  }
  if (spec.client_auth) {
    eku.push_back("clientAuth");
  }
  if (!eku.empty()) {
    addExt(cert, ca, NID_ext_key_usage, absl::StrJoin(eku, ","));
  }
  std::vector<std::string> sans;
  for (const std::string& d : spec.dns_names) {
    sans.push_back("DNS:" + d);
  }
  for (const std::string& ip : spec.ip_addresses) {
    sans.push_back("IP:" + ip);
  }
  if (!sans.empty()) {
    addExt(cert, ca, NID_subject_alt_name, absl::StrJoin(sans, ","));
  }
  check(X509_sign(cert, ca_key, EVP_sha256()) > 0, "X509_sign");
  TestCertificate out{pemOf(cert), pemOf(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  X509_free(ca);
  EVP_PKEY_free(ca_key);
  return out;
}

void writeFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    check(out.good(), "write");
  }
  check(std::rename(tmp.c_str(), path.c_str()) == 0, "rename");
}

}  // namespace aaproxy::testing
