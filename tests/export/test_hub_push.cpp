// kto push against the stand-in Hub: the commit it records (NDJSON header / file / lfsFile
// lines), LFS uploads (basic and multipart) with verify, repository creation and reuse, the
// model card, a pull of what was pushed; and the token never appearing in anything a pull or a
// push prints or writes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "export/hub_hash.h"
#include "export/hub_http.h"
#include "export/hub_pull.h"
#include "export/hub_push.h"
#include "hub_server.h"
#include "test_hub_util.h"
#include "test_util.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace kto {
namespace {

void write_file(const std::string& p, const std::string& s) {
  fs::create_directories(fs::path(p).parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

// A training output folder as `kto train` leaves it.
std::string make_output_dir() {
  const std::string dir = test::temp_dir("hub-push");
  std::string weights;
  for (int i = 0; i < 5000; ++i) weights += static_cast<char>(i % 256);
  write_file(dir + "/adapter_model.safetensors", weights);
  write_file(dir + "/adapter_config.json",
             R"({"base_model_name_or_path": "kto-test/tiny", "peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], "use_rslora": false})");
  write_file(dir + "/train_config.yaml", "model_name_or_path: kto-test/tiny\ndataset_name: kto-test/feedback\nbeta: 0.1\nlearning_rate: 5e-06\n");
  write_file(dir + "/trainer_state.json",
             R"({"global_step": 20, "log_history": [{"step": 10, "loss": 0.69}, {"step": 20, "loss": 0.5, "rewards/margins": 0.25}]})");
  write_file(dir + "/checkpoint-20/trainer_state.json", "{}");
  return dir;
}

struct PushFixture : ::testing::Test {
  test::HubServer server;
  HubEnv env;
  void SetUp() override {
    env.endpoint = server.endpoint();
    env.cache_dir = test::temp_dir("hub-cache");
    env.token = "hf_writer";
    env.download_timeout_s = env.etag_timeout_s = 2;
    server.require_token("hf_writer");
  }
  HubPushResult push(const std::string& dir) {
    HubPushOptions o;
    o.dir = dir;
    o.repo.id = "kto-test/adapter";
    o.commit_message = "KTO adapter";
    return hub_push(o, env);
  }
};

TEST_F(PushFixture, CommitHasTheExpectedNdjsonLinesAndFiles) {
  KTO_REQUIRE_HUB_CLIENT();
  const std::string dir = make_output_dir();
  const HubPushResult r = push(dir);
  EXPECT_TRUE(r.card_written);
  EXPECT_EQ(r.n_lfs, 1);
  EXPECT_EQ(r.n_lfs_uploaded, 1);
  EXPECT_EQ(r.n_regular, 4);  // adapter_config, README, train_config, trainer_state (not checkpoint-20/: transformers' rule)
  ASSERT_EQ(server.commit_bodies().size(), 1u);
  std::istringstream lines(server.commit_bodies()[0]);
  std::vector<nlohmann::json> items;
  for (std::string line; std::getline(lines, line);) items.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(items.size(), 6u);
  EXPECT_EQ(items[0], nlohmann::json::parse(R"({"key": "header", "value": {"summary": "KTO adapter", "description": ""}})"));
  const std::string weights = test::read_file(dir + "/adapter_model.safetensors");
  const nlohmann::json lfs = {{"key", "lfsFile"},
                              {"value", {{"path", "adapter_model.safetensors"}, {"algo", "sha256"}, {"oid", sha256_hex(weights)}, {"size", weights.size()}}}};
  EXPECT_EQ(items[3], lfs);  // lines in path order: README.md, adapter_config.json, adapter_model.safetensors, …
  EXPECT_EQ(items[1]["key"], "file");
  EXPECT_EQ(items[1]["value"]["path"], "README.md");
  EXPECT_EQ(items[1]["value"]["encoding"], "base64");
  EXPECT_EQ(test::stub_base64_decode(items[1]["value"]["content"]), test::read_file(dir + "/README.md"));
  // The repository now holds exactly the folder but its checkpoints (plus the .gitattributes of its creation).
  const auto files = server.files_at("model", "kto-test/adapter", "main");
  EXPECT_EQ(files.size(), 6u);
  EXPECT_EQ(files.count("checkpoint-20/trainer_state.json"), 0u);
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().string().find("/checkpoint-20/") != std::string::npos) continue;
    EXPECT_EQ(files.at(fs::relative(e.path(), dir).generic_string()), test::read_file(e.path().string()));
  }
  const std::string card = test::read_file(dir + "/README.md");
  EXPECT_EQ(card.rfind("---\nbase_model: kto-test/tiny\nlibrary_name: peft\n", 0), 0u) << card;
  EXPECT_NE(card.find("datasets:\n- kto-test/feedback"), std::string::npos);
  EXPECT_NE(card.find("| beta | 0.1 |"), std::string::npos);
  EXPECT_NE(card.find("| rewards/margins | 0.25 |"), std::string::npos);
  // What was pushed pulls back byte for byte.
  HubPullOptions o;
  o.repo.id = "kto-test/adapter";
  const HubPullResult back = hub_pull(o, env);
  EXPECT_EQ(back.commit, r.commit_oid);
  EXPECT_EQ(test::read_file(back.snapshot_dir + "/adapter_model.safetensors"), weights);
}

