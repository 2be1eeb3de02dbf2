// `kto chat`: an interactive conversation with a model through its chat template (infer/chat.h).
// On a terminal: a header, a "> " prompt, streamed answers, Ctrl-C stops an answer and Ctrl-C
// or Ctrl-D at the prompt quits. Piped: one user turn per input line, each answer on stdout
// followed by a newline (scriptable). Commands: /reset, /system TEXT, /help, /quit.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cli/app.h"
#include "export/hub_ensure.h"
#include "cli/sampling_flags.h"
#include "infer/chat.h"
#include "util/error.h"
#include "util/log.h"

namespace kto::cli {

namespace {
// SIGINT sets g_interrupted and writes a byte to the wake pipe, so that a read waiting in poll()
// sees it even when the signal lands just before the wait begins (the self-pipe pattern).
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);  // lock-free atomics are signal-safe
std::atomic<int> g_wake_fd{-1};

extern "C" void on_sigint(int) {
  const int saved_errno = errno;
  g_interrupted.store(true);
  const int fd = g_wake_fd.load();
  if (fd >= 0) (void)!::write(fd, "!", 1);
  errno = saved_errno;
}

enum class ReadResult { Line, End, Interrupted };

// Line input from fd 0 that Ctrl-C interrupts; routes SIGINT to g_interrupted while alive.
class InterruptibleInput {
 public:
  InterruptibleInput() {
    if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) fail(ErrorKind::Io, "cannot create a pipe: ", std::strerror(errno));
    g_wake_fd.store(wake_[1]);
    struct sigaction action {};
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &previous_);
  }
  ~InterruptibleInput() {
    ::sigaction(SIGINT, &previous_, nullptr);
    g_wake_fd.store(-1);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  InterruptibleInput(const InterruptibleInput&) = delete;
  InterruptibleInput& operator=(const InterruptibleInput&) = delete;

  // Forgets a Ctrl-C that has been dealt with (one that stopped an answer).
  void clear_interrupt() {
    char drain[64];
    while (::read(wake_[0], drain, sizeof drain) > 0) {
    }
    g_interrupted.store(false);
  }

  // The next line without its newline (a last line without one counts).
  ReadResult read_line(std::string& line) {
    line.clear();
    while (true) {
      const size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return ReadResult::Line;
      }
      if (at_end_) {
        line = std::move(buffer_);
        buffer_.clear();
        return line.empty() ? ReadResult::End : ReadResult::Line;
      }
      if (!wait_for_input()) return ReadResult::Interrupted;
      char chunk[4096];
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n > 0) buffer_.append(chunk, static_cast<size_t>(n));
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) at_end_ = true;
    }
  }

 private:
  // Blocks until stdin has data (or its end) — true — or Ctrl-C is pressed — false.
  bool wait_for_input() {
    while (!g_interrupted.load()) {
      pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return true;  // let read() report the problem
      }
      if (fds[1].revents) return false;
      if (fds[0].revents) return true;
    }
    return false;
  }

  int wake_[2] = {-1, -1};
  struct sigaction previous_ {};
  std::string buffer_;
  bool at_end_ = false;
};

struct ChatArgs {
  std::string device = "auto";
  std::string model, adapter, system;
  SamplingFlags sampling;
};

enum class Mode { Terminal, Piped };

