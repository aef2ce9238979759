#!/usr/bin/env python3
"""Random-weight Llama + byte-level BPE tokenizer trained here on synthetic text, loadable by
vLLM and transformers without any hub access. Special tokens take ids 0-7, so servesim's
token-id prompts (ids in [8, vocab)) never hit them.
usage: make_tiny_llama.py OUT_DIR [--layers 4 --hidden 256 --heads 4 --kv-heads 2
                                   --intermediate 512 --vocab 4096 --max-pos 8192]"""
import argparse, json, os, random

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<s>", "</s>", "<unk>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def lines(n=20000, seed=0):
    r = random.Random(seed)
    parts = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "qu", "the", "and", "ing", "ion",
             "er", "st", "pre", "fix", "cache", "block", "token", "serve", "batch", "queue", "model"]
    words = ["".join(r.choice(parts) for _ in range(r.randint(1, 3))) for _ in range(3000)]
    words += ["the", "a", "of", "to", "in", "is", "that", "for", "it", "with", "on", "be"] * 20
    for _ in range(n):
        yield " ".join(r.choice(words) for _ in range(r.randint(5, 30))) + ". " + str(r.randint(0, 99999))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    for k, v in [("layers", 4), ("hidden", 256), ("heads", 4), ("kv-heads", 2), ("intermediate", 512),
                 ("vocab", 4096), ("max-pos", 8192), ("seed", 0)]:
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines(), trainers.BpeTrainer(
        vocab_size=a.vocab, special_tokens=SPECIAL, min_frequency=2, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>",
                                   additional_special_tokens=SPECIAL[4:], model_max_length=1 << 20,
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = TEMPLATE
    fast.save_pretrained(a.out)
    torch.manual_seed(a.seed)
    cfg = LlamaConfig(vocab_size=(max(len(fast), a.vocab) + 63) // 64 * 64, hidden_size=a.hidden,
                      intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      head_dim=a.hidden // a.heads, max_position_embeddings=a.max_pos,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id, torch_dtype="bfloat16")
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(a.out, safe_serialization=True)
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": fast.bos_token_id, "eos_token_id": fast.eos_token_id,
                   "pad_token_id": fast.pad_token_id}, f)


if __name__ == "__main__":
    main()
