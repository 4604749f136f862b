// Turns an HTTP method and request target into Kubernetes authorization attributes, exactly as
// k8s.io/apiserver's RequestInfoFactory.NewRequestInfo plus GetAuthorizerAttributes do.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace aaproxy {

// A selector requirement as the SubjectAccessReview carries it (metav1.FieldSelectorRequirement
// / metav1.LabelSelectorRequirement): operator is "In", "NotIn", "Exists" or "DoesNotExist".
struct SelectorRequirement {
  std::string key;
  std::string op;
  std::vector<std::string> values;

  bool operator==(const SelectorRequirement&) const = default;
};

struct RequestInfo {
  bool isResourceRequest = false;
  std::string path;  // decoded URL path (Go URL.Path)
  std::string verb;  // kube verb; lowercased HTTP method for non-resource requests
  std::string apiPrefix;
  std::string apiGroup;
  std::string apiVersion;
  std::string namespaceName;  // "namespace" in upstream
  std::string resource;
  std::string subresource;
  std::string name;
  std::vector<std::string> parts;

  // Raw selectors, only for list/watch/deletecollection not using the /watch/ path prefix
  // (first query value), as upstream's RequestInfo.FieldSelector/LabelSelector.
  std::string fieldSelector;
  std::string labelSelector;
  // What the SAR carries (webhook.go): parsed requirements with operators mapped to
  // In/NotIn/Exists/DoesNotExist, unsupported ones (gt, lt) dropped. Empty when the selector
  // does not parse (upstream then authorizes the unrestricted request).
  std::vector<SelectorRequirement> fieldSelectorRequirements;
  std::vector<SelectorRequirement> labelSelectorRequirements;
};

// `request_target` is the request line's target as received ("/apis/g/v/x?watch=1").
//
// Errors:
//  - InvalidArgument: the target is not a valid Go request URI (bad %-escape, control byte):
//    Go's net/http answers 400 before any handler runs.
//  - Internal: NewRequestInfo failed ("unable to determine kind and namespace from url, <url>",
//    e.g. GET /api/v1/watch); upstream's WithRequestInfo answers 500 with
//    internalErrorBody(uri, "failed to create RequestInfo: " + message).
absl::StatusOr<RequestInfo> resolveRequestInfo(std::string_view method,
                                               std::string_view request_target);

// k8s.io/apiserver's WithRequestDeadline check of the `timeout` query parameter. Upstream runs
// it after RequestInfo and *before* authentication: a non-long-running request (long-running =
// verb "watch", or a non-resource path under /debug/pprof/, the generic apiserver default) whose
// first `timeout` value is non-empty and not a Go time.ParseDuration string is answered 400:
//   failureStatusJson(400, "BadRequest", status.message(), std::nullopt, style)
// with message "invalid timeout specified in the request URL - time: invalid duration \"x\"".
// Returns InvalidArgument carrying that message, OK otherwise.
absl::Status checkRequestTimeoutParameter(const RequestInfo& info,
                                          std::string_view request_target);

// time.ParseDuration's error text for `s`, or "" when it parses.
std::string goParseDurationError(std::string_view s);

}  // namespace aaproxy
