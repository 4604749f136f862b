#include "authz/impersonation.h"

#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace aaproxy {
namespace {

UserInfo makeUser(std::string name, std::vector<std::string> groups = {},
                  std::map<std::string, std::vector<std::string>> extra = {},
                  std::string uid = "") {
  UserInfo u;
  u.name = std::move(name);
  u.groups = std::move(groups);
  u.extra = std::move(extra);
  u.uid = std::move(uid);
  return u;
}

// The attributes of one check, written as "<group>/<version>/<resource>/<subresource>
// ns=<namespace> name=<name>" so that every field is compared.
std::string describe(const ImpersonationCheck& c) {
  const RequestInfo& a = c.attributes;
  return a.apiGroup + "/" + a.apiVersion + "/" + a.resource + "/" + a.subresource +
         " ns=" + a.namespaceName + " name=" + a.name;
}

std::vector<std::string> describeAll(const ImpersonationPlan& plan) {
  std::vector<std::string> out;
  for (const ImpersonationCheck& c : plan.checks) {
    EXPECT_TRUE(c.attributes.isResourceRequest);
    EXPECT_EQ(c.attributes.verb, "impersonate");
    EXPECT_TRUE(c.attributes.path.empty());
    out.push_back(describe(c));
  }
  return out;
}

// upstream impersonation_test.go's impersonateAuthorizer, over our attributes: returns nullopt
// for Allow, else the reason (upstream answers 403 for a denial and for an authorizer error).
std::optional<std::string> fakeAuthorize(const UserInfo& u, const RequestInfo& a) {
  if (u.name == "system:admin") {
    return std::nullopt;
  }
  if (u.name == "tester") {
    return "";  // (NoOpinion, "", error "works on my machine")
  }
  if (u.name == "deny-me") {
    return "denied";
  }
  auto group = [&](size_t i) -> std::string { return u.groups.size() > i ? u.groups[i] : ""; };
  const bool imp = a.verb == "impersonate";
  if (group(0) == "wheel" && imp && a.resource == "users") {
    return std::nullopt;
  }
  if (group(0) == "sa-impersonater" && imp && a.resource == "serviceaccounts") {
    return std::nullopt;
  }
  if (group(0) == "regular-impersonater" && imp && a.resource == "users") {
    return std::nullopt;
  }
  if (group(1) == "group-impersonater" && imp && a.resource == "groups") {
    return std::nullopt;
  }
  if (group(1) == "extra-setter-scopes" && imp && a.resource == "userextras" &&
      a.subresource == "scopes") {
    return std::nullopt;
  }
  if (group(1) == "escaped-scopes" || group(1) == "almost-escaped-scopes") {
    return std::nullopt;
  }
  if (group(1) == "extra-setter-particular-scopes" && imp && a.resource == "userextras" &&
      a.subresource == "scopes" && a.name == "scope-a" && a.apiGroup == "authentication.k8s.io") {
    return std::nullopt;
  }
  if (group(1) == "extra-setter-project" && imp && a.resource == "userextras" &&
      a.subresource == "project" && a.apiGroup == "authentication.k8s.io") {
    return std::nullopt;
  }
  if (group(0) == "everything-impersonater" && imp) {
    if (a.resource == "users" && a.apiGroup.empty()) {
      return std::nullopt;
    }
    if (a.resource == "uids" && a.name == "some-uid" && a.apiGroup == "authentication.k8s.io") {
      return std::nullopt;
    }
    if (a.resource == "groups" && a.apiGroup.empty()) {
      return std::nullopt;
    }
    if (a.resource == "userextras" && a.subresource == "scopes" &&
        a.apiGroup == "authentication.k8s.io") {
      return std::nullopt;
    }
  }
  return "deny by default";
}

struct FilterCase {
  std::string name;
  UserInfo requestor;
  std::string impersonateUser;
  std::vector<std::string> groups;
  std::vector<std::pair<std::string, std::vector<std::string>>> extras;
  std::string uid;
  // What planImpersonation must produce (checks empty and no plan user on error).
  std::vector<std::string> wantChecks;
  std::optional<UserInfo> wantImpersonated;
  // Upstream's table: the status code and the user the handler then sees.
  int wantCode = 200;
  UserInfo wantUser;
};

void PrintTo(const FilterCase& c, std::ostream* os) { *os << c.name; }

HeaderMap headersFor(const FilterCase& c) {
  HeaderMap h;
  h.add("Accept", "application/json");
  if (!c.impersonateUser.empty()) {
    h.add("Impersonate-User", c.impersonateUser);
  }
  for (const std::string& g : c.groups) {
    h.add("Impersonate-Group", g);
  }
  for (const auto& [key, values] : c.extras) {
    for (const std::string& v : values) {
      h.add("Impersonate-Extra-" + key, v);
    }
  }
  if (!c.uid.empty()) {
    h.add("Impersonate-Uid", c.uid);
  }
  return h;
}

class ImpersonationFilterTest : public ::testing::TestWithParam<FilterCase> {};

// Runs the plan the way WithImpersonation does: 400 on a plan error, else every check in order
// (the first denial is a 403), else the impersonated user.
TEST_P(ImpersonationFilterTest, MatchesUpstreamTable) {
  const FilterCase& c = GetParam();
  HeaderMap headers = headersFor(c);
  absl::StatusOr<ImpersonationPlan> plan = planImpersonation(headers);

  int code = 200;
  UserInfo user = c.requestor;
  if (!plan.ok()) {
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
    code = impersonationErrorResponse(plan.status()).code;
  } else {
    EXPECT_EQ(describeAll(*plan), c.wantChecks);
    EXPECT_EQ(plan->requested, !c.wantChecks.empty());
    if (c.wantImpersonated) {
      EXPECT_EQ(plan->impersonated, *c.wantImpersonated);
    }
    if (plan->requested) {
      bool denied = false;
      for (const ImpersonationCheck& check : plan->checks) {
        if (std::optional<std::string> reason = fakeAuthorize(c.requestor, check.attributes)) {
          code = forbiddenResponse(c.requestor, check.attributes, *reason).code;
          denied = true;
          break;
        }
      }
      if (!denied) {
        user = plan->impersonated;
      }
    }
  }
  EXPECT_EQ(code, c.wantCode);
  EXPECT_EQ(user, c.wantUser);

  removeImpersonationHeaders(headers);
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers.entries()[0].name, "Accept");
}

