// ConfigMapSource against the kube-apiserver test double.
#include "kube/configmap_source.h"

#include <event2/event.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "kube/testing/fake_apiserver_process.h"

namespace aaproxy {
namespace {

using testing::FakeApiServerProcess;
using testing::RecordedRequest;

TEST(ParseConfigMapJsonTest, Table) {
  struct Case {
    std::string json;
    std::string error;  // empty: success
    ConfigMapData data;
    std::string rv;
  };
  const Case cases[] = {
      {R"({"metadata":{"resourceVersion":"7"},"data":{"a":"1","b":""}})",
       "",
       {{"a", "1"}, {"b", ""}},
       "7"},
      {R"({"metadata":{}})", "", {}, ""},
      {R"({"data":null})", "", {}, ""},
      {R"({"data":{"a":1}})", "ConfigMap: data.a is not a string", {}, ""},
      {R"({"data":[]})", "ConfigMap: data is not an object", {}, ""},
      {R"(not json)", "ConfigMap: invalid JSON", {}, ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ParsedConfigMap> got = parseConfigMapJson(c.json);
    if (!c.error.empty()) {
      EXPECT_EQ(got.status().message(), c.error) << c.json;
      continue;
    }
    ASSERT_TRUE(got.ok()) << c.json << ": " << got.status();
    EXPECT_EQ(got->data, c.data) << c.json;
    EXPECT_EQ(got->resource_version, c.rv) << c.json;
  }
}

class ConfigMapSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    absl::StatusOr<std::unique_ptr<FakeApiServerProcess>> server = FakeApiServerProcess::start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    absl::StatusOr<std::shared_ptr<KubeTransport>> transport =
        KubeTransport::create(server_->clientConfig());
    ASSERT_TRUE(transport.ok()) << transport.status();
    ApiServerClientOptions options;
    options.backoff.initial = absl::Milliseconds(10);
    options.backoff.steps = 2;
    client_ = std::make_unique<ApiServerClient>(base_, *transport, options);
  }

  void TearDown() override {
    source_.reset();
    client_.reset();
    event_base_free(base_);
  }

  absl::Status startSource(ConfigMapSourceOptions options) {
    options.log = [this](std::string_view m) { logs_.emplace_back(m); };
    source_ = std::make_unique<ConfigMapSource>(
        *client_, options, [this](const ConfigMapData& d) { updates_.push_back(d); });
    std::optional<absl::Status> started;
    source_->start([&](const absl::Status& s) { started = s; });
    EXPECT_TRUE(runUntil([&] { return started.has_value(); }));
    return started.value_or(absl::DeadlineExceededError("test: not started"));
  }

  bool runUntil(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + limit;
    event* tick = event_new(
        base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr);
    timeval tv{0, 10000};
    event_add(tick, &tv);
    while (!done() && absl::Now() < deadline) {
      event_base_loop(base_, EVLOOP_ONCE);
    }
    event_free(tick);
    return done();
  }

