#!/usr/bin/env python3
"""Renders chat templates with jinja2 exactly as transformers' apply_chat_template does, for a set
of conversations, and records the outputs (or the errors the templates raise) as test fixtures.

Templates: the public ones in ../shared/fixtures/chat_templates/*.jinja (read in place, never
copied) and the project's own tests/fixtures/chat_templates/own/*.jinja. Rendering goes through
transformers.utils.chat_template_utils.render_jinja_template (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, AssistantTracker, the tojson override, raise_exception,
strftime_now) with the clock fixed at FIXED_NOW so that strftime_now is reproducible.

Writes tests/fixtures/chat_templates/{conversations.json, expected.json}; checked by
tests/chat_template/test_chat_template_fixtures.cpp. Run with the reference venv:

    /work/venv/bin/python tools/reference/render_chat_templates.py
"""
import datetime as _dt
import glob
import json
import os
import sys

import jinja2
import transformers
import transformers.utils.chat_template_utils as ctu

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "chat_templates")
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "chat_templates")
FIXED_NOW = _dt.datetime(2025, 3, 14, 9, 26, 53)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone.",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        "return": {"type": "string"},
    },
}

CONVERSATIONS = [
    {"id": "single_user", "messages": [{"role": "user", "content": "Hello, who are you?"}]},
    {"id": "system_user", "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is 2 + 2?"}]},
    {"id": "multi_turn", "messages": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."}]},
    {"id": "ends_with_assistant", "messages": [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."}]},
    {"id": "system_multi_turn", "messages": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Good morning"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Thank you"},
        {"role": "assistant", "content": "Merci"}]},
    {"id": "empty_content", "messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""}]},
    {"id": "unicode", "messages": [
        {"role": "user", "content": "Grüße aus Zürich! 你好，世界 🌍🚀 «quotes» ‘single’ \"double\" — ok?"},
        {"role": "assistant", "content": "こんにちは 😀 Привет! ½ ≠ ∞"},
        {"role": "user", "content": "Tab\there, newline\nthere, backslash \\ and emoji 👩‍💻"}]},
    {"id": "whitespace_content", "messages": [
        {"role": "system", "content": "  Be brief.  \n"},
        {"role": "user", "content": "\n  Spaces around  \n\n"},
        {"role": "assistant", "content": "  Sure.\n"},
        {"role": "user", "content": "{{ not a tag }} {% neither %} <|im_end|> </s>"}]},
    {"id": "thinking_system", "messages": [
        {"role": "system", "content": "/no_think You are helpful."},
        {"role": "user", "content": "Quick answer: capital of France?"},
        {"role": "assistant", "content": "<think>\nEasy.\n</think>\n\nParis."},
        {"role": "user", "content": "And Italy?"}]},
    {"id": "tools_user", "tools": [WEATHER_TOOL, TIME_TOOL], "messages": [
        {"role": "user", "content": "What's the weather in Paris?"}]},
    {"id": "tool_call_roundtrip", "tools": [WEATHER_TOOL], "messages": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Zürich, in celsius?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call9abcXYZ12", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call9abcXYZ12", "name": "get_weather",
         "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21.5 °C and clear in Zürich."}]},
]

# bos/eos as each model family's tokenizer has them (None where the tokenizer has no such token).
SPECIAL_TOKENS = {
    "chatml.jinja": ("<s>", "<|im_end|>"),
    "gemma-it.jinja": ("<bos>", "<eos>"),
    "llama-2-chat.jinja": ("<s>", "</s>"),
    "llama-3-chat.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.2-1B-Instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-cpp-microsoft-Phi-4-mini-instruct.jinja": ("<|endoftext|>", "<|endoftext|>"),
    "mistral-instruct.jinja": ("<s>", "</s>"),
    "mistralai-Mistral-Small-3.1-24B-Instruct-2503.jinja": ("<s>", "</s>"),
    "nvidia-Llama-3_3-Nemotron-Super-49B-v1_5.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "phi-3.jinja": ("<s>", "<|endoftext|>"),
    "qwen2.5-instruct.jinja": (None, "<|im_end|>"),
    "zephyr.jinja": ("<s>", "</s>"),
}
OWN_SPECIAL_TOKENS = ("<s>", "</s>")


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_NOW


def render(source, conversation, add_generation_prompt, bos, eos):
    kwargs = {"bos_token": bos, "eos_token": eos}
    rendered, _ = ctu.render_jinja_template(
        conversations=[conversation["messages"]],
        tools=conversation.get("tools"),
        documents=None,
        chat_template=source,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )
    return rendered[0]


def render_case(source, conversation, add_generation_prompt, bos, eos):
    case = {"conversation": conversation["id"], "add_generation_prompt": add_generation_prompt}
    try:
        case["output"] = render(source, conversation, add_generation_prompt, bos, eos)
    except jinja2.exceptions.TemplateSyntaxError:
        raise
    except Exception as e:  # noqa: BLE001 - every runtime failure is an expected outcome to record
        # raise_exception raises a bare TemplateError; anything else is a runtime error of the template.
        case["error"] = str(e)
        case["error_kind"] = "raise_exception" if type(e) is jinja2.exceptions.TemplateError else "runtime"
        case["error_type"] = type(e).__name__
    return case


def main():
    ctu.datetime = _FixedDatetime  # strftime_now reads ctu.datetime.now()
    templates = []
    for path in sorted(glob.glob(os.path.join(SHARED, "*.jinja"))):
        name = os.path.basename(path)
        if name not in SPECIAL_TOKENS:
            sys.exit(f"no bos/eos known for shared template {name}; add it to SPECIAL_TOKENS")
        templates.append((name, "shared", path, SPECIAL_TOKENS[name]))
    for path in sorted(glob.glob(os.path.join(OUT, "own", "*.jinja"))):
        templates.append(("own/" + os.path.basename(path), "own", path, OWN_SPECIAL_TOKENS))

    expected = {
        "generated_by": "tools/reference/render_chat_templates.py",
        "jinja2_version": jinja2.__version__,
        "transformers_version": transformers.__version__,
        "now": FIXED_NOW.isoformat(),
        "templates": {},
    }
    for name, origin, path, (bos, eos) in templates:
        with open(path, "rb") as f:
            source = f.read().decode("utf-8")
        cases = [render_case(source, conv, agp, bos, eos) for conv in CONVERSATIONS for agp in (True, False)]
        expected["templates"][name] = {"source": origin, "bos_token": bos, "eos_token": eos, "cases": cases}
        n_err = sum("error" in c for c in cases)
        print(f"{name}: {len(cases)} cases, {n_err} raise")

    with open(os.path.join(OUT, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump(CONVERSATIONS, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
