// Helpers of the Hub client tests (test_hub_*.cpp).
#pragma once

#include <fstream>
#include <iterator>
#include <string>

#include "export/hub_http.h"

// Skips a test in builds without the Hub client (no libcurl): the verbs then only say so.
#define KTO_REQUIRE_HUB_CLIENT() \
  if (!::kto::hub_client_available()) GTEST_SKIP() << "built without the Hub client (libcurl)"

namespace kto::test {

inline std::string read_file(const std::string& path) {  // "" when missing
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace kto::test
