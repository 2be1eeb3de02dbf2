// stderr logger; thread-safe by writing each line with a single fwrite.
#include "util/log.h"

#include <atomic>
#include <cstdio>

namespace kto {

static std::atomic<LogLevel> g_level{LogLevel::Info};

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_write(LogLevel level, const std::string& message) {
  const char* tag = level == LogLevel::Warn ? "kto: warning: " : level == LogLevel::Debug ? "kto: debug: " : "kto: ";
  std::string line = tag + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace kto
