// The decoder's backward program (DESIGN.md §3): from the gradient of the final-normed hidden
// states to the LoRA gradients, layer by layer in mirrored order of decoder_forward_train,
// reading only what DecoderSaved kept. Mirrors the autograd of transformers' LlamaModel.forward
// (Mistral / Qwen2 / Qwen3 variants) under PEFT LoRA with every base weight frozen, or, for full
// fine-tuning, with every weight trainable (decoder_backward_full).
#pragma once

#include "model/decoder_forward.h"
#include "model/lora.h"
#include "model/packed_batch.h"
#include "tensor/tensor.h"

namespace kto {

// `decoder`, `batch` and `saved` are those of the decoder_forward_train call; `adapter` is the
// adapter that forward ran with (decoder.lora == &adapter): its d_a / d_b ACCUMULATE (call
// adapter.zero_grad() to start a step). d_hidden [T, D] f32 is ∂loss/∂saved.hidden. Nothing is
// computed for frozen weights or for the embedding input.
void decoder_backward(const Decoder& decoder, const PackedBatch& batch, const DecoderSaved& saved,
                      const Tensor& d_hidden, LoraAdapter& adapter);

// Full fine-tuning: the same program with no adapter (decoder.lora == nullptr), accumulating
// into `grads` (weights_zeros_like of the model's weights) the gradient of every projection
// weight and bias, every RMSNorm weight (q/k norms too) and the embedding rows of the batch's
// tokens. The head's gradient is the caller's (it may share the embedding when tied).
void decoder_backward_full(const Decoder& decoder, const PackedBatch& batch, const DecoderSaved& saved,
                           const Tensor& d_hidden, Weights& grads);

}  // namespace kto
