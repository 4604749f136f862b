// The per-request routing step on its own (google-benchmark): the admission path's route lookup
// and the ambiguous-segment check for bench/run.sh's request, with the one-route table aa-proxy
// builds without `routes:` and with run.sh's 20-route table (19 longer decoys first).
//
//   bazel run -c opt //bench:route_match_bench
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "config/flags.h"
#include "config/route_table.h"

namespace aaproxy {
namespace {

constexpr char kPath[] = "/apis/sample-api-server/v1alpha1/namespaces/default/samples";

RouteTable makeTable(int decoys) {
  std::vector<RouteConfig> routes;
  for (int i = 1; i <= decoys; ++i) {
    char path[96];
    std::snprintf(path, sizeof(path), "/apis/decoy-%02d.sample-api-server.example.com/v1alpha1", i);
    routes.push_back(RouteConfig{.path = path});
  }
  routes.push_back(RouteConfig{.path = decoys == 0 ? "/" : "/apis/sample-api-server"});
  return RouteTable(std::move(routes));
}

void routeLookup(benchmark::State& state) {
  RouteTable table = makeTable(static_cast<int>(state.range(0)));
  std::string path = kPath;
  for (auto _ : state) {
    bool ambiguous = hasAmbiguousSegments(path);
    const RouteConfig* route = table.match(path);
    benchmark::DoNotOptimize(ambiguous);
    benchmark::DoNotOptimize(route);
  }
  state.SetLabel(state.range(0) == 0 ? "1 route (\"/\")" : "20 routes (19 decoys first)");
}
BENCHMARK(routeLookup)->Arg(0)->Arg(19);

}  // namespace
}  // namespace aaproxy

BENCHMARK_MAIN();
