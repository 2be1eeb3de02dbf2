// The Ollama Modelfile written next to every exported GGUF (ollama docs/modelfile.md): FROM the
// file, a TEMPLATE in Go-template syntax derived from the Hugging Face chat template for the
// families Ollama's own templates cover (ChatML, Llama-3, Mistral [INST]) and PARAMETER stop
// for their end tokens. Without a recognisable template it says so in the file and in the log.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "export/gguf_tokenizer.h"

namespace kto {

struct ModelfileTemplate {
  std::string family;              // "chatml", "llama3", "mistral"
  std::string go_template;         // the TEMPLATE body
  std::vector<std::string> stops;  // PARAMETER stop values
};

// The Ollama template for a Jinja chat template, or nullopt when its family is not recognised.
// `eos_token` is the text of the end-of-sequence token (used by the Mistral family).
std::optional<ModelfileTemplate> modelfile_template(const std::string& chat_template, const std::string& eos_token);

// The Modelfile text for `gguf_file` (a name relative to the Modelfile's directory).
std::string modelfile_text(const std::string& gguf_file, const std::string& chat_template,
                           const std::vector<std::string>& eos_tokens);

// Writes DIR(gguf_path)/Modelfile for the exported model. Throws kto::Error(Io).
void modelfile_write(const std::string& gguf_path, const GgufTokenizerInfo& tokenizer);

}  // namespace kto
