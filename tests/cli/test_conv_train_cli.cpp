// Conversational data through the whole `kto train` path (chat template → TRL tokenisation →
// KTO steps → adapter), and `kto chat` holding a multi-turn conversation on a pseudo-terminal.
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

TEST(ConvTrainCli, ConversationalDatasetTrains) {
  for (const char* data : {"prompt_completion.jsonl", "conversations.jsonl", "messages.jsonl"}) {
    const std::string dir = test::temp_dir("convtrain");
    std::ofstream(dir + "/train.yaml") << "model_name_or_path: " << test::fixture("models/qwen2") << "\ndataset_name: "
                                       << test::fixture(std::string("conv/") + data) << "\noutput_dir: " << dir
                                       << "/out\nmax_steps: 2\nper_device_train_batch_size: 2\nlogging_steps: 1\nsave_steps: 0\n";
    auto r = test::run_kto("-q train " + dir + "/train.yaml");
    ASSERT_EQ(r.exit_code, 0) << data << ": " << r.err;
    nlohmann::json logs = json_read_file(dir + "/out/trainer_state.json")["log_history"];
    ASSERT_EQ(logs.size(), 2u) << data;
    EXPECT_TRUE(std::isfinite(logs[1]["loss"].get<double>())) << data;
    EXPECT_TRUE(std::filesystem::exists(dir + "/out/adapter_model.safetensors")) << data;
  }
}

// Reads from the pty until `needle` appears after byte `from`, or `seconds` pass.
bool read_until(int fd, std::string& seen, const std::string& needle, size_t from, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (seen.find(needle, from) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    fd_set set;
    FD_ZERO(&set);
    FD_SET(fd, &set);
    timeval tv{0, 100000};
    if (::select(fd + 1, &set, nullptr, nullptr, &tv) > 0) {
      char buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return false;
      seen.append(buf, static_cast<size_t>(n));
    }
  }
  return true;
}

TEST(ConvTrainCli, ChatOnATerminalHoldsAMultiTurnConversation) {
  const std::string model = test::fixture("models/qwen2");
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::execl(KTO_BINARY, KTO_BINARY, "-v", "chat", "--model", model.c_str(), "--greedy", "-n", "4", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string seen;
  ASSERT_TRUE(read_until(master, seen, "> ", 0, 60)) << seen;
  // Two turns: the prompt rendered for the second holds the first exchange.
  for (const char* turn : {"first question\n", "second question\n"}) {
    const size_t before = seen.size();
    ASSERT_EQ(::write(master, turn, std::strlen(turn)), static_cast<ssize_t>(std::strlen(turn)));
    ASSERT_TRUE(read_until(master, seen, "\n> ", before + std::strlen(turn), 60)) << seen;
  }
  const size_t turn2 = seen.rfind("prompt for turn 2");
  ASSERT_NE(turn2, std::string::npos) << seen;
  EXPECT_NE(seen.find("first question<|im_end|>", turn2), std::string::npos) << seen;
  // /reset forgets it: the next prompt is turn 1 again, without the earlier question.
  const size_t before_reset = seen.size();
  ASSERT_EQ(::write(master, "/reset\n", 7), 7);
  ASSERT_TRUE(read_until(master, seen, "> ", before_reset + 7, 60)) << seen;
  const size_t before_third = seen.size();
  ASSERT_EQ(::write(master, "third question\n", 15), 15);
  ASSERT_TRUE(read_until(master, seen, "\n> ", before_third + 15, 60)) << seen;
  const std::string after = seen.substr(before_third);
  EXPECT_NE(after.find("prompt for turn 1"), std::string::npos) << after;
  EXPECT_EQ(after.find("first question"), std::string::npos) << after;
  ASSERT_EQ(::write(master, "/quit\n", 6), 6);
  int status = 0;
  for (int i = 0; i < 600 && ::waitpid(pid, &status, WNOHANG) != pid; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << seen;
  ::close(master);
}

}  // namespace
}  // namespace kto
