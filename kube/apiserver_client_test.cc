// ApiServerClient against the real kube-apiserver test double (e2e/fake_apiserver.py) over TLS.
#include "kube/apiserver_client.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kube/testing/fake_apiserver_process.h"

namespace aaproxy {
namespace {

using testing::FakeApiServerProcess;
using testing::RecordedRequest;

constexpr char kConfigMapPath[] =
    "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication";
constexpr char kWatchPath[] =
    "/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name%3D"
    "extension-apiserver-authentication&watch=true";
constexpr char kTokenReviewPath[] = "/apis/authentication.k8s.io/v1/tokenreviews";

ApiServerClientOptions fastOptions() {
  ApiServerClientOptions options;
  options.timeout = absl::Seconds(5);
  options.backoff.initial = absl::Milliseconds(20);
  return options;
}

class ApiServerClientTest : public ::testing::Test {
 protected:
  void SetUp() override { SetUpServer({}); }

  void SetUpServer(const FakeApiServerProcess::Options& options) {
    base_ = event_base_new();
    absl::StatusOr<std::unique_ptr<FakeApiServerProcess>> server =
        FakeApiServerProcess::start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    clients_.clear();
    transports_.clear();
    if (base_ != nullptr) {
      event_base_free(base_);
    }
  }

  ApiServerClient& makeClient(std::shared_ptr<KubeClientConfig> config,
                              ApiServerClientOptions options = fastOptions(),
                              const KubeTransport::Options& transport_options = {}) {
    absl::StatusOr<std::shared_ptr<KubeTransport>> transport =
        KubeTransport::create(std::move(config), transport_options);
    EXPECT_TRUE(transport.ok()) << transport.status();
    transports_.push_back(*transport);
    clients_.push_back(std::make_unique<ApiServerClient>(base_, *transport, options));
    return *clients_.back();
  }

  // Runs the loop until `done` or `limit`; false on timeout.
  bool runUntil(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(20)) {
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

  absl::StatusOr<ApiResponse> send(ApiServerClient& client, std::string method, std::string path,
                                   std::string body = "", HeaderMap headers = {}) {
    std::optional<absl::StatusOr<ApiResponse>> got;
    client.request(std::move(method), std::move(path), std::move(body), std::move(headers),
                   [&got](absl::StatusOr<ApiResponse> r) { got = std::move(r); });
    EXPECT_FALSE(got.has_value()) << "callback ran inside request()";
    if (!runUntil([&] { return got.has_value(); })) {
      return absl::DeadlineExceededError("test: no callback");
    }
    return *std::move(got);
  }

  std::vector<RecordedRequest> recorded() {
    absl::StatusOr<std::vector<RecordedRequest>> r = server_->recorded();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<RecordedRequest>();
  }

  event_base* base_ = nullptr;
  std::unique_ptr<FakeApiServerProcess> server_;
  std::vector<std::shared_ptr<KubeTransport>> transports_;
  std::vector<std::unique_ptr<ApiServerClient>> clients_;
};

TEST_F(ApiServerClientTest, GetsAndReusesOneKeepAliveConnection) {
  server_->writeConfigMapData(R"({"requestheader-allowed-names": "[\"front-proxy-client\"]"})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(
        absl::StrContains(r->body, R"("requestheader-allowed-names": "[\"front-proxy-client\"]")"))
        << r->body;
    EXPECT_EQ(r->headers.get("Content-Type").value_or(""), "application/json");
  }
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(client.stats().idle_connections, 1u);
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 3u);
  for (const RecordedRequest& r : reqs) {
    EXPECT_EQ(r.connection, reqs[0].connection);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, kConfigMapPath);
    EXPECT_EQ(r.header("Host"), absl::StrCat("127.0.0.1:", server_->port()));
    EXPECT_EQ(r.header("Accept"), "application/json");
    EXPECT_EQ(r.header("Authorization"), "");
  }
}

TEST_F(ApiServerClientTest, NotFoundIsAResponseAndIsNotRetried) {
  ApiServerClient& client = makeClient(server_->clientConfig());
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(recorded().size(), 1u);
}

TEST_F(ApiServerClientTest, PostsBodyWithHeaders) {
  server_->writePolicy(R"({"tokens": {"tok": {"username": "alice", "groups": ["dev"]}}})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  HeaderMap headers;
  headers.add("X-Test", "1");
  const std::string body =
      R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"tok"}})";
  absl::StatusOr<ApiResponse> r = send(client, "POST", kTokenReviewPath, body, headers);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_TRUE(absl::StrContains(
      r->body,
      R"("status": {"authenticated": true, "user": {"username": "alice", "groups": ["dev"]}})"))
      << r->body;
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body, body);
  EXPECT_EQ(reqs[0].header("Content-Type"), "application/json");
  EXPECT_EQ(reqs[0].header("Content-Length"), std::to_string(body.size()));
  EXPECT_EQ(reqs[0].header("X-Test"), "1");
}

