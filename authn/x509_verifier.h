// Client certificate verification with Go crypto/x509 semantics, as k8s.io/apiserver's x509
// authenticator and request-header Verifier use it (VerifyOptions{Roots, Intermediates from the
// peer, KeyUsages: [ClientAuth], CurrentTime}).
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "authn/authenticator.h"
#include "authn/certificate_pool.h"

namespace aaproxy {

// Verifies `peer.leaf` against `roots` at `now`, using every other certificate of `peer.chain`
// as an untrusted intermediate. `peer.leaf` must not be null. Error messages are Go's:
//   x509: certificate has expired or is not yet valid: current time <now> is after <notAfter>
//   x509: certificate has expired or is not yet valid: current time <now> is before <notBefore>
//   x509: certificate signed by unknown authority[ (possibly because of "<why>" while trying to
//     verify candidate authority certificate "<name>")]
//   x509: certificate specifies an incompatible key usage
// Extended key usage follows Go: every certificate of the verified chain (leaf to root) either
// has no EKU extension, or lists anyExtendedKeyUsage, or lists clientAuth.
// Signatures with MD2/MD5/SHA-1 anywhere below the anchor are refused as Go does (unknown
// authority with the hint "x509: cannot verify signature: insecure algorithm SHA1-RSA").
// Known divergences from Go (OpenSSL builds the chain): OpenSSL requires CA certificates (also
// a v3 trust anchor) to be CAs per basicConstraints/keyUsage(keyCertSign); Go checks only
// basicConstraints of intermediates. Go tries every candidate chain, OpenSSL one.
absl::Status verifyClientCertificate(const CertificatePool& roots, const PeerCertificates& peer,
                                     absl::Time now);

// Go's pkix.Name.CommonName: the last CN attribute of the subject with a string value.
std::string subjectCommonName(X509* cert);

// Every subject attribute of type `nid`, in certificate order, as Go's pkix parsing sees it:
// the UTF-8 text for ASN.1 string types Go decodes to a string (UTF8String, PrintableString,
// IA5String, T61String, BMPString, NumericString), nullopt for any other value type.
std::vector<std::optional<std::string>> subjectAttributeValues(X509* cert, const ASN1_OBJECT* type);
std::vector<std::optional<std::string>> subjectAttributeValues(X509* cert, int nid);

// k8s.io/apiserver's Verifier.verifySubject: an empty list allows any CN; otherwise the CN must
// equal one entry exactly (case-sensitive). Error: `x509: subject with cn=<cn> is not in the
// allowed list`.
absl::Status checkAllowedCommonName(X509* leaf, const std::vector<std::string>& allowedNames);

// k8s.io/apiserver's certificateIdentifier, used in x509 authentication errors:
// `SN=<decimal serial>, SKID=<AA:BB:..>, AKID=<AA:BB:..>` (empty when absent).
std::string certificateIdentifier(X509* cert);

// Go's time.RFC3339 rendering of a UTC time ("2024-12-05T20:25:58Z").
std::string formatRfc3339(absl::Time t);

}  // namespace aaproxy
