// A minimal chat program over kto.cpp's public API (include/kto/kto.h only): loads a model and
// an optional LoRA adapter, then answers one line of input per turn, streaming the reply and
// keeping the history. Usage: kto_example_chat MODEL [ADAPTER]  (e.g. tests/fixtures/models/llama)
#include <kto/kto.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s MODEL [ADAPTER]\n", argv[0]);
    return 2;
  }
  try {
    const kto::LoadedModel model = kto::load(argv[1], argc == 3 ? argv[2] : "");
    if (!model.has_chat_template()) {
      std::fprintf(stderr, "%s has no chat template; continuing plain text instead\n", argv[1]);
    }

    kto::GenerateParams params;
    params.max_new_tokens = 64;
    params.temperature = 0.0;  // greedy; leave unset for the model's generation_config.json

    const auto stream = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;  // false would stop the answer here
    };

    std::vector<kto::Message> history = {{"system", "You are a helpful assistant."}};
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      std::string reply;
      if (model.has_chat_template()) {
        history.push_back({"user", line});
        reply = kto::chat(model, history, params, stream);
        history.push_back({"assistant", reply});
      } else {
        reply = kto::generate(model, line, params, stream);
      }
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