const char kUsersAdmin[] = "//users/ ns= name=system:admin";
const char kGroupSome[] = "//groups/ ns= name=some-group";

INSTANTIATE_TEST_SUITE_P(
    Upstream, ImpersonationFilterTest,
    ::testing::Values(
        FilterCase{.name = "not_impersonating",
                   .requestor = makeUser("tester"),
                   .wantCode = 200,
                   .wantUser = makeUser("tester")},
        FilterCase{.name = "impersonating_error",
                   .requestor = makeUser("tester"),
                   .impersonateUser = "anyone",
                   .wantChecks = {"//users/ ns= name=anyone"},
                   .wantCode = 403,
                   .wantUser = makeUser("tester")},
        FilterCase{.name = "impersonating_group_without_user",
                   .requestor = makeUser("tester"),
                   .groups = {"some-group"},
                   .wantCode = 400,
                   .wantUser = makeUser("tester")},
        FilterCase{.name = "impersonating_extra_without_user",
                   .requestor = makeUser("tester"),
                   .extras = {{"scopes", {"scope-a"}}},
                   .wantCode = 400,
                   .wantUser = makeUser("tester")},
        FilterCase{.name = "impersonating_uid_without_user",
                   .requestor = makeUser("tester"),
                   .uid = "some-uid",
                   .wantCode = 400,
                   .wantUser = makeUser("tester")},
        FilterCase{.name = "disallowed_group",
                   .requestor = makeUser("dev", {"wheel"}),
                   .impersonateUser = "system:admin",
                   .groups = {"some-group"},
                   .wantChecks = {kUsersAdmin, kGroupSome},
                   .wantCode = 403,
                   .wantUser = makeUser("dev", {"wheel"})},
        FilterCase{.name = "allowed_group",
                   .requestor = makeUser("dev", {"wheel", "group-impersonater"}),
                   .impersonateUser = "system:admin",
                   .groups = {"some-group"},
                   .wantChecks = {kUsersAdmin, kGroupSome},
                   .wantCode = 200,
                   .wantUser = makeUser("system:admin", {"some-group", "system:authenticated"})},
        FilterCase{.name = "disallowed_userextra_1",
                   .requestor = makeUser("dev", {"wheel"}),
                   .impersonateUser = "system:admin",
                   .groups = {"some-group"},
                   .extras = {{"scopes", {"scope-a"}}},
                   .wantChecks = {kUsersAdmin, kGroupSome,
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-a"},
                   .wantCode = 403,
                   .wantUser = makeUser("dev", {"wheel"})},
        FilterCase{.name = "disallowed_userextra_2",
                   .requestor = makeUser("dev", {"wheel", "extra-setter-project"}),
                   .impersonateUser = "system:admin",
                   .groups = {"some-group"},
                   .extras = {{"scopes", {"scope-a"}}},
                   .wantChecks = {kUsersAdmin, kGroupSome,
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-a"},
                   .wantCode = 403,
                   .wantUser = makeUser("dev", {"wheel", "extra-setter-project"})},
        FilterCase{.name = "disallowed_userextra_3",
                   .requestor = makeUser("dev", {"wheel", "extra-setter-particular-scopes"}),
                   .impersonateUser = "system:admin",
                   .groups = {"some-group"},
                   .extras = {{"scopes", {"scope-a", "scope-b"}}},
                   .wantChecks = {kUsersAdmin, kGroupSome,
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-a",
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-b"},
                   .wantCode = 403,
                   .wantUser = makeUser("dev", {"wheel", "extra-setter-particular-scopes"})},
        FilterCase{.name = "allowed_userextras",
                   .requestor = makeUser("dev", {"wheel", "extra-setter-scopes"}),
                   .impersonateUser = "system:admin",
                   .extras = {{"scopes", {"scope-a", "scope-b"}}},
                   .wantChecks = {kUsersAdmin,
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-a",
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-b"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:admin", {"system:authenticated"},
                                        {{"scopes", {"scope-a", "scope-b"}}})},
        FilterCase{.name = "percent_escaped_userextras",
                   .requestor = makeUser("dev", {"wheel", "escaped-scopes"}),
                   .impersonateUser = "system:admin",
                   .extras = {{"example.com%2fescaped%e1%9b%84scopes", {"scope-a", "scope-b"}}},
                   .wantChecks =
                       {kUsersAdmin,
                        "authentication.k8s.io/v1/userextras/example.com/escaped\xe1\x9b\x84scopes"
                        " ns= name=scope-a",
                        "authentication.k8s.io/v1/userextras/example.com/escaped\xe1\x9b\x84scopes"
                        " ns= name=scope-b"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:admin", {"system:authenticated"},
                                        {{"example.com/escaped\xe1\x9b\x84scopes",
                                          {"scope-a", "scope-b"}}})},
        FilterCase{.name = "almost_percent_escaped_userextras",
                   .requestor = makeUser("dev", {"wheel", "almost-escaped-scopes"}),
                   .impersonateUser = "system:admin",
                   .extras = {{"almost%zzpercent%xxencoded", {"scope-a", "scope-b"}}},
                   .wantChecks = {kUsersAdmin,
                                  "authentication.k8s.io/v1/userextras/almost%zzpercent%xxencoded"
                                  " ns= name=scope-a",
                                  "authentication.k8s.io/v1/userextras/almost%zzpercent%xxencoded"
                                  " ns= name=scope-b"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:admin", {"system:authenticated"},
                                        {{"almost%zzpercent%xxencoded", {"scope-a", "scope-b"}}})},
        FilterCase{.name = "allowed_users_impersonation",
                   .requestor = makeUser("dev", {"regular-impersonater"}),
                   .impersonateUser = "tester",
                   .wantChecks = {"//users/ ns= name=tester"},
                   .wantCode = 200,
                   .wantUser = makeUser("tester", {"system:authenticated"})},
        FilterCase{.name = "disallowed_impersonating",
                   .requestor = makeUser("dev", {"sa-impersonater"}),
                   .impersonateUser = "tester",
                   .wantChecks = {"//users/ ns= name=tester"},
                   .wantCode = 403,
                   .wantUser = makeUser("dev", {"sa-impersonater"})},
        FilterCase{.name = "allowed_sa_impersonating",
                   .requestor = makeUser("dev", {"sa-impersonater"}),
                   .impersonateUser = "system:serviceaccount:foo:default",
                   .wantChecks = {"//serviceaccounts/ ns=foo name=default"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:serviceaccount:foo:default",
                                        {"system:serviceaccounts", "system:serviceaccounts:foo",
                                         "system:authenticated"})},
        FilterCase{.name = "anonymous_username_prevents_adding_authenticated_group",
                   .requestor = makeUser("system:admin"),
                   .impersonateUser = "system:anonymous",
                   .wantChecks = {"//users/ ns= name=system:anonymous"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:anonymous", {"system:unauthenticated"})},
        // Newer upstream tables have these two with a system:anonymous requestor and a 200, which
        // their own fake authorizer cannot give (it denies that requestor); we keep the
        // requestor, expect the fake authorizer's 403, and check upstream's user on the plan.
        FilterCase{.name = "anonymous_username_already_has_unauthenticated_group",
                   .requestor = makeUser("system:anonymous", {"system:unauthenticated"}),
                   .impersonateUser = "system:anonymous",
                   .wantChecks = {"//users/ ns= name=system:anonymous"},
                   .wantImpersonated = makeUser("system:anonymous", {"system:unauthenticated"}),
                   .wantCode = 403,
                   .wantUser = makeUser("system:anonymous", {"system:unauthenticated"})},
        FilterCase{.name = "anonymous_username_adding_unauthenticated_group",
                   .requestor = makeUser("system:anonymous"),
                   .impersonateUser = "system:anonymous",
                   .wantChecks = {"//users/ ns= name=system:anonymous"},
                   .wantImpersonated = makeUser("system:anonymous", {"system:unauthenticated"}),
                   .wantCode = 403,
                   .wantUser = makeUser("system:anonymous")},
        FilterCase{.name = "unauthenticated_group_prevents_adding_authenticated_group",
                   .requestor = makeUser("system:admin"),
                   .impersonateUser = "unknown",
                   .groups = {"system:unauthenticated"},
                   .wantChecks = {"//users/ ns= name=unknown",
                                  "//groups/ ns= name=system:unauthenticated"},
                   .wantCode = 200,
                   .wantUser = makeUser("unknown", {"system:unauthenticated"})},
        FilterCase{.name = "unauthenticated_group_prevents_double_adding_authenticated_group",
                   .requestor = makeUser("system:admin"),
                   .impersonateUser = "unknown",
                   .groups = {"system:authenticated"},
                   .wantChecks = {"//users/ ns= name=unknown",
                                  "//groups/ ns= name=system:authenticated"},
                   .wantCode = 200,
                   .wantUser = makeUser("unknown", {"system:authenticated"})},
        FilterCase{.name = "specified_authenticated_group_prevents_double_adding_authenticated",
                   .requestor = makeUser("dev", {"wheel", "group-impersonater"}),
                   .impersonateUser = "system:admin",
                   .groups = {"some-group", "system:authenticated"},
                   .wantChecks = {kUsersAdmin, kGroupSome,
                                  "//groups/ ns= name=system:authenticated"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:admin", {"some-group", "system:authenticated"})},
        FilterCase{.name = "anonymous_user_should_include_unauthenticated_group",
                   .requestor = makeUser("system:admin"),
                   .impersonateUser = "system:anonymous",
                   .wantChecks = {"//users/ ns= name=system:anonymous"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:anonymous", {"system:unauthenticated"})},
        FilterCase{.name = "anonymous_user_prevents_double_adding_unauthenticated_group",
                   .requestor = makeUser("system:admin"),
                   .impersonateUser = "system:anonymous",
                   .groups = {"system:unauthenticated"},
                   .wantChecks = {"//users/ ns= name=system:anonymous",
                                  "//groups/ ns= name=system:unauthenticated"},
                   .wantCode = 200,
                   .wantUser = makeUser("system:anonymous", {"system:unauthenticated"})},
        FilterCase{.name = "allowed_user_impersonation_with_uid",
                   .requestor = makeUser("dev", {"everything-impersonater"}),
                   .impersonateUser = "tester",
                   .uid = "some-uid",
                   .wantChecks = {"//users/ ns= name=tester",
                                  "authentication.k8s.io/v1/uids/ ns= name=some-uid"},
                   .wantCode = 200,
                   .wantUser = makeUser("tester", {"system:authenticated"}, {}, "some-uid")},
        FilterCase{.name = "disallowed_user_impersonation_with_uid",
                   .requestor = makeUser("dev", {"everything-impersonater"}),
                   .impersonateUser = "tester",
                   .uid = "disallowed-uid",
                   .wantChecks = {"//users/ ns= name=tester",
                                  "authentication.k8s.io/v1/uids/ ns= name=disallowed-uid"},
                   .wantCode = 403,
                   .wantUser = makeUser("dev", {"everything-impersonater"})},
        FilterCase{.name = "allowed_impersonation_with_all_headers",
                   .requestor = makeUser("dev", {"everything-impersonater"}),
                   .impersonateUser = "tester",
                   .groups = {"system:authenticated"},
                   .extras = {{"scopes", {"scope-a", "scope-b"}}},
                   .uid = "some-uid",
                   .wantChecks = {"//users/ ns= name=tester",
                                  "//groups/ ns= name=system:authenticated",
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-a",
                                  "authentication.k8s.io/v1/userextras/scopes ns= name=scope-b",
                                  "authentication.k8s.io/v1/uids/ ns= name=some-uid"},
                   .wantCode = 200,
                   .wantUser = makeUser("tester", {"system:authenticated"},
                                        {{"scopes", {"scope-a", "scope-b"}}}, "some-uid")}),
    [](const ::testing::TestParamInfo<FilterCase>& info) { return info.param.name; });

// --- Error bodies -------------------------------------------------------------------------------

std::string planError(const HeaderMap& h) {
  absl::StatusOr<ImpersonationPlan> plan = planImpersonation(h);
  EXPECT_FALSE(plan.ok());
  return plan.ok() ? "" : std::string(plan.status().message());
}

TEST(ImpersonationErrorTest, MessagesAreGoFormattedObjectReferences) {
  HeaderMap group;
  group.add("Impersonate-Group", "some-group");
  EXPECT_EQ(planError(group), "requested [{Group  some-group    }] without impersonating a user");

  HeaderMap extra;
  extra.add("Impersonate-Extra-Scopes", "scope-a");
  EXPECT_EQ(planError(extra),
            "requested [{UserExtra  scope-a  authentication.k8s.io/v1  scopes}] without "
            "impersonating a user");

  HeaderMap uid;
  uid.add("Impersonate-Uid", "some-uid");
  EXPECT_EQ(planError(uid),
            "requested [{UID  some-uid  authentication.k8s.io/v1  }] without impersonating a user");

  // An empty Impersonate-User is no user; everything requested is listed in upstream's order.
  HeaderMap all;
  all.add("Impersonate-Uid", "u1");
  all.add("Impersonate-User", "");
  all.add("Impersonate-Extra-K", "v");
  all.add("Impersonate-Group", "a");
  all.add("impersonate-group", "");
  EXPECT_EQ(planError(all),
            "requested [{Group  a    } {Group      } {UserExtra  v  authentication.k8s.io/v1  k} "
            "{UID  u1  authentication.k8s.io/v1  }] without impersonating a user");
}

TEST(ImpersonationErrorTest, BadRequestStatusBody) {
  HeaderMap h;
  h.add("Impersonate-Group", "<g>");
  absl::StatusOr<ImpersonationPlan> plan = planImpersonation(h);
  ASSERT_FALSE(plan.ok());
  HttpErrorResponse r = impersonationErrorResponse(plan.status());
  EXPECT_EQ(r.code, 400);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "Content-Type");
  EXPECT_EQ(r.headers[0].second, "application/json");
  EXPECT_EQ(r.body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
            "\"message\":\"requested [{Group  \\u003cg\\u003e    }] without impersonating a "
            "user\",\"reason\":\"BadRequest\",\"code\":400}\n");
  HttpErrorResponse pretty = impersonationErrorResponse(plan.status(), JsonStyle::kPretty);
  EXPECT_EQ(pretty.body.substr(0, 2), "{\n");
  EXPECT_NE(pretty.body.find("\"reason\": \"BadRequest\""), std::string::npos);
}

TEST(ImpersonationForbiddenTest, MessagesPerKind) {
  HeaderMap h;
  h.add("Impersonate-User", "system:serviceaccount:foo:default");
  h.add("Impersonate-Group", "g1");
  h.add("Impersonate-Extra-Scopes", "scope-a");
  h.add("Impersonate-Uid", "u1");
  absl::StatusOr<ImpersonationPlan> plan = planImpersonation(h);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->checks.size(), 4u);
  const UserInfo dev = makeUser("dev", {"wheel"});
  EXPECT_EQ(impersonationForbiddenMessage(dev, plan->checks[0], ""),
            R"(serviceaccounts "default" is forbidden: User "dev" cannot impersonate resource )"
            R"("serviceaccounts" in API group "" in the namespace "foo")");
  EXPECT_EQ(impersonationForbiddenMessage(dev, plan->checks[1], "deny by default"),
            R"(groups "g1" is forbidden: User "dev" cannot impersonate resource "groups" in API )"
            R"(group "" at the cluster scope: deny by default)");
  EXPECT_EQ(impersonationForbiddenMessage(dev, plan->checks[2], ""),
            R"(userextras.authentication.k8s.io "scope-a" is forbidden: User "dev" cannot )"
            R"(impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at )"
            R"(the cluster scope)");
  EXPECT_EQ(impersonationForbiddenMessage(dev, plan->checks[3], ""),
            R"(uids.authentication.k8s.io "u1" is forbidden: User "dev" cannot impersonate )"
            R"(resource "uids" in API group "authentication.k8s.io" at the cluster scope)");
}

TEST(ImpersonationForbiddenTest, ResponseBody) {
  HeaderMap h;
  h.add("Impersonate-User", "tester");
  absl::StatusOr<ImpersonationPlan> plan = planImpersonation(h);
  ASSERT_TRUE(plan.ok()) << plan.status();
  HttpErrorResponse r =
      forbiddenResponse(makeUser("dev"), plan->checks[0].attributes, "deny by default");
  EXPECT_EQ(r.code, 403);
  EXPECT_EQ(r.body,
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)"
            R"("users \"tester\" is forbidden: User \"dev\" cannot impersonate resource \"users\" )"
            R"(in API group \"\" at the cluster scope: deny by default","reason":"Forbidden",)"
            R"("details":{"name":"tester","kind":"users"},"code":403})"
            "\n");
}

// --- Header parsing -----------------------------------------------------------------------------

ImpersonationPlan mustPlan(const HeaderMap& h) {
  absl::StatusOr<ImpersonationPlan> plan = planImpersonation(h);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : ImpersonationPlan{};
}

TEST(ImpersonationHeadersTest, NoHeadersOrEmptyUserIsNotARequest) {
  HeaderMap none;
  none.add("X-Remote-User", "x");
  ImpersonationPlan plan = mustPlan(none);
  EXPECT_FALSE(plan.requested);
  EXPECT_TRUE(plan.checks.empty());
  EXPECT_EQ(plan.impersonated, UserInfo{});

  HeaderMap empty;
  empty.add("Impersonate-User", "");
  empty.add("Impersonate-Uid", "");
  plan = mustPlan(empty);
  EXPECT_FALSE(plan.requested);
  EXPECT_TRUE(plan.checks.empty());
}

TEST(ImpersonationHeadersTest, NamesAreCaseInsensitiveAndFirstUserLineWins) {
  HeaderMap h;
  h.add("impersonate-user", "alice");
  h.add("IMPERSONATE-USER", "mallory");
  h.add("impersonate-uid", "u1");
  h.add("Impersonate-Uid", "u2");
  h.add("iMpErSoNaTe-GrOuP", "g1");
  ImpersonationPlan plan = mustPlan(h);
  EXPECT_TRUE(plan.requested);
  EXPECT_EQ(describeAll(plan),
            (std::vector<std::string>{"//users/ ns= name=alice", "//groups/ ns= name=g1",
                                      "authentication.k8s.io/v1/uids/ ns= name=u1"}));
  EXPECT_EQ(plan.impersonated, makeUser("alice", {"g1", "system:authenticated"}, {}, "u1"));
}

TEST(ImpersonationHeadersTest, EmptyGroupLineIsAGroup) {
  HeaderMap h;
  h.add("Impersonate-User", "alice");
  h.add("Impersonate-Group", "");
  ImpersonationPlan plan = mustPlan(h);
  EXPECT_EQ(describeAll(plan),
            (std::vector<std::string>{"//users/ ns= name=alice", "//groups/ ns= name="}));
  EXPECT_EQ(plan.impersonated.groups, (std::vector<std::string>{"", "system:authenticated"}));
}

TEST(ImpersonationHeadersTest, ExtraKeysLowercasedThenUnescapedAndGroupedByName) {
  HeaderMap h;
  h.add("Impersonate-User", "alice");
  h.add("Impersonate-Extra-Zeta", "z1");
  h.add("impersonate-extra-Foo%41", "a1");  // lowercased first, so %41 decodes to 'A'
  h.add("IMPERSONATE-EXTRA-ZETA", "z2");    // same Go canonical key as the first line
  h.add("Impersonate-Extra-Example.COM%2Fkey", "e1");
  h.add("Impersonate-Extra-bad%zz", "b1");
  h.add("Impersonate-Extra-", "empty-key");
  h.add("Impersonate-Extra-Plus+Sign", "p1");  // PathUnescape keeps '+'
  ImpersonationPlan plan = mustPlan(h);
  EXPECT_EQ(describeAll(plan),
            (std::vector<std::string>{
                "//users/ ns= name=alice",
                "authentication.k8s.io/v1/userextras/zeta ns= name=z1",
                "authentication.k8s.io/v1/userextras/zeta ns= name=z2",
                "authentication.k8s.io/v1/userextras/fooA ns= name=a1",
                "authentication.k8s.io/v1/userextras/example.com/key ns= name=e1",
                "authentication.k8s.io/v1/userextras/bad%zz ns= name=b1",
                "authentication.k8s.io/v1/userextras/ ns= name=empty-key",
                "authentication.k8s.io/v1/userextras/plus+sign ns= name=p1",
            }));
  EXPECT_EQ(plan.impersonated.extra,
            (std::map<std::string, std::vector<std::string>>{
                {"zeta", {"z1", "z2"}},
                {"fooA", {"a1"}},
                {"example.com/key", {"e1"}},
                {"bad%zz", {"b1"}},
                {"", {"empty-key"}},
                {"plus+sign", {"p1"}},
            }));
}

TEST(ImpersonationHeadersTest, DifferentHeadersDecodingToOneKeyShareIt) {
  HeaderMap h;
  h.add("Impersonate-User", "alice");
  h.add("Impersonate-Extra-a", "1");
  h.add("Impersonate-Extra-%61", "2");
  ImpersonationPlan plan = mustPlan(h);
  EXPECT_EQ(plan.impersonated.extra.at("a"), (std::vector<std::string>{"1", "2"}));
}

struct UsernameCase {
  std::string username;
  std::string wantCheck;
  UserInfo wantUser;
};

void PrintTo(const UsernameCase& c, std::ostream* os) { *os << c.username; }

class ServiceAccountUsernameTest : public ::testing::TestWithParam<UsernameCase> {};

TEST_P(ServiceAccountUsernameTest, SplitsLikeUpstream) {
  const UsernameCase& c = GetParam();
  HeaderMap h;
  h.add("Impersonate-User", c.username);
  ImpersonationPlan plan = mustPlan(h);
  EXPECT_EQ(describeAll(plan), std::vector<std::string>{c.wantCheck});
  EXPECT_EQ(plan.impersonated, c.wantUser);
}

UsernameCase asUser(const std::string& name) {
  return {name, "//users/ ns= name=" + name, makeUser(name, {"system:authenticated"})};
}

UsernameCase asServiceAccount(const std::string& ns, const std::string& name) {
  const std::string username = "system:serviceaccount:" + ns + ":" + name;
  return {username, "//serviceaccounts/ ns=" + ns + " name=" + name,
          makeUser(username, {"system:serviceaccounts", "system:serviceaccounts:" + ns,
                              "system:authenticated"})};
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ServiceAccountUsernameTest,
    ::testing::Values(asServiceAccount("foo", "default"), asServiceAccount("kube-system", "my.sa"),
                      asServiceAccount(std::string(63, 'n'), std::string(253, 's')),
                      asServiceAccount("0", "a-b.c-d"),
                      asUser("system:serviceaccount:" + std::string(64, 'n') + ":sa"),
                      asUser("system:serviceaccount:ns:" + std::string(254, 's')),
                      asUser("system:serviceaccount:Foo:default"),
                      asUser("system:serviceaccount:foo:Default"),
                      asUser("system:serviceaccount:my.ns:sa"),
                      asUser("system:serviceaccount:-ns:sa"),
                      asUser("system:serviceaccount:ns-:sa"),
                      asUser("system:serviceaccount:ns:sa."),
                      asUser("system:serviceaccount:ns:a..b"),
                      asUser("system:serviceaccount:foo:bar:baz"),
                      asUser("system:serviceaccount:foo:"), asUser("system:serviceaccount::sa"),
                      asUser("system:serviceaccount:foo"), asUser("system:serviceaccounts:foo:sa"),
                      asUser("System:serviceaccount:foo:sa")));

TEST(ImpersonationUserTest, ServiceAccountWithExplicitGroupsGetsOnlyThose) {
  HeaderMap h;
  h.add("Impersonate-User", "system:serviceaccount:foo:default");
  h.add("Impersonate-Group", "g1");
  ImpersonationPlan plan = mustPlan(h);
  EXPECT_EQ(describeAll(plan), (std::vector<std::string>{"//serviceaccounts/ ns=foo name=default",
                                                         "//groups/ ns= name=g1"}));
  EXPECT_EQ(plan.impersonated,
            makeUser("system:serviceaccount:foo:default", {"g1", "system:authenticated"}));
}

TEST(ImpersonationUserTest, AnonymousWithAuthenticatedGroupStillGetsUnauthenticated) {
  HeaderMap h;
  h.add("Impersonate-User", "system:anonymous");
  h.add("Impersonate-Group", "system:authenticated");
  EXPECT_EQ(mustPlan(h).impersonated,
            makeUser("system:anonymous", {"system:authenticated", "system:unauthenticated"}));
}

// --- Header stripping ---------------------------------------------------------------------------

TEST(ImpersonationStripTest, RemovesEveryImpersonationLineOnly) {
  HeaderMap h;
  h.add("Host", "x");
  h.add("impersonate-user", "a");
  h.add("Impersonate-Group", "g1");
  h.add("IMPERSONATE-GROUP", "g2");
  h.add("Impersonate-Uid", "u");
  h.add("Impersonate-Extra-Scopes", "s");
  h.add("impersonate-extra-", "e");
  h.add("Impersonate-Users", "kept");
  h.add("X-Impersonate-User", "kept");
  h.add("Impersonate-Extra", "kept");
  EXPECT_EQ(impersonationHeaderNames(h),
            (std::vector<std::string>{"impersonate-user", "Impersonate-Group", "IMPERSONATE-GROUP",
                                      "Impersonate-Uid", "Impersonate-Extra-Scopes",
                                      "impersonate-extra-"}));
  EXPECT_EQ(removeImpersonationHeaders(h), 6u);
  std::vector<std::string> left;
  for (const Header& header : h.entries()) {
    left.push_back(header.name);
  }
  EXPECT_EQ(left, (std::vector<std::string>{"Host", "Impersonate-Users", "X-Impersonate-User",
                                            "Impersonate-Extra"}));
  EXPECT_TRUE(isImpersonationHeader("IMPERSONATE-UID"));
  EXPECT_FALSE(isImpersonationHeader("Impersonate-"));
}

}  // namespace
}  // namespace aaproxy