TEST_F(ApiServerClientTest, RetriesOn500ThenSucceeds) {
  server_->writeConfigMapData(R"({"k": "v"})");
  server_->writePolicy(R"({"failures": {"configmap": {"status": 500, "times": 2}}})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(recorded().size(), 3u);
  EXPECT_EQ(client.stats().retries, 2u);
  EXPECT_EQ(client.stats().connections_opened, 1u);  // error responses keep the connection
}

TEST_F(ApiServerClientTest, GivesUpAfterStepsWithGrowingBackoffAndReturnsLastResponse) {
  server_->writePolicy(R"({"failures": {"configmap": {"status": 503}}})");
  ApiServerClientOptions options = fastOptions();
  options.backoff = {.initial = absl::Milliseconds(100), .factor = 1.5, .jitter = 0, .steps = 4};
  ApiServerClient& client = makeClient(server_->clientConfig(), options);
  const absl::Time start = absl::Now();
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 503);
  EXPECT_TRUE(absl::StrContains(r->body, "injected failure"));
  EXPECT_EQ(recorded().size(), 4u);
  EXPECT_GE(elapsed, absl::Milliseconds(100 + 150 + 225));
  EXPECT_LT(elapsed, absl::Seconds(3));
}

TEST_F(ApiServerClientTest, TooManyRequestsHonoursRetryAfter) {
  server_->writePolicy(
      R"({"failures": {"tokenreviews": {"status": 429, "retry_after": 1, "times": 1}}})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  const absl::Time start = absl::Now();
  absl::StatusOr<ApiResponse> r =
      send(client, "POST", kTokenReviewPath, R"({"spec":{"token":"x"}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(recorded().size(), 2u);
}

TEST_F(ApiServerClientTest, TimeoutIsDeadlineExceededAndNotRetried) {
  server_->writePolicy(R"({"failures": {"configmap": {"slow_ms": 1500}}})");
  ApiServerClientOptions options = fastOptions();
  options.timeout = absl::Milliseconds(300);
  ApiServerClient& client = makeClient(server_->clientConfig(), options);
  const absl::Time start = absl::Now();
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(r.status().message(),
            absl::StrCat("kube-apiserver https://127.0.0.1:", server_->port(), ": GET ",
                         kConfigMapPath, ": no complete response within 300ms"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1200));
  EXPECT_EQ(recorded().size(), 1u);
}

TEST_F(ApiServerClientTest, ClosedConnectionIsRetried) {
  server_->writePolicy(R"({"failures": {"tokenreviews": {"down": true, "times": 1}}})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  absl::StatusOr<ApiResponse> r =
      send(client, "POST", kTokenReviewPath, R"({"spec":{"token":"x"}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[0].connection, reqs[1].connection);
  EXPECT_EQ(client.stats().connections_opened, 2u);
}

TEST_F(ApiServerClientTest, CloseAndResetWithoutAnAnswerSayWhichItWas) {
  // After the handshake: a close without close_notify (OpenSSL 3 calls it an unexpected eof) and
  // a reset, each on a fresh connection every attempt.
  ApiServerClientOptions options = fastOptions();
  options.backoff.steps = 2;
  ApiServerClient& client = makeClient(server_->clientConfig(), options);
  const std::string server = absl::StrCat("kube-apiserver https://127.0.0.1:", server_->port());
  server_->writePolicy(R"({"failures": {"tokenreviews": {"down": true}}})");
  absl::StatusOr<ApiResponse> r =
      send(client, "POST", kTokenReviewPath, R"({"spec":{"token":"x"}})");
  EXPECT_EQ(r.status(), absl::UnavailableError(absl::StrCat(
                            server, ": connection closed before the response (after 2 attempts)")));
  server_->writePolicy(R"({"failures": {"tokenreviews": {"reset": true}}})");
  r = send(client, "POST", kTokenReviewPath, R"({"spec":{"token":"x"}})");
  EXPECT_EQ(r.status(), absl::UnavailableError(absl::StrCat(
                            server, ": Connection reset by peer (after 2 attempts)")));
  EXPECT_EQ(recorded().size(), 4u);
}

TEST_F(ApiServerClientTest, DeadPooledConnectionIsReplacedAtOnce) {
  ApiServerClientOptions options = fastOptions();
  options.backoff.initial = absl::Seconds(5);  // a counted retry would take this long
  ApiServerClient& client = makeClient(server_->clientConfig(), options);
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  // The server drops the pooled connection without answering, as one that timed it out would.
  server_->writePolicy(R"({"failures": {"tokenreviews": {"down": true, "times": 1}}})");
  const absl::Time start = absl::Now();
  absl::StatusOr<ApiResponse> r =
      send(client, "POST", kTokenReviewPath, R"({"spec":{"token":"x"}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 201);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(client.stats().retries, 0u);
  EXPECT_EQ(client.stats().connections_opened, 2u);
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].connection, reqs[1].connection);
  EXPECT_NE(reqs[1].connection, reqs[2].connection);
}

TEST_F(ApiServerClientTest, ResolvesHostNames) {
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->host = "localhost";
  config->server = absl::StrCat("https://localhost:", server_->port());
  ApiServerClient& client = makeClient(config);
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].header("Host"), absl::StrCat("localhost:", server_->port()));
}

TEST_F(ApiServerClientTest, ConnectionRefusedIsRetriedThenUnavailable) {
  // A port nobody listens on: bind, read the port, close.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->port = ntohs(addr.sin_port);
  config->server = absl::StrCat("https://127.0.0.1:", config->port);
  ApiServerClientOptions options = fastOptions();
  options.backoff.steps = 3;
  ApiServerClient& client = makeClient(config, options);
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), absl::StrCat(config->server.insert(0, "kube-apiserver "),
                                               ": Connection refused (after 3 attempts)"))
      << r.status();
  EXPECT_EQ(client.stats().connections_opened, 3u);
}

