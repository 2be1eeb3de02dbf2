// Logging to stderr: "kto: warning: …" style lines, a global verbosity, and a warn-once helper.
#pragma once

#include <string>

#include "util/error.h"

namespace kto {

enum class LogLevel { Quiet = 0, Warn = 1, Info = 2, Debug = 3 };

void log_set_level(LogLevel level);
LogLevel log_level();
void log_write(LogLevel level, const std::string& message);

template <typename... Args>
void log_info(Args&&... args) { if (log_level() >= LogLevel::Info) log_write(LogLevel::Info, str_cat(std::forward<Args>(args)...)); }
template <typename... Args>
void log_warn(Args&&... args) { if (log_level() >= LogLevel::Warn) log_write(LogLevel::Warn, str_cat(std::forward<Args>(args)...)); }
template <typename... Args>
void log_debug(Args&&... args) { if (log_level() >= LogLevel::Debug) log_write(LogLevel::Debug, str_cat(std::forward<Args>(args)...)); }

}  // namespace kto
