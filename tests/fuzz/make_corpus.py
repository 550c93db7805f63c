#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (small, valid or
nearly valid inputs the fuzzer mutates from). Deterministic; rerun after
changing it:  python3 tests/fuzz/make_corpus.py [SHARED_DIR] [TOKENIZERS_DIR]

Sources: hand-built safetensors/GGUF files (every dtype / value type), the
real config.json of each fixture family, the head of stories260K's GGUF
metadata, the real chat templates of the fetched tokenizers (qwen3, gemma3,
llama3_1), and hand-written small tokenizer.json files."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = sys.argv[1] if len(sys.argv) > 1 else "/work/shared"
TOKS = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build", "tokenizers")
SEP = b"\n=====\n"  # fuzz_common.h FUZZ_SEP


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors -----------------------------------------------------------
ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
            "U8": 1, "BOOL": 1, "F8_E4M3": 1, "U16": 2}


def safetensors(tensors, metadata=None, pad_to=8):
    """tensors: list of (name, dtype, shape); data is a byte ramp."""
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape in tensors:
        n = ST_SIZES[dt]
        for s in shape:
            n *= s
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + n]}
        blob += bytes((i * 7 + 3) & 0xFF for i in range(n))
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % pad_to)
    return struct.pack("<Q", len(h)) + h + blob


def st_seeds():
    put("safetensors", "all_dtypes.safetensors", safetensors(
        [(f"t.{dt.lower()}", dt, [2, 3]) for dt in ST_SIZES], {"format": "pt"}))
    put("safetensors", "scalar_empty.safetensors", safetensors(
        [("scalar", "F32", []), ("empty", "F16", [0, 4]), ("vec", "BF16", [5])]))
    put("safetensors", "layers.safetensors", safetensors(
        [("model.embed_tokens.weight", "BF16", [16, 8]),
         ("model.layers.0.self_attn.q_proj.weight", "BF16", [8, 8]),
         ("model.norm.weight", "F32", [8])], {"format": "pt", "note": "x"}))
    # A real fixture's header, data cut to 2 KB (open must refuse cleanly).
    fx = os.path.join(ROOT, "tests", "fixtures", "qwen3_moe_odd", "model.safetensors")
    if os.path.exists(fx):
        raw = open(fx, "rb").read()
        hl = struct.unpack("<Q", raw[:8])[0]
        put("safetensors", "qwen3_moe_truncated.safetensors", raw[:8 + hl + 2048])


# ---- GGUF ------------------------------------------------------------------
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "B",
          U64: "Q", I64: "q", F64: "d"}


def gstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def gval(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        return out + b"".join(gval(et, x) for x in items)
    return struct.pack("<" + SCALAR[t], v)


GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q8_0": (8, 32, 34),
        "Q4_K": (12, 256, 144), "Q6_K": (14, 256, 210), "BF16": (30, 1, 2), "I32": (26, 1, 4)}


