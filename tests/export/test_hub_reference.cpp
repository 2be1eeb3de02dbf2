// The cache kto pull writes, compared with the one huggingface_hub's snapshot_download wrote for
// the same stand-in repository (tests/fixtures/hub/snapshot_download_tree.json, made by
// tools/reference/check_hub_cache.py): every folder, file (size, sha256) and link target alike.
// The disabled HubServe test is the server that script talks to (it runs this binary).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "export/hub_hash.h"
#include "export/hub_http.h"
#include "export/hub_pull.h"
#include "hub_server.h"
#include "test_hub_util.h"
#include "test_util.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace kto {
namespace {

// The cache as a sorted list of {path, type, size, sha256 | target}, as the script lists it.
nlohmann::json list_cache(const std::string& root) {
  std::vector<std::string> paths;  // sorted as strings, as Python's sorted() of posix paths
  for (const auto& e : fs::recursive_directory_iterator(root)) paths.push_back(e.path().lexically_relative(root).generic_string());
  std::sort(paths.begin(), paths.end());
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& rel : paths) {
    const fs::path p = fs::path(root) / rel;
    nlohmann::json e = {{"path", rel}};
    if (fs::is_symlink(p)) {
      e["type"] = "link", e["target"] = fs::read_symlink(p).string();
    } else if (fs::is_directory(p)) {
      e["type"] = "dir";
    } else {
      std::ifstream in(p, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), {});
      e["type"] = "file", e["size"] = bytes.size(), e["sha256"] = sha256_hex(bytes);
    }
    out.push_back(e);
  }
  return out;
}

TEST(HubReference, CacheEqualsWhatSnapshotDownloadWrote) {
  KTO_REQUIRE_HUB_CLIENT();
  const std::string fixture = test::fixture("hub/snapshot_download_tree.json");
  ASSERT_TRUE(file_exists(fixture)) << "run tools/reference/check_hub_cache.py --write-fixture";
  const nlohmann::json expected = json_read_file(fixture);
  test::HubServer server;
  server.add_commit("model", "kto-test/tiny", test::stub_tiny_model_files());
  HubEnv env;
  env.endpoint = server.endpoint();
  env.cache_dir = test::temp_dir("hub-ref");
  HubPullOptions o;
  o.repo.id = "kto-test/tiny";
  hub_pull(o, env);
  const nlohmann::json ours = list_cache(env.cache_dir);
  const nlohmann::json& theirs = expected["tree"];
  auto paths = [](const nlohmann::json& list) {
    std::string s;
    for (const nlohmann::json& e : list) s += e["path"].get<std::string>() + "\n";
    return s;
  };
  ASSERT_EQ(paths(ours), paths(theirs));
  for (size_t i = 0; i < ours.size(); ++i) EXPECT_EQ(ours[i].dump(), theirs[i].dump()) << "entry " << i;
}

// Not a test: serves the stand-in Hub for tools/reference/check_hub_cache.py until stdin closes.
TEST(HubServe, DISABLED_ForReference) {
  test::HubServer server;
  server.add_commit("model", "kto-test/tiny", test::stub_tiny_model_files());
  if (const char* dir = std::getenv("KTO_HUB_SERVE_DIR")) {  // also a local folder, as model kto-test/served
    std::vector<test::StubFile> files;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      const std::string rel = e.path().lexically_relative(dir).generic_string();
      files.push_back({rel, std::string((std::istreambuf_iterator<char>(in)), {}), e.path().extension() == ".safetensors"});
    }
    server.add_commit("model", "kto-test/served", files);
  }
  std::printf("KTO_HUB_ENDPOINT=%s\n", server.endpoint().c_str());
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
}

}  // namespace
}  // namespace kto