TEST_F(ApiServerClientTest, ChunkedResponseIsReassembled) {
  server_->writeConfigMapData(R"({"k": "v"})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  absl::StatusOr<ApiResponse> r =
      send(client, "GET", absl::StrCat(kWatchPath, "&timeoutSeconds=1"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers.get("Transfer-Encoding").value_or(""), "chunked");
  EXPECT_TRUE(absl::StartsWith(r->body, R"({"type": "ADDED", "object": {"kind": "ConfigMap")"))
      << r->body;
  EXPECT_TRUE(absl::EndsWith(r->body, "\"data\": {\"k\": \"v\"}}}\n")) << r->body;
  // The connection is reusable after a chunked body.
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  EXPECT_EQ(client.stats().connections_opened, 1u);
}

TEST_F(ApiServerClientTest, StreamDeliversWatchEventsUntilCancelled) {
  server_->writeConfigMapData(R"({"k": "1"})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  LineBuffer lines;
  std::vector<std::string> events;
  int status = 0;
  bool ended = false;
  ApiServerClient::StreamId id = client.stream(
      "GET", kWatchPath, {},
      {.on_headers = [&](int s, const HeaderMap&) { status = s; },
       .on_data =
           [&](std::string_view data) {
             lines.append(data, [&](std::string_view line) { events.emplace_back(line); });
           },
       .on_end = [&](const absl::Status&) { ended = true; }});
  ASSERT_TRUE(runUntil([&] { return events.size() >= 1; }));
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(absl::StartsWith(events[0], R"({"type": "ADDED")")) << events[0];
  server_->writeConfigMapData(R"({"k": "2"})");
  ASSERT_TRUE(runUntil([&] { return events.size() >= 2; }));
  EXPECT_TRUE(absl::StartsWith(events[1], R"({"type": "MODIFIED")")) << events[1];
  EXPECT_TRUE(absl::StrContains(events[1], R"("data": {"k": "2"})")) << events[1];
  client.cancel(id);
  server_->writeConfigMapData(R"({"k": "3"})");
  runUntil([] { return false; }, absl::Milliseconds(300));
  EXPECT_EQ(events.size(), 2u);
  EXPECT_FALSE(ended);
  EXPECT_EQ(client.stats().active_requests, 0u);
  // A cancelled stream's connection is not reused.
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  EXPECT_EQ(client.stats().connections_opened, 2u);
}

TEST_F(ApiServerClientTest, StreamEndsWithOkWhenTheServerEndsIt) {
  ApiServerClient& client = makeClient(server_->clientConfig());
  std::optional<absl::Status> end;
  client.stream("GET", absl::StrCat(kWatchPath, "&timeoutSeconds=1"), {},
                {.on_end = [&](const absl::Status& s) { end = s; }});
  ASSERT_TRUE(runUntil([&] { return end.has_value(); }));
  EXPECT_TRUE(end->ok()) << *end;
}

TEST_F(ApiServerClientTest, ConcurrentRequestsShareThePool) {
  ApiServerClient& client = makeClient(server_->clientConfig());
  for (int round = 0; round < 2; ++round) {
    int done = 0;
    for (int i = 0; i < 4; ++i) {
      client.request("GET", kConfigMapPath, "", {}, [&](absl::StatusOr<ApiResponse> r) {
        EXPECT_TRUE(r.ok() && r->status == 404);
        ++done;
      });
    }
    ASSERT_TRUE(runUntil([&] { return done == 4; }));
  }
  EXPECT_EQ(client.stats().connections_opened, 4u);
  EXPECT_EQ(client.stats().idle_connections, 4u);
  EXPECT_EQ(recorded().size(), 8u);
}

TEST_F(ApiServerClientTest, StaticTokenAndCallerAuthorizationWins) {
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->bearer_token = "static-token";
  ApiServerClient& client = makeClient(config);
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  HeaderMap headers;
  headers.add("Authorization", "Bearer caller");
  ASSERT_TRUE(send(client, "GET", kConfigMapPath, "", headers).ok());
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].header("Authorization"), "Bearer static-token");
  EXPECT_EQ(reqs[1].header("Authorization"), "Bearer caller");
}

TEST_F(ApiServerClientTest, TokenFileIsReReadAfterTheRefreshPeriod) {
  const std::string token_file = server_->dir() + "/token";
  testing::writeFileAtomically(token_file, "token-1\n");
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->bearer_token = "token-1";
  config->bearer_token_file = token_file;
  absl::Time now = absl::Now();
  KubeTransport::Options transport_options;
  transport_options.token.now = [&now] { return now; };
  ApiServerClient& client = makeClient(config, fastOptions(), transport_options);
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  testing::writeFileAtomically(token_file, "token-2\n");
  now += absl::Seconds(49);  // still within refresh period (60 s) minus leeway (10 s)
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  now += absl::Seconds(2);
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  std::remove(token_file.c_str());  // an unreadable file keeps the last good token
  now += absl::Minutes(5);
  ASSERT_TRUE(send(client, "GET", kConfigMapPath).ok());
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(reqs[0].header("Authorization"), "Bearer token-1");
  EXPECT_EQ(reqs[1].header("Authorization"), "Bearer token-1");
  EXPECT_EQ(reqs[2].header("Authorization"), "Bearer token-2");
  EXPECT_EQ(reqs[3].header("Authorization"), "Bearer token-2");
}

TEST_F(ApiServerClientTest, UnauthorizedDropsTheCachedTokenAsClientGoDoes) {
  server_->writePolicy(R"({"api_tokens": ["token-2"]})");
  const std::string token_file = server_->dir() + "/token";
  testing::writeFileAtomically(token_file, "token-1");
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->bearer_token_file = token_file;  // no initial token: read on first use
  ApiServerClient& client = makeClient(config);
  // client-go only drops a token read before the rejected request started, so the 401 of the
  // request that first read it does not count; the next 401 does.
  std::vector<int> statuses;
  for (int i = 0; i < 3; ++i) {
    if (i == 1) {
      testing::writeFileAtomically(token_file, "token-2");
    }
    absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
    ASSERT_TRUE(r.ok()) << r.status();
    statuses.push_back(r->status);
  }
  EXPECT_EQ(statuses, (std::vector<int>{401, 401, 404}));
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].header("Authorization"), "Bearer token-1");
  EXPECT_EQ(reqs[1].header("Authorization"), "Bearer token-1");
  EXPECT_EQ(reqs[2].header("Authorization"), "Bearer token-2");
}

