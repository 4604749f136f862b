// klog-compatible text logging: `I1123 10:39:16.123456   12345 file.cc:42] message`, with -v levels.
#pragma once

#include <atomic>
#include <sstream>

namespace aaproxy {

// Set once from --v at start-up; read on every VLOG.
inline std::atomic<int> g_log_verbosity{0};
// --logging-format=json: one JSON object per line instead of klog's text header.
inline std::atomic<bool> g_log_json{false};

class LogMessage {
 public:
  LogMessage(char severity, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  char severity_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

}  // namespace aaproxy

#define AA_LOG(sev) ::aaproxy::LogMessage(#sev[0], __FILE__, __LINE__).stream()
#define AA_VLOG(level)                                                              \
  if (::aaproxy::g_log_verbosity.load(std::memory_order_relaxed) < (level)) {      \
  } else                                                                            \
    ::aaproxy::LogMessage('I', __FILE__, __LINE__).stream()
