// Ollama Modelfile generation. The templates are the shapes of Ollama's built-in ChatML,
// Llama-3 and Mistral-instruct templates (server/templates/*.gotmpl): .System, .Messages with
// .Role / .Content, ending with the assistant header so that the model continues from there.
// BOS is not in the templates: llama.cpp / Ollama add it from tokenizer.ggml.add_bos_token.
#include "export/modelfile.h"

#include <algorithm>
#include <filesystem>

#include "util/error.h"
#include "util/files.h"
#include "util/log.h"

namespace kto {
namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Go template strings inside """…""" may not contain three quotes in a row.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

}  // namespace

std::optional<ModelfileTemplate> modelfile_template(const std::string& chat_template, const std::string& eos_token) {
  if (contains(chat_template, "<|im_start|>")) {
    return ModelfileTemplate{"chatml",
                             "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
                             "{{- range .Messages }}{{- if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n"
                             "{{ .Content }}<|im_end|>\n{{ end }}{{- end }}<|im_start|>assistant\n",
                             {"<|im_start|>", "<|im_end|>"}};
  }
  if (contains(chat_template, "<|start_header_id|>")) {
    return ModelfileTemplate{"llama3",
                             "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
                             "{{ end }}{{- range .Messages }}{{- if ne .Role \"system\" }}<|start_header_id|>"
                             "{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}{{- end }}"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n",
                             {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}};
  }
  if (contains(chat_template, "[INST]")) {
    std::vector<std::string> stops{"[INST]", "[/INST]"};
    if (!eos_token.empty()) stops.push_back(eos_token);
    return ModelfileTemplate{"mistral",
                             "{{- range $i, $_ := .Messages }}{{- if eq .Role \"user\" }}[INST] "
                             "{{ if and $.System (eq (len (slice $.Messages $i)) 1) }}{{ $.System }}\n\n{{ end }}"
                             "{{ .Content }} [/INST]{{- else if eq .Role \"assistant\" }} {{ .Content }}" +
                                 eos_token + "{{- end }}{{- end }}",
                             stops};
  }
  return std::nullopt;
}

std::string modelfile_text(const std::string& gguf_file, const std::string& chat_template,
                           const std::vector<std::string>& eos_tokens) {
  std::string out = "# Ollama Modelfile written by kto export gguf. Use: ollama create NAME -f Modelfile\n";
  out += "FROM ./" + gguf_file + "\n";
  const std::string eos = eos_tokens.empty() ? "" : eos_tokens.front();
  std::vector<std::string> stops = eos_tokens;
  if (std::optional<ModelfileTemplate> t = modelfile_template(chat_template, eos)) {
    out += "# TEMPLATE derived from the model's chat template (" + t->family + " family)\n";
    out += "TEMPLATE \"\"\"" + t->go_template + "\"\"\"\n";
    for (const std::string& s : t->stops) {
      if (std::find(stops.begin(), stops.end(), s) == stops.end()) stops.push_back(s);
    }
  } else if (chat_template.empty()) {
    out += "# No TEMPLATE: the model has no chat template (a base model); Ollama sends the prompt as is.\n";
  } else {
    out += "# No TEMPLATE: kto could not derive one from this chat template (it recognises ChatML, Llama-3 and\n"
           "# Mistral [INST]). Write a TEMPLATE in Go template syntax by hand, or the model may not stop or\n"
           "# answer in its trained format. The Jinja template is embedded in the GGUF (tokenizer.chat_template).\n";
  }
  for (const std::string& s : stops) out += "PARAMETER stop " + quoted(s) + "\n";
  return out;
}

void modelfile_write(const std::string& gguf_path, const GgufTokenizerInfo& tokenizer) {
  const std::filesystem::path p(gguf_path);
  const std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
  std::vector<std::string> eos;
  for (int32_t id : tokenizer.eos_ids) {
    if (id >= 0 && static_cast<size_t>(id) < tokenizer.tokens.size()) eos.push_back(tokenizer.tokens[static_cast<size_t>(id)]);
  }
  const std::string text = modelfile_text(p.filename().string(), tokenizer.chat_template, eos);
  const std::string path = path_join(dir, "Modelfile");
  file_write_atomic(path, text);
  if (!tokenizer.chat_template.empty() && !modelfile_template(tokenizer.chat_template, "")) {
    log_warn(path, ": no TEMPLATE written, the chat template is not one kto can translate (ChatML, Llama-3, "
             "Mistral [INST]); add a TEMPLATE by hand before `ollama create`");
  }
  log_info("wrote ", path, " (ollama create NAME -f ", path, ")");
}

}  // namespace kto