TEST_F(ApiServerClientTest, WrongCaFailsVerificationWithoutRetry) {
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->ca_pem = testing::makeCa("some-other-ca").cert_pem;
  ApiServerClient& client = makeClient(config);
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  // The reason after the colon is OpenSSL's verdict on the chain the server sent.
  EXPECT_TRUE(absl::StartsWith(
      r.status().message(),
      absl::StrCat("kube-apiserver ", config->server, ": tls: failed to verify certificate: ")))
      << r.status();
  EXPECT_EQ(client.stats().connections_opened, 1u);
  EXPECT_EQ(recorded().size(), 0u);
}

TEST_F(ApiServerClientTest, ServerNameMustMatchTheCertificate) {
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->tls_server_name = "kubernetes.default.svc";
  ApiServerClient& client = makeClient(config);
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(
      absl::EndsWith(r.status().message(), "failed to verify certificate: hostname mismatch"))
      << r.status();
  // `localhost` is in the certificate: SNI and host name verification by name succeed.
  config->tls_server_name = "localhost";
  ApiServerClient& named = makeClient(config);
  absl::StatusOr<ApiResponse> ok = send(named, "GET", kConfigMapPath);
  ASSERT_TRUE(ok.ok()) << ok.status();
}

TEST_F(ApiServerClientTest, InsecureSkipVerifyAcceptsAnyCertificate) {
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->ca_pem.clear();
  config->insecure_skip_tls_verify = true;
  ApiServerClient& client = makeClient(config);
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
}

