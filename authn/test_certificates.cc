// In-memory certificate generation for authn tests (EC P-256, SHA-256).
#include "authn/test_certificates.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <iostream>

#include "absl/strings/str_join.h"

namespace aaproxy::testing {
namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::cerr << "test certificate generation failed: " << what << std::endl;
    std::abort();
  }
}

void addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "extension");
  check(X509_add_ext(cert, ext, -1) == 1, "add extension");
  X509_EXTENSION_free(ext);
}

}  // namespace

std::string TestCertificate::pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(bio.get(), cert.get()) == 1, "PEM");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string TestCertificate::keyPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "key PEM");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string TestCertificate::der() const {
  unsigned char* out = nullptr;
  int len = i2d_X509(cert.get(), &out);
  check(len > 0, "DER");
  std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(len));
  OPENSSL_free(out);
  return der;
}

CertificateSpec caSpec(std::string commonName) {
  CertificateSpec spec;
  spec.commonName = std::move(commonName);
  spec.isCa = true;
  spec.extKeyUsages = std::nullopt;
  spec.notBefore = absl::Now() - absl::Hours(24);
  spec.notAfter = absl::Now() + absl::Hours(24 * 365);
  return spec;
}

TestCertificate makeCertificate(const CertificateSpec& spec, const TestCertificate* issuer) {
  TestCertificate out;
  out.key.reset(EVP_EC_gen("P-256"));
  check(out.key != nullptr, "key");
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  check(X509_set_version(cert, 2) == 1, "version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(cert), spec.serial) == 1, "serial");
  check(ASN1_TIME_set(X509_getm_notBefore(cert), absl::ToTimeT(spec.notBefore)) != nullptr,
        "notBefore");
  check(ASN1_TIME_set(X509_getm_notAfter(cert), absl::ToTimeT(spec.notAfter)) != nullptr,
        "notAfter");
  X509_NAME* name = X509_get_subject_name(cert);
  auto add = [&](const char* field, const std::string& value) {
    check(X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.data()),
                                     static_cast<int>(value.size()), -1, 0) == 1,
          "name entry");
  };
  for (const std::string& o : spec.organizations) {
    add("O", o);
  }
  for (const std::string& uid : spec.uids) {
    add(kUidOid, uid);
  }
  if (!spec.commonName.empty()) {
    add("CN", spec.commonName);
  }
  X509* issuerCert = issuer != nullptr ? issuer->cert.get() : cert;
  EVP_PKEY* signingKey = issuer != nullptr ? issuer->key.get() : out.key.get();
  check(X509_set_issuer_name(cert, X509_get_subject_name(issuerCert)) == 1, "issuer");
  check(X509_set_pubkey(cert, out.key.get()) == 1, "pubkey");

  addExtension(cert, issuerCert, NID_basic_constraints,
               spec.isCa ? "critical,CA:TRUE" : "CA:FALSE");
  addExtension(cert, issuerCert, NID_key_usage,
               spec.isCa ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  addExtension(cert, issuerCert, NID_subject_key_identifier, "hash");
  if (issuer != nullptr) {
    addExtension(cert, issuerCert, NID_authority_key_identifier, "keyid:always");
  }
  if (!spec.subjectAltNames.empty()) {
    addExtension(cert, issuerCert, NID_subject_alt_name, absl::StrJoin(spec.subjectAltNames, ","));
  }
  if (spec.extKeyUsages) {
    std::vector<std::string> names;
    for (int nid : *spec.extKeyUsages) {
      names.push_back(OBJ_nid2sn(nid));
    }
    if (names.empty()) {
      // An EKU extension with an empty list: built by hand, the config syntax cannot say it.
      EXTENDED_KEY_USAGE* eku = sk_ASN1_OBJECT_new_null();
      check(X509_add1_ext_i2d(cert, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) == 1, "eku");
      sk_ASN1_OBJECT_free(eku);
    } else {
      addExtension(cert, issuerCert, NID_ext_key_usage, absl::StrJoin(names, ","));
    }
  }
  check(X509_sign(cert, signingKey, spec.digest ? spec.digest : EVP_sha256()) > 0, "sign");
  return out;
}

X509StackPtr makeStack(const std::vector<const TestCertificate*>& certs) {
  X509StackPtr stack(sk_X509_new_null());
  for (const TestCertificate* c : certs) {
    X509_up_ref(c->cert.get());
    sk_X509_push(stack.get(), c->cert.get());
  }
  return stack;
}

}  // namespace aaproxy::testing