  event_base* base_ = nullptr;
  std::unique_ptr<FakeApiServerProcess> server_;
  std::unique_ptr<ApiServerClient> client_;
  std::unique_ptr<ConfigMapSource> source_;
  std::vector<ConfigMapData> updates_;
  std::vector<std::string> logs_;
};

TEST_F(ConfigMapSourceTest, LoadsAtStartAndFollowsTheWatchOnlyOnRealChanges) {
  server_->writeConfigMapData(R"({"client-ca-file": "CA1"})");
  ASSERT_TRUE(startSource({}).ok());
  ASSERT_EQ(updates_.size(), 1u);
  EXPECT_EQ(updates_[0], (ConfigMapData{{"client-ca-file", "CA1"}}));
  ASSERT_TRUE(runUntil([&] { return source_->stats().watches == 1; }));
  // Same data, different bytes: the double emits MODIFIED, but nothing changed.
  server_->writeConfigMapData(R"({ "client-ca-file" : "CA1" })");
  server_->writeConfigMapData(R"({"client-ca-file": "CA2", "requestheader-allowed-names": "[]"})");
  ASSERT_TRUE(runUntil([&] { return updates_.size() == 2; }));
  EXPECT_EQ(updates_[1],
            (ConfigMapData{{"client-ca-file", "CA2"}, {"requestheader-allowed-names", "[]"}}));
  runUntil([] { return false; }, absl::Milliseconds(200));
  EXPECT_EQ(updates_.size(), 2u);
  EXPECT_EQ(source_->stats().lists, 1u);
  // The watch resumes from the resourceVersion of the first GET.
  absl::StatusOr<std::vector<RecordedRequest>> reqs = server_->recorded();
  ASSERT_TRUE(reqs.ok());
  ASSERT_EQ(reqs->size(), 2u);
  EXPECT_EQ((*reqs)[0].path,
            "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication");
  EXPECT_TRUE(absl::StartsWith((*reqs)[1].path,
                               "/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata."
                               "name%3Dextension-apiserver-authentication&watch=true&"
                               "resourceVersion="))
      << (*reqs)[1].path;
}

TEST_F(ConfigMapSourceTest, MissingAtStartIsNotFatalAndCreationIsPickedUp) {
  ASSERT_TRUE(startSource({}).ok());
  EXPECT_TRUE(updates_.empty());
  EXPECT_FALSE(source_->current().has_value());
  ASSERT_TRUE(runUntil([&] { return source_->stats().watches == 1; }));
  runUntil([] { return false; }, absl::Milliseconds(100));
  server_->writeConfigMapData(R"({"requestheader-client-ca-file": "CA"})");
  ASSERT_TRUE(runUntil([&] { return updates_.size() == 1; }));
  EXPECT_EQ(updates_[0], (ConfigMapData{{"requestheader-client-ca-file", "CA"}}));
}

TEST_F(ConfigMapSourceTest, LookupFailureIsFatalUnlessTolerated) {
  server_->writePolicy(R"({"failures": {"configmap": {"status": 403}}})");
  absl::Status s = startSource({});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StartsWith(
      s.message(),
      "unable to load configmap based request-header-client-ca-file: GET "
      "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication: HTTP 403"))
      << s;
  ASSERT_FALSE(logs_.empty());
  EXPECT_TRUE(absl::StrContains(logs_[0], "--role=extension-apiserver-authentication-reader"));

  ConfigMapSourceOptions tolerant;
  tolerant.tolerate_lookup_failure = true;
  EXPECT_TRUE(startSource(tolerant).ok());
  EXPECT_TRUE(updates_.empty());
}

TEST_F(ConfigMapSourceTest, ResyncKeepsDataCurrentWhenTheWatchIsStuck) {
  server_->writeConfigMapData(R"({"k": "1"})");
  // The watch hangs before its headers: only the periodic re-read can see the change.
  server_->writePolicy(R"({"failures": {"watch": {"slow_ms": 5000}}})");
  ConfigMapSourceOptions options;
  options.resync_period = absl::Milliseconds(200);
  options.rewatch_delay = absl::Seconds(30);
  ASSERT_TRUE(startSource(options).ok());
  ASSERT_EQ(updates_.size(), 1u);
  server_->writeConfigMapData(R"({"k": "2"})");
  ASSERT_TRUE(runUntil([&] { return updates_.size() == 2; }));
  EXPECT_EQ(updates_[1], (ConfigMapData{{"k", "2"}}));
  EXPECT_EQ(source_->stats().watches, 1u);
  EXPECT_GE(source_->stats().lists, 2u);
}

TEST_F(ConfigMapSourceTest, DeletionAndBadDataKeepTheLastGoodData) {
  server_->writeConfigMapData(R"({"k": "1"})");
  ASSERT_TRUE(startSource({}).ok());
  ASSERT_TRUE(runUntil([&] { return source_->stats().watches == 1; }));
  runUntil([] { return false; }, absl::Milliseconds(100));
  server_->removeConfigMap();
  ASSERT_TRUE(runUntil([&] {
    return std::any_of(logs_.begin(), logs_.end(),
                       [](const std::string& l) { return absl::StrContains(l, "deleted"); });
  }));
  server_->writeConfigMapData(R"({"k": 5})");
  ASSERT_TRUE(runUntil([&] {
    return std::any_of(logs_.begin(), logs_.end(), [](const std::string& l) {
      return absl::StrContains(l, "data.k is not a string; keeping the last good data");
    });
  }));
  EXPECT_EQ(updates_.size(), 1u);
  EXPECT_EQ(source_->current(), (ConfigMapData{{"k", "1"}}));
}

}  // namespace
}  // namespace aaproxy