TEST_F(PushFixture, MultipartUploadAndSecondPushToAnExistingRepo) {
  KTO_REQUIRE_HUB_CLIENT();
  server.set_multipart_chunk(2048);
  const std::string dir = make_output_dir();
  EXPECT_EQ(push(dir).n_lfs_uploaded, 1);
  int parts = 0;
  for (const auto& q : server.requests()) parts += q.method == "PUT" && q.target.rfind("/lfs-part/", 0) == 0;
  EXPECT_EQ(parts, 3);  // 5000 bytes in 2048-byte parts
  write_file(dir + "/notes.txt", "second\n");
  const HubPushResult second = push(dir);  // the repo exists (409 is fine), the object is stored
  EXPECT_EQ(second.n_lfs_uploaded, 0);
  EXPECT_FALSE(second.card_written);
  EXPECT_EQ(server.files_at("model", "kto-test/adapter", "main").at("notes.txt"), "second\n");
}

TEST_F(PushFixture, PushWithoutATokenSaysWhatToDo) {
  KTO_REQUIRE_HUB_CLIENT();
  env.token.clear();
  try {
    push(make_output_dir());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("HF_TOKEN"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(server.requests().empty());
}

// Redirects stderr (logs, progress bars) into a file while alive.
class StderrCapture {
 public:
  explicit StderrCapture(const std::string& path) : path_(path) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~StderrCapture() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
  }

 private:
  std::string path_;
  int saved_;
};

TEST_F(PushFixture, TokenNeverAppearsInOutputOrFiles) {
  KTO_REQUIRE_HUB_CLIENT();
  const std::string secret = "hf_SeCrEtToKeN0123456789abcdef";
  server.require_token(secret);
  setenv("HF_TOKEN", secret.c_str(), 1);
  env = hub_env_from_environment();  // the token as a user gives it
  env.endpoint = server.endpoint();
  env.cache_dir = test::temp_dir("hub-cache");
  env.download_timeout_s = env.etag_timeout_s = 2;
  unsetenv("HF_TOKEN");
  ASSERT_EQ(env.token, secret);
  server.add_commit("model", "kto-test/tiny", test::stub_tiny_model_files());
  server.cut_next("model.safetensors");
  server.corrupt_next("config.json");
  const std::string dir = make_output_dir();
  const std::string log = test::temp_dir("hub-log") + "/stderr.txt";
  std::vector<std::string> messages;
  {
    StderrCapture capture(log);
    const LogLevel level = log_level();
    log_set_level(LogLevel::Debug);
    HubPullOptions o;
    o.repo.id = "kto-test/tiny";
    hub_pull(o, env);
    push(dir);
    for (const char* id : {"kto-test/missing", "kto-test/tiny"}) {  // error paths: 404, then a wrong token (401)
      try {
        o.repo.id = id;
        o.revision = "no-such-branch";
        hub_pull(o, env);
      } catch (const Error& e) {
        messages.push_back(e.what());
      }
    }
    server.require_token(secret + "x");
    try {
      push(dir);
    } catch (const Error& e) {
      messages.push_back(e.what());
    }
    log_set_level(level);
  }
  EXPECT_EQ(messages.size(), 3u);
  std::string everything = test::read_file(log);
  for (const std::string& m : messages) everything += m + "\n";
  for (const std::string& root : {env.cache_dir, dir}) {
    for (const auto& e : fs::recursive_directory_iterator(root)) {
      everything += e.path().string() + "\n";
      if (e.is_symlink()) everything += fs::read_symlink(e.path()).string() + "\n";
      else if (e.is_regular_file()) everything += test::read_file(e.path().string());
    }
  }
  EXPECT_GT(everything.size(), 5000u);
  EXPECT_EQ(everything.find(secret), std::string::npos);
  EXPECT_EQ(everything.find("SeCrEt"), std::string::npos);
  EXPECT_NE(test::read_file(log).find("resuming"), std::string::npos);  // the output was captured
}

}  // namespace
}  // namespace kto