TEST_F(ApiServerClientTest, PathPrefixAndInvalidHeaders) {
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->path_prefix = "/k8s";
  ApiServerClient& client = makeClient(config);
  ASSERT_TRUE(send(client, "GET", "/api").ok());
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].path, "/k8s/api");
  HeaderMap bad;
  bad.add("X-Evil", "a\r\nX-Injected: 1");
  absl::StatusOr<ApiResponse> r = send(client, "GET", "/api", "", bad);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(recorded().size(), 1u);
}

TEST_F(ApiServerClientTest, DestroyingTheClientDropsPendingCallbacks) {
  server_->writePolicy(R"({"failures": {"configmap": {"slow_ms": 300}}})");
  ApiServerClient& client = makeClient(server_->clientConfig());
  bool called = false;
  client.request("GET", kConfigMapPath, "", {},
                 [&](const absl::StatusOr<ApiResponse>&) { called = true; });
  runUntil([] { return false; }, absl::Milliseconds(50));
  clients_.clear();
  runUntil([] { return false; }, absl::Milliseconds(500));
  EXPECT_FALSE(called);
}

class ApiServerClientMutualTlsTest : public ApiServerClientTest {
 protected:
  void SetUp() override { SetUpServer({.require_client_cert = true}); }
};

TEST_F(ApiServerClientMutualTlsTest, PresentsTheClientCertificate) {
  std::shared_ptr<KubeClientConfig> config = server_->clientConfig();
  config->client_cert_pem = server_->clientCert().cert_pem;
  config->client_key_pem = server_->clientCert().key_pem;
  ApiServerClient& client = makeClient(config);
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].client_cert_cn, "aa-proxy");
}

