// `kto pull` and `kto push` as a user runs them, against the stand-in Hub, with HF_TOKEN set:
// what they print, and the token appearing nowhere — not in stdout, stderr, error messages,
// the cache or the pushed folder (including a resumed download, a corrupt transfer and errors).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "hub_server.h"
#include "test_hub_util.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace kto {
namespace {

// Every byte a run left: outputs, then every path, link target and file under the roots.
std::string everything(const std::vector<test::CommandResult>& runs, const std::vector<std::string>& roots) {
  std::string all;
  for (const auto& r : runs) all += r.out + r.err;
  for (const std::string& root : roots) {
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      all += e.path().string() + "\n";
      if (e.is_symlink()) all += fs::read_symlink(e.path()).string() + "\n";
      else if (e.is_regular_file()) all += test::read_file(e.path().string());
    }
  }
  return all;
}

TEST(HubCli, PullAndPushNeverShowTheToken) {
  KTO_REQUIRE_HUB_CLIENT();
  const std::string secret = "hf_CliSecretToken0123456789";
  test::HubServer server;
  server.require_token(secret);
  server.add_commit("model", "kto-test/tiny", test::stub_tiny_model_files());
  server.cut_next("model.safetensors");
  server.corrupt_next("config.json");
  const std::string cache = test::temp_dir("hub-cli-cache"), out = test::temp_dir("hub-cli-out");
  { std::ofstream(out + "/adapter_config.json") << R"({"base_model_name_or_path": "kto-test/tiny", "r": 4})"; }
  { std::ofstream(out + "/adapter_model.safetensors", std::ios::binary) << std::string(3000, '\x01'); }
  setenv("HF_ENDPOINT", server.endpoint().c_str(), 1);
  setenv("HF_HUB_CACHE", cache.c_str(), 1);
  setenv("HF_TOKEN", secret.c_str(), 1);
  unsetenv("HF_HUB_OFFLINE");
  std::vector<test::CommandResult> runs;
  runs.push_back(test::run_kto("-v pull kto-test/tiny"));
  EXPECT_EQ(runs.back().exit_code, 0) << runs.back().err;
  EXPECT_EQ(runs.back().out.rfind(cache + "/models--kto-test--tiny/snapshots/", 0), 0u) << runs.back().out;  // the snapshot dir
  EXPECT_NE(runs.back().err.find("resuming"), std::string::npos) << runs.back().err;
  runs.push_back(test::run_kto("-v push " + out + " kto-test/pushed --private"));
  EXPECT_EQ(runs.back().exit_code, 0) << runs.back().err;
  EXPECT_EQ(server.files_at("model", "kto-test/pushed", "main").count("adapter_model.safetensors"), 1u);
  runs.push_back(test::run_kto("pull kto-test/missing"));
  EXPECT_NE(runs.back().exit_code, 0);
  EXPECT_NE(runs.back().err.find("HTTP 404"), std::string::npos) << runs.back().err;
  server.require_token(secret + "-rotated");  // the token is now wrong: 401s
  runs.push_back(test::run_kto("pull kto-test/tiny --revision other"));
  EXPECT_NE(runs.back().err.find("HTTP 401"), std::string::npos) << runs.back().err;
  runs.push_back(test::run_kto("push " + out + " kto-test/pushed"));
  EXPECT_NE(runs.back().exit_code, 0);
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_HUB_CACHE");
  unsetenv("HF_TOKEN");
  const std::string all = everything(runs, {cache, out});
  EXPECT_GT(all.size(), 3000u);
  EXPECT_EQ(all.find(secret), std::string::npos);
  EXPECT_EQ(all.find("CliSecret"), std::string::npos);
}

// `kto push --gguf`: a model folder goes up with its GGUF file and Ollama Modelfile.
TEST(HubCli, PushWithGgufUploadsTheGgufAndModelfile) {
  KTO_REQUIRE_HUB_CLIENT();
  test::HubServer server;
  server.require_token("hf_PushGguf0123456789");
  const std::string dir = test::temp_dir("hub-cli-gguf");
  fs::copy(test::fixture("models/llama"), dir, fs::copy_options::recursive);
  setenv("HF_ENDPOINT", server.endpoint().c_str(), 1);
  setenv("HF_TOKEN", "hf_PushGguf0123456789", 1);
  unsetenv("HF_HUB_OFFLINE");
  const test::CommandResult r = test::run_kto("push " + dir + " kto-test/tiny-gguf --gguf q8_0,f16");
  unsetenv("HF_ENDPOINT");
  unsetenv("HF_TOKEN");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto files = server.files_at("model", "kto-test/tiny-gguf", "main");
  EXPECT_EQ(files.count("tiny-gguf-Q8_0.gguf"), 1u);
  EXPECT_EQ(files.count("tiny-gguf-F16.gguf"), 1u);
  EXPECT_EQ(files.count("Modelfile"), 1u);
  EXPECT_EQ(files.count("config.json"), 1u);
  EXPECT_NE(test::read_file(dir + "/tiny-gguf-Q8_0.gguf").rfind("GGUF", 0), std::string::npos);
  const test::CommandResult bad = test::run_kto("push " + dir + " kto-test/x --gguf q3_z");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--gguf q3_z"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace kto
