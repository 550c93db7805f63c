#!/usr/bin/env python3
"""Writes a random-weight Llama-shaped Hugging Face directory (config.json +
bf16 model.safetensors) with the same shape as bench/gen_bench_model.c's
default GGUF, to compare safetensors-BF16 and GGUF-BF16 decode speed.
The numbers it computes are meaningless; every weight byte is still read.

    python3 bench/gen_hf_model.py OUT_DIR [layers hidden ffn heads kv_heads vocab]

Standard library only: one 16 MiB block of random bf16 values with a sane
exponent (|w| in about [2^-7, 2^-4]) is repeated through every tensor."""
import json
import os
import struct
import sys


def random_block(nbytes):
    b = bytearray(os.urandom(nbytes))
    # high byte of each little-endian bf16: sign + exponent bits 0x3c-0x3d
    table = bytes((x & 0x80) | 0x3C | ((x >> 6) & 1) for x in range(256))
    b[1::2] = b[1::2].translate(table)
    return bytes(b)


def main():
    out = sys.argv[1]
    L, H, F, NH, NKV, V = (
        [int(x) for x in sys.argv[2:8]] if len(sys.argv) >= 8 else [16, 2048, 5632, 32, 8, 32000]
    )
    hd = H // NH
    shapes = [("model.embed_tokens.weight", [V, H]), ("lm_head.weight", [V, H]),
              ("model.norm.weight", [H])]
    for i in range(L):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", [H]), (p + "post_attention_layernorm.weight", [H]),
                   (p + "self_attn.q_proj.weight", [NH * hd, H]),
                   (p + "self_attn.k_proj.weight", [NKV * hd, H]),
                   (p + "self_attn.v_proj.weight", [NKV * hd, H]),
                   (p + "self_attn.o_proj.weight", [H, NH * hd]),
                   (p + "mlp.gate_proj.weight", [F, H]), (p + "mlp.up_proj.weight", [F, H]),
                   (p + "mlp.down_proj.weight", [H, F])]
    header, off = {}, 0
    for name, shape in shapes:
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    hj = json.dumps(header).encode()
    hj += b" " * (-len(hj) % 8)
    os.makedirs(out, exist_ok=True)
    block = random_block(16 << 20)
    one = struct.pack("<H", 0x3F80)  # bf16 1.0 for the norm weights
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj)
        for name, shape in shapes:
            n = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            if len(shape) == 1:
                f.write(one * (n // 2))
                continue
            while n > 0:
                k = min(n, len(block))
                f.write(block[:k])
                n -= k
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": NH,
           "num_key_value_heads": NKV, "vocab_size": V, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "hidden_act": "silu", "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main()