TEST_F(ApiServerClientMutualTlsTest, WithoutClientCertificateTheHandshakeFails) {
  ApiServerClientOptions options = fastOptions();
  options.backoff.steps = 2;
  ApiServerClient& client = makeClient(server_->clientConfig(), options);
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(recorded().size(), 0u);
}

TEST_F(ApiServerClientMutualTlsTest, WorksFromAKubeconfigFile) {
  // Relative CA file and token file, inline client certificate: the usual shapes of kubeconfigs.
  testing::writeFileAtomically(server_->dir() + "/token", "kc-token\n");
  const std::string kubeconfig = absl::StrCat(
      "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
      "contexts:\n- name: test\n  context: {cluster: fake, user: proxy}\n"
      "clusters:\n- name: fake\n  cluster:\n    server: https://127.0.0.1:",
      server_->port(),
      "\n    certificate-authority: ca.crt\n"
      "users:\n- name: proxy\n  user:\n    client-certificate-data: ",
      absl::Base64Escape(server_->clientCert().cert_pem),
      "\n    client-key-data: ", absl::Base64Escape(server_->clientCert().key_pem),
      "\n    tokenFile: token\n");
  testing::writeFileAtomically(server_->dir() + "/kubeconfig", kubeconfig);
  absl::StatusOr<std::shared_ptr<const KubeClientConfig>> config =
      loadKubeconfig(server_->dir() + "/kubeconfig");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::shared_ptr<KubeTransport>> transport = KubeTransport::create(*config);
  ASSERT_TRUE(transport.ok()) << transport.status();
  ApiServerClient client(base_, *transport, fastOptions());
  absl::StatusOr<ApiResponse> r = send(client, "GET", kConfigMapPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  std::vector<RecordedRequest> reqs = recorded();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].client_cert_cn, "aa-proxy");
  EXPECT_EQ(reqs[0].header("Authorization"), "Bearer kc-token");
}

TEST(KubeTransportTest, RejectsBadPemMaterial) {
  auto config = std::make_shared<KubeClientConfig>();
  config->source = "kubeconfig /k (context c)";
  config->ca_pem = "not a pem";
  EXPECT_EQ(KubeTransport::create(config).status().message(),
            "kubeconfig /k (context c): certificate-authority: no PEM certificates found");
  config->ca_pem.clear();
  testing::TestCertificate ca = testing::makeCa("ca");
  testing::TestCertificate a = testing::makeLeaf(ca, {.common_name = "a", .client_auth = true});
  testing::TestCertificate b = testing::makeLeaf(ca, {.common_name = "b", .client_auth = true});
  config->client_cert_pem = a.cert_pem;
  config->client_key_pem = b.key_pem;
  absl::Status s = KubeTransport::create(config).status();
  EXPECT_TRUE(absl::StartsWith(
      s.message(), "kubeconfig /k (context c): client-key: does not match client-certificate"))
      << s;
}

TEST(RetriableStatusTest, MatchesWebhookRules) {
  HeaderMap none;
  HeaderMap retry_after;
  retry_after.add("Retry-After", "3");
  EXPECT_TRUE(isRetriableStatus(429, none));
  EXPECT_TRUE(isRetriableStatus(500, none));
  EXPECT_TRUE(isRetriableStatus(504, none));
  EXPECT_FALSE(isRetriableStatus(200, none));
  EXPECT_FALSE(isRetriableStatus(404, none));
  EXPECT_FALSE(isRetriableStatus(401, none));
  EXPECT_TRUE(isRetriableStatus(409, retry_after));
}

TEST(LineBufferTest, SplitsAcrossChunks) {
  LineBuffer buffer;
  std::vector<std::string> lines;
  auto collect = [&](std::string_view l) { lines.emplace_back(l); };
  buffer.append("{\"a\":1}\n{\"b\"", collect);
  buffer.append(":2}\r\n\n{\"c\":3}", collect);
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_EQ(buffer.pendingBytes(), 7u);
}

}  // namespace
}  // namespace aaproxy