def gguf(kvs, tensors, align=32, raw_kv=b"", n_raw_kv=0):
    """kvs: list of (key, type, value); tensors: (name, type, ne innermost-first)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs) + n_raw_kv)
    out += raw_kv
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    off, blobs = 0, b""
    for name, ty, ne in tensors:
        tid, blk, bb = GGML[ty]
        n = 1
        for x in ne:
            n *= x
        nbytes = n // blk * bb
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne)
        out += struct.pack("<IQ", tid, off)
        blobs += bytes((i * 5 + 1) & 0x7F for i in range(nbytes))
        off += nbytes
        pad = -off % align
        blobs += b"\0" * pad
        off += pad
    out += b"\0" * (-len(out) % align)
    return out + blobs


def gguf_skip_value(b, p, t):
    if t == STR:
        n = struct.unpack_from("<Q", b, p)[0]
        return p + 8 + n
    if t == ARR:
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            p = gguf_skip_value(b, p, et)
        return p
    return p + struct.calcsize("<" + SCALAR[t])


def stories_kvs(path):
    """The raw metadata section of a real GGUF (llama arch + 512-token vocab)."""
    b = open(path, "rb").read()
    _, n_t, n_kv = struct.unpack_from("<IQQ", b, 4)
    p = 24
    for _ in range(n_kv):
        kl = struct.unpack_from("<Q", b, p)[0]
        p += 8 + kl
        t = struct.unpack_from("<I", b, p)[0]
        p = gguf_skip_value(b, p + 4, t)
    return b[24:p], n_kv


def tiny_model_gguf(arch, hidden=32, ff=32, vocab=16, heads=4, kv=2, layers=1):
    """A loadable model (what the loader maps), small enough for a seed."""
    hd = hidden // heads
    kvs = [("general.architecture", STR, arch), (arch + ".context_length", U32, 64),
           (arch + ".embedding_length", U32, hidden), (arch + ".feed_forward_length", U32, ff),
           (arch + ".attention.head_count", U32, heads),
           (arch + ".attention.head_count_kv", U32, kv), (arch + ".block_count", U32, layers),
           (arch + ".rope.dimension_count", U32, hd), (arch + ".rope.freq_base", F32, 10000.0),
           (arch + ".attention.layer_norm_rms_epsilon", F32, 1e-6)]
    if arch == "qwen3":
        kvs.append((arch + ".attention.key_length", U32, hd))
        kvs.append((arch + ".attention.value_length", U32, hd))
    t = [("token_embd.weight", "Q8_0", [hidden, vocab]), ("output_norm.weight", "F32", [hidden]),
         ("output.weight", "Q8_0", [hidden, vocab])]
    for i in range(layers):
        b = "blk.%d." % i
        t += [(b + "attn_norm.weight", "F32", [hidden]), (b + "attn_q.weight", "Q8_0", [hidden, hidden]),
              (b + "attn_k.weight", "Q8_0", [hidden, kv * hd]),
              (b + "attn_v.weight", "Q8_0", [hidden, kv * hd]),
              (b + "attn_output.weight", "Q8_0", [hidden, hidden]),
              (b + "ffn_norm.weight", "F32", [hidden]), (b + "ffn_gate.weight", "Q8_0", [hidden, ff]),
              (b + "ffn_up.weight", "Q8_0", [hidden, ff]), (b + "ffn_down.weight", "F16", [ff, hidden])]
        if arch == "qwen3":
            t += [(b + "attn_q_norm.weight", "F32", [hd]), (b + "attn_k_norm.weight", "F32", [hd])]
    return gguf(kvs, t)


def gguf_seeds():
    kvs = [("general.architecture", STR, "llama"), ("general.alignment", U32, 32),
           ("u8", U8, 200), ("i8", I8, -3), ("u16", U16, 60000), ("i16", I16, -300),
           ("i32", I32, -7), ("f32", F32, 0.5), ("bool", BOOL, 1), ("u64", U64, 1 << 40),
           ("i64", I64, -(1 << 40)), ("f64", F64, 2.25),
           ("strs", ARR, (STR, ["a", "", "\u00e9\u4e2d"])),
           ("nested", ARR, (ARR, [(I32, [1, 2, 3]), (STR, ["x"]), (ARR, [(F32, [1.5])])])),
           ("empty", ARR, (U8, []))]
    tensors = [("a.f32", "F32", [4, 2]), ("b.f16", "F16", [8]), ("c.q8_0", "Q8_0", [32, 2]),
               ("d.q4_k", "Q4_K", [256]), ("e.bf16", "BF16", [2, 2, 2]),
               ("f.q4_0", "Q4_0", [64]), ("g.q6_k", "Q6_K", [256]), ("h.i32", "I32", [3])]
    put("gguf", "all_types.gguf", gguf(kvs, tensors))
    put("gguf", "align64.gguf", gguf([("general.alignment", U32, 64)],
                                      [("x", "F32", [3]), ("y", "Q8_0", [32])], align=64))
    put("gguf", "no_tensors.gguf", gguf([("k", STR, "v")], []))
    for arch in ("llama", "qwen3"):
        put("gguf", "tiny_%s.gguf" % arch, tiny_model_gguf(arch))
    src = os.path.join(SHARED, "fixtures", "gguf", "stories260K-q8_0.gguf")
    if os.path.exists(src):
        raw, n = stories_kvs(src)
        put("gguf", "stories260K_meta.gguf",
            gguf([], [("token_embd.weight", "Q8_0", [64, 4]), ("output_norm.weight", "F32", [64])],
                 raw_kv=raw, n_raw_kv=n))


# ---- config.json -----------------------------------------------------------
def config_seeds():
    fx = os.path.join(SHARED, "fixtures")
    for fam in sorted(os.listdir(fx)):
        p = os.path.join(fx, fam, "config.json")
        if os.path.exists(p):
            put("json_config", fam + ".json", open(p, "rb").read())


# ---- tokenizers ------------------------------------------------------------
def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bytelevel_tokenizer():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("\u0120", "w"),
                 ("o", "r"), ("\u0120w", "or"), ("l", "d"), ("\u0120wor", "ld")]:
        merges.append(a + " " + b)
        vocab[a + b] = len(vocab)
    added = [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True},
             {"id": len(vocab) + 1, "content": "<|im_start|>", "single_word": False,
              "lstrip": False, "rstrip": False, "normalized": False, "special": True}]
    pat = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
           "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pat}, "behavior": "Isolated",
                 "invert": False}, bl]},
            "post_processor": bl, "decoder": bl,
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


def sentencepiece_tokenizer():
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    merges = []
    for a, b in [("\u2581", "t"), ("h", "e"), ("\u2581t", "he"), ("l", "o"), ("\u2581", "w")]:
        for p in (a, b):
            vocab.setdefault(p, len(vocab))
        merges.append([a, b])
        vocab[a + b] = len(vocab)
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for c, i in [("<pad>", 0), ("<eos>", 1), ("<bos>", 2), ("<unk>", 3)]]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
            "pre_tokenizer": {"type": "Split", "pattern": {"String": " "},
                              "behavior": "MergedWithPrevious", "invert": False},
            "post_processor": {"type": "TemplateProcessing",
                               "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                                          {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                        {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2],
                                                            "tokens": ["<bos>"]}}},
            "decoder": {"type": "Sequence", "decoders": [
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "ByteFallback"}, {"type": "Fuse"}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                      "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


def tokenizer_seeds():
    bl = json.dumps(bytelevel_tokenizer(), ensure_ascii=False).encode()
    sp = json.dumps(sentencepiece_tokenizer(), ensure_ascii=False).encode()
    cfg_bl = json.dumps({"bos_token": None, "eos_token": "<|endoftext|>",
                         "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
    cfg_sp = json.dumps({"add_bos_token": True, "add_eos_token": False,
                         "bos_token": {"content": "<bos>", "__type": "AddedToken"},
                         "eos_token": "<eos>", "unk_token": "<unk>"})
    put("tokenizer_load", "bytelevel.json", bl)
    put("tokenizer_load", "bytelevel_cfg.json", bl + SEP + cfg_bl.encode())
    put("tokenizer_load", "sentencepiece_cfg.json", sp + SEP + cfg_sp.encode())

    texts = ["Hello, world! It's 2024.\n", "def f(x):\n    return x  # \u00e9\u00e9\n",
             "\u4e2d\u6587\u5b57\u7b26 \U0001F600 e\u0301 \uff21",
             "<|im_start|>user\nhi<|im_end|><bos><start_of_turn>model\n",
             "   leading and trailing   \t\r\n", "\u2581literal mark", "1234567890 12.5%"]
    for i, t in enumerate(texts):
        for tok in range(3):
            flags = tok | ((i & 1) << 2)
            put("tokenize", "t%d_%d" % (i, tok), bytes([flags]) + t.encode())
    # detok: flag byte, then 3-byte units (see fuzz_detok.c)
    put("detok", "bytes_utf8", bytes([1]) + b"".join(bytes([0, c, 0]) for c in
                                                       "\u4e2d\U0001F600".encode()))
    put("detok", "mixed", bytes([0]) + bytes([1, 10, 1, 2, 200, 3, 3, 0, 0, 0, 0xE4, 0]))
    put("detok", "specials_skip", bytes([4 | 1]) + bytes([3, 1, 0, 1, 99, 2, 3, 2, 0, 3, 5, 0xFF]))


# ---- templates -------------------------------------------------------------
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! <think>x</think>"},
            {"role": "user", "content": "What's 2+2?"}]
TOOLS = [{"type": "function", "function": {"name": "add", "description": "adds",
                                           "parameters": {"type": "object", "properties": {
                                               "a": {"type": "number"}}}}}]


def template_seeds():
    ctx = {"messages": MESSAGES, "tools": TOOLS, "add_generation_prompt": True,
           "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": False}
    for name in ("qwen3", "gemma3", "llama3_1"):
        p = os.path.join(TOKS, name, "tokenizer_config.json")
        if os.path.exists(p):
            src = json.load(open(p)).get("chat_template")
            if isinstance(src, str):
                put("template", name + ".jinja", src.encode() + SEP + json.dumps(ctx).encode())
    small = [
        "{%- for m in messages %}{{ '<|' + m['role'] + '|>' + m.content | trim }}\n{% endfor -%}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}",
        "{% set ns = namespace(n=0) %}{% for i in range(5) if i is odd %}{% set ns.n = ns.n + i %}"
        "{{ loop.index }}/{{ loop.length }}{% else %}none{% endfor %}{{ ns.n }}",
        "{% macro greet(name, punct='!') %}Hi {{ name|upper }}{{ punct }}{% endmacro %}"
        "{{ greet('x') }}{{ greet(name='y', punct='?') }}",
        "{{ messages | tojson }}{{ (messages|length) * 2 // 3 % 2 }}{{ 'a,b'.split(',') | join('-') }}"
        "{{ 'x' ~ 1 ~ none }}{{ [1,2,3][::-1] }}{{ {'a': 1}.items() | list }}",
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}",
        "{%- if tools %}{% for t in tools %}{{ t.function.name }}{{ t | tojson(indent=2) }}"
        "{% endfor %}{% endif %}{{ messages[-1].content.startswith('W') }}"
        "{{ messages[-1]['content'][1:4].replace('a', 'b') }}",
    ]
    for i, src in enumerate(small):
        put("template", "small%d.jinja" % i,
            src.encode() + (SEP + json.dumps(ctx).encode() if i % 2 else b""))


# ---- tool-call parser --------------------------------------------------------
def toolcall_seeds():
    # flag byte: tool format | think format << 3 | start_in_reasoning << 5 |
    # max_calls=1 << 6; then the cut byte (fuzz_toolcall.c)
    seeds = {
        "hermes": (1 | 1 << 3, "<think>\nplan it\n</think>\n\nSure.<tool_call>\n{\"name\": "
                   "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                   "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>"),
        "hermes_open_reasoning": (1 | 1 << 3 | 1 << 5 | 1 << 6, "still thinking</think>ok "
                                  "<tool_call>{\"name\": \"x\", \"arguments\": {\"a\": [1, "
                                  "{\"b\": \"}\"}]}}</tool_call><tool_call>{\"name\": \"y\"}"),
        "llama3": (2, "<|python_tag|>{\"name\": \"f\", \"parameters\": {\"a\": 1}}; "
                   "{\"name\": \"g\", \"parameters\": {}}"),
        "llama3_bare": (2, "{\"name\": \"search\", \"parameters\": {\"q\": \"x\"}}"),
        "gemma4": (3 | 2 << 3, "<|channel>thought\nplan<channel|>Calling.<|tool_call>call:"
                   "get_weather{city:<|\"|>Paris, FR<|\"|>,n:1,opts:{deep:true,l:[1,2]}}"
                   "<tool_call|>"),
        "json": (4, "[{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", "
                 "\"parameters\": {\"x\": [1, 2]}}]"),
        "none": (0, "plain <tool_call> text \u00e9 <think>x</think>"),
    }
    for name, (flags, text) in seeds.items():
        put("toolcall", name, bytes([flags, 5]) + text.encode())


# ---- request bodies --------------------------------------------------------
def request_seeds():
    bodies = [
        {"model": "m", "messages": [{"role": "user", "content": "Hello"}]},
        {"messages": MESSAGES, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.05,
         "max_tokens": 64, "stop": ["\n\n", "END"], "seed": 42, "stream": True,
         "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 3,
         "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
         "logit_bias": {"15": -100, "16": 5.5}, "n": 1, "user": "ignored-unknown-field"},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "part 1"},
                                                   {"type": "text", "text": "part 2"}]}],
         "tools": TOOLS, "chat_template_kwargs": {"enable_thinking": False},
         "add_generation_prompt": False, "max_completion_tokens": 5},
        {"model": "m", "prompt": "Once upon a time", "max_tokens": 16, "logprobs": 2,
         "stop": "x", "ignore_eos": True},
        {"prompt": [1, 2, 3, 4], "temperature": 0},
        {"prompt": ["single string in an array"], "stream": False},
        # Anthropic Messages
        {"model": "m", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief."}],
         "messages": [{"role": "user", "content": "Weather?"},
                      {"role": "assistant", "content": [
                          {"type": "thinking", "thinking": "t", "signature": ""},
                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                           "input": {"city": "Paris"}}]},
                      {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                          {"type": "text", "text": "thanks"}]}],
         "tools": [{"name": "get_weather", "description": "d",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
         "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
         "thinking": {"type": "enabled", "budget_tokens": 1024}, "stop_sequences": ["END"],
         "temperature": 0.5, "top_k": 5, "metadata": {"user_id": "u"}, "stream": True},
        # OpenAI Responses
        {"model": "m", "instructions": "Be brief.", "max_output_tokens": 32, "store": False,
         "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                   {"type": "reasoning", "content": [{"type": "reasoning_text", "text": "r"}]},
                   {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                    "arguments": "{\"city\": \"Paris\"}"},
                   {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}],
         "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
         "tool_choice": {"type": "function", "name": "get_weather"},
         "text": {"format": {"type": "text"}}, "reasoning": {"effort": "none"}},
        # embeddings
        {"model": "m", "input": ["first text", [1, 2, 3]], "encoding_format": "base64",
         "dimensions": 16},
        {"input": "a single text", "encoding_format": "float"},
    ]
    for i, b in enumerate(bodies):
        put("request", "body%d.json" % i, json.dumps(b))
        if i == 1:  # odd size picks the gemma3 model (fuzz_request.c)
            put("request", "body%d_odd.json" % i, json.dumps(b) + " ")


# ---- sharded safetensors (fuzz_safetensors_sharded.c) ------------------------
def sharded_seeds():
    a = safetensors([("model.embed_tokens.weight", "BF16", [8, 4]), ("model.norm.weight", "F32", [4])],
                    {"format": "pt"})
    b = safetensors([("model.layers.0.mlp.up_proj.weight", "F16", [4, 4]),
                     ("lm_head.weight", "BF16", [8, 4])])
    c = safetensors([("model.layers.1.mlp.up_proj.weight", "F8_E4M3", [4, 4])])
    def index(wm):
        return json.dumps({"metadata": {"total_size": 1234}, "weight_map": wm}, indent=2).encode()
    wm2 = {"model.embed_tokens.weight": "s1.safetensors", "model.norm.weight": "s1.safetensors",
           "model.layers.0.mlp.up_proj.weight": "s2.safetensors",
           "lm_head.weight": "s2.safetensors"}
    put("safetensors_sharded", "two_shards", index(wm2) + SEP + a + SEP + b)
    wm3 = dict(wm2, **{"model.layers.1.mlp.up_proj.weight": "s3.safetensors"})
    put("safetensors_sharded", "three_shards", index(wm3) + SEP + a + SEP + b + SEP + c)
    # the index names a tensor in the wrong shard / a shard that is missing
    put("safetensors_sharded", "wrong_shard",
        index(dict(wm2, **{"lm_head.weight": "s1.safetensors"})) + SEP + a + SEP + b)
    put("safetensors_sharded", "missing_shard", index(wm3) + SEP + a + SEP + b)
    # the same tensor in two shards
    put("safetensors_sharded", "duplicate_across_shards", index(wm2) + SEP + a + SEP + b + SEP + a)
    # no index: every *.safetensors of the directory, sorted
    put("safetensors_sharded", "no_index", SEP + a + SEP + b)


# ---- GGUF vocabularies (fuzz_gguf_vocab.c) ---------------------------------
def vocab_input(flags, bos, eos, unk, tokens, attrs=b"", merges=(), probe=b""):
    """The structured form fuzz_gguf_vocab.c turns into a GGUF file."""
    return (bytes([flags, bos, eos, unk]) + b"\n".join(t.encode() for t in tokens) + SEP + attrs
            + SEP + "\n".join(merges).encode() + SEP + probe)


def vocab_seeds():
    spm = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    pieces = ["\u2581", "t", "h", "e", "\u2581t", "he", "\u2581the", "l", "o", "lo", "\u2581w",
              "\u2581wor", "r", "d", "\u4e2d"]
    spm += pieces
    # types: unknown, control x2, byte x256, normal; scores: higher = merged first
    attrs = bytes([2, 0, 3, 0, 3, 0]) + bytes([6, 0]) * 256
    attrs += b"".join(bytes([1, (len(p) * 16) & 0x7F]) for p in pieces)
    put("gguf_vocab", "llama_spm", vocab_input(0b10001110, 1, 2, 0, spm, attrs,
                                               probe="the world \u4e2d\u6587".encode()))
    put("gguf_vocab", "llama_spm_no_types_no_prefix", vocab_input(0b00001000, 1, 2, 0, spm))
    b2u = bytes_to_unicode()
    bl = ["<|endoftext|>", "<|im_start|>"] + [b2u[b] for b in range(256)]
    merges = []
    for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("\u0120", "w"),
                 ("o", "r"), ("\u0120w", "or"), ("l", "d"), ("\u0120wor", "ld")]:
        merges.append(a + " " + b)
        bl.append(a + b)
    attrs = bytes([3, 0, 3, 0]) + bytes([1, 0]) * (len(bl) - 2)
    for pre, name in ((1, "llama_bpe"), (2, "qwen2"), (3, "gpt2"), (0, "default")):
        put("gguf_vocab", "gpt2_" + name,
            vocab_input(0b00000011 | (pre << 5), 0xFF, 0, 0xFF, bl, attrs, merges,
                        b"hello world<|endoftext|> 123"))
    src = os.path.join(SHARED, "models", "stories260K.gguf")
    if os.path.exists(src):
        raw, n = stories_kvs(src)
        put("gguf_vocab", "stories260K_vocab.gguf", gguf([], [], raw_kv=raw, n_raw_kv=n))


# python3 tests/fuzz/make_corpus.py --only sharded_seeds vocab_seeds: just those
if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--only":
    SHARED = os.environ.get("SP_SHARED_DIR", "/work/shared")
    for fn in sys.argv[2:]:
        globals()[fn]()
    sys.exit(0)


if __name__ == "__main__":
    st_seeds()
    sharded_seeds()
    vocab_seeds()
    gguf_seeds()
    config_seeds()
    tokenizer_seeds()
    template_seeds()
    toolcall_seeds()
    request_seeds()
    total = 0
    for dp, _, fs in os.walk(os.path.join(HERE, "corpus")):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print("corpus: %d bytes" % total)
