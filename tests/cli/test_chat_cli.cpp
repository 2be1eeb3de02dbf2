// `kto generate --adapter` and `kto chat` as a user runs them: greedy text with the unmerged
// adapter equals PEFT's (tests/fixtures/adapter_generate/expected.json), piped chat answers one
// line per turn with the history in the prompt (seen through `kto -v chat`), /reset and /system
// work, a model without a template gets one clear error, and on a pseudo-terminal the header,
// the "> " prompt and Ctrl-C at the prompt behave.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "util/error.h"
#include "util/files.h"

namespace kto {
namespace {

namespace fs = std::filesystem;

const nlohmann::json& expected() {
  static const nlohmann::json json = json_read_file(test::fixture("adapter_generate/expected.json"));
  return json;
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `kto <args>` with `input` on stdin.
test::CommandResult run_with_input(const std::string& args, const std::string& input) {
  const std::string path = test::temp_dir("chat-in") + "/stdin";
  std::ofstream(path) << input;
  return test::run_kto(args + " <" + path);
}

std::string adapter_flags() {
  return " --model " + test::fixture(expected()["model"]) + " --adapter " + test::fixture(expected()["adapter"]);
}

TEST(ChatCli, GenerateWithAdapterEqualsPeft) {
  for (const auto& row : expected()["greedy"]) {
    auto r = test::run_kto(str_cat("generate", adapter_flags(), " --prompt ", quote(row["prompt"]), " --greedy -n ",
                                   expected()["max_new_tokens"]));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, row["text_skip_special"].get<std::string>() + "\n") << row["prompt"];
  }
}

TEST(ChatCli, PipedFirstTurnWithAdapterEqualsPeft) {
  const auto& chat = expected()["chat"];
  auto r = run_with_input(str_cat("chat", adapter_flags(), " --greedy -n ", expected()["max_new_tokens"]),
                          chat["user"].get<std::string>() + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, chat["text_skip_special"].get<std::string>() + "\n");
}

// The text after "prompt for turn N:" in a `kto -v chat` log, up to the next debug line.
std::string logged_prompt(const std::string& err, int turn, size_t from = 0) {
  const std::string tag = str_cat("prompt for turn ", turn, ":\n");
  const size_t at = err.find(tag, from);
  if (at == std::string::npos) return {};
  const size_t begin = at + tag.size();
  return err.substr(begin, err.find("kto: debug:", begin) - begin);
}

TEST(ChatCli, ThirdTurnPromptHoldsTheFirstTwo) {
  auto r = run_with_input("-v chat --model " + test::fixture("models/qwen2") + " --greedy -n 3",
                          "first question\nsecond question\n\nthird question\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string prompt = logged_prompt(r.err, 3);
  ASSERT_FALSE(prompt.empty()) << r.err;
  EXPECT_EQ(prompt.rfind("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nfirst "
                         "question<|im_end|>\n<|im_start|>assistant\n", 0), 0u) << prompt;
  EXPECT_NE(prompt.find("<|im_start|>user\nsecond question<|im_end|>"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("<|im_start|>user\nthird question<|im_end|>\n<|im_start|>assistant\n"), std::string::npos);
}

TEST(ChatCli, ResetForgetsAndSystemSetsTheSystemMessage) {
  auto r = run_with_input("-v chat --model " + test::fixture("models/llama") + " --greedy -n 2 --system 'Be brief.'",
                          "alpha question\n/reset\nbeta question\n/system Speak French.\ngamma question\n/quit\n"
                          "never asked\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string first = logged_prompt(r.err, 1);
  EXPECT_NE(first.find("system<|end_header_id|>\n\nBe brief.<|eot_id|>"), std::string::npos) << first;
  const size_t after_reset = r.err.find("conversation cleared");
  ASSERT_NE(after_reset, std::string::npos) << r.err;
  const std::string beta = logged_prompt(r.err, 1, after_reset);
  EXPECT_EQ(beta.find("alpha"), std::string::npos) << beta;
  EXPECT_NE(beta.find("Be brief."), std::string::npos) << beta;
  const std::string gamma = logged_prompt(r.err, 1, r.err.find("system message set"));
  EXPECT_NE(gamma.find("system<|end_header_id|>\n\nSpeak French.<|eot_id|>"), std::string::npos) << gamma;
  EXPECT_EQ(gamma.find("beta"), std::string::npos) << gamma;
  EXPECT_EQ(r.err.find("never asked"), std::string::npos) << "/quit did not stop";
}

TEST(ChatCli, ModelWithoutTemplateSaysToUseGenerate) {
  const fs::path dir = test::temp_dir("chat-no-template");
  for (const auto& entry : fs::directory_iterator(test::fixture("models/llama"))) {
    if (entry.path().filename() != "chat_template.jinja") fs::create_symlink(entry.path(), dir / entry.path().filename());
  }
  auto r = run_with_input("chat --model " + dir.string(), "hello\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err.rfind("kto: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("kto generate"), std::string::npos) << r.err;
}

// Appends what `fd` prints to `seen` until `needle` shows up after byte `from`, the child hangs
// up, or `seconds` pass. True when the needle was seen.
bool read_until(int fd, std::string& seen, const std::string& needle, size_t from, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (seen.find(needle, from) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    seen.append(buf, static_cast<size_t>(n));
  }
  return true;
}

// The child's exit status, or -1 (after killing it) when it is still running after `seconds`.
int wait_for(pid_t pid, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::usleep(50000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return -1;
}

TEST(ChatCli, TerminalShowsHeaderAndPromptAndCtrlCAtThePromptQuits) {
  const std::string model = test::fixture("models/llama");
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0) << "forkpty failed";
  if (pid == 0) {
    ::execl(KTO_BINARY, "kto", "chat", "--model", model.c_str(), "--greedy", "-n", "4", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string seen;
  EXPECT_TRUE(read_until(master, seen, "> ", 0, 60)) << seen;
  EXPECT_NE(seen.find("kto chat: " + model), std::string::npos) << seen;
  EXPECT_NE(seen.find("template: "), std::string::npos) << seen;
  EXPECT_NE(seen.find("commands: /reset"), std::string::npos) << seen;
  const size_t before_answer = seen.size();
  ASSERT_EQ(::write(master, "hello\n", 6), 6);
  EXPECT_TRUE(read_until(master, seen, "\r\n> ", before_answer + 7, 60)) << seen;  // echo, answer, new prompt
  ASSERT_EQ(::write(master, "\x03", 1), 1);  // Ctrl-C at the prompt
  EXPECT_EQ(wait_for(pid, 30), 0) << seen;
  ::close(master);
}

}  // namespace
}  // namespace kto