void print(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

const char* const kHelp =
    "/reset        forget the conversation (the system message stays)\n"
    "/system TEXT  set the system message (/system alone removes it) and start over\n"
    "/help         this list\n"
    "/quit         leave (also Ctrl-D, or Ctrl-C at the prompt)\n"
    "Ctrl-C during an answer stops the answer.\n";

enum class Command { Continue, Quit };

Command run_command(const std::string& line, ChatSession& session) {
  const size_t space = line.find(' ');
  const std::string name = line.substr(0, space);
  const size_t text_at = space == std::string::npos ? line.size() : line.find_first_not_of(' ', space);
  const std::string text = text_at == std::string::npos ? "" : line.substr(text_at);
  if (name == "/quit" || name == "/exit") return Command::Quit;
  if (name == "/help") {
    print(kHelp);
  } else if (name == "/reset") {
    session.reset();
    log_info("conversation cleared");
  } else if (name == "/system") {
    session.set_system(text);
    session.reset();
    log_info(text.empty() ? "system message removed" : "system message set", "; conversation cleared");
  } else {
    log_warn("unknown command ", name, "; /help lists the commands");
  }
  return Command::Continue;
}

// One user turn: streams the answer and ends it with a newline. Errors end the program when
// piped (scripts see the exit code); on a terminal they are printed and the session goes on.
void answer(ChatSession& session, const std::string& user, const GenerateOptions& options, Mode mode,
            InterruptibleInput& input) {
  if (log_level() >= LogLevel::Debug) {
    log_debug("prompt for turn ", session.turns().size() / 2 + 1, ":\n", session.prompt_for(user));
  }
  GenerateOptions turn = options;
  turn.cancel = &g_interrupted;
  try {
    const GenerateResult result = session.send(user, turn, print);
    print("\n");
    if (result.stop == StopReason::Cancelled) log_info("answer stopped");
    const double rate = result.decode_seconds > 0 ? static_cast<double>(result.tokens.size()) / result.decode_seconds : 0;
    log_debug(result.tokens.size(), " new tokens (", stop_reason_name(result.stop), "), ", static_cast<int64_t>(rate),
              " tokens/s");
  } catch (const Error& e) {
    if (mode == Mode::Piped) throw;
    std::fprintf(stderr, "kto: %s\n", e.what());
  }
  input.clear_interrupt();
}

void print_header(const ChatArgs& args, const InferenceModel& loaded, const ChatSession& session) {
  std::string header = "kto chat: " + loaded.dir;
  if (!args.adapter.empty()) header += " + adapter " + args.adapter;
  header += "\ntemplate: " + session.chat_template().origin();
  if (!session.system().empty()) header += "\nsystem: " + session.system();
  header += "\ncommands: /reset /system TEXT /help /quit; Ctrl-C stops an answer, Ctrl-D quits\n";
  print(header);
}

void run_chat(const ChatArgs& args, const CLI::App& cmd) {
  hub_ensure_local(args.model, HubNeed::Model);  // hub ids not in the cache are pulled first
  hub_ensure_local(args.adapter, HubNeed::Adapter);
  const InferenceModel loaded = InferenceModel::load(args.model, args.adapter, device_resolve(args.device));
  ChatSession session(loaded);
  session.set_system(args.system);
  const GenerateOptions options = sampling_flags_apply(args.sampling, cmd, loaded.generate_options());
  const Mode mode = ::isatty(STDIN_FILENO) ? Mode::Terminal : Mode::Piped;
  InterruptibleInput input;
  if (mode == Mode::Terminal) print_header(args, loaded, session);
  std::string line;
  while (true) {
    if (mode == Mode::Terminal) print("> ");
    const ReadResult got = input.read_line(line);
    if (got != ReadResult::Line) {
      if (mode == Mode::Terminal) print("\n");
      return;  // Ctrl-D or Ctrl-C at the prompt, or the end of the piped input
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line.front() == '/') {
      if (run_command(line, session) == Command::Quit) return;
      continue;
    }
    answer(session, line, options, mode, input);
  }
}
}  // namespace

void add_chat_verb(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  auto* cmd = app.add_subcommand("chat", "Talk with a model through its chat template (interactive, or one turn per input line)");
  cmd->add_option("-m,--model", args->model, "Model directory or hub id (HF cache)")->required();
  cmd->add_option("-a,--adapter", args->adapter, "Apply this PEFT LoRA adapter (directory or hub id) without merging");
  cmd->add_option("--device", args->device, "auto (the GPU when present), cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("-s,--system", args->system, "System message for the conversation");
  sampling_flags_add(*cmd, args->sampling);
  cmd->callback([args, cmd] { run_chat(*args, *cmd); });
}

}  // namespace kto::cli
