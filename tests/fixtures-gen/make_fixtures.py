#!/usr/bin/env python3
"""Build tiny random-weight reference models with odd sizes and record transformers' logits.

Each fixture is a model made from a hand-written config, with seeded random weights that are
exactly representable in bf16 (every norm weight, Gemma 4 router scales and layer_scalar are
randomised too: HF initialises them to 1, which would hide bugs). The model is saved with
save_pretrained in bf16, loaded back in float32 with eager attention on the CPU, and run on a
40-token prompt, then greedily for 24 tokens through the HF cache one token at a time.

Files per fixture (same conventions as /work/shared/fixtures/<name>/):
  config.json, generation_config.json, model.safetensors   as written by save_pretrained
  reference.json      prompt_ids, greedy_ids, shapes, margins, note, extra facts
  logits_prompt.f32   [40, vocab] float32 LE, logits at every prompt position
  logits_steps.f32    [24, vocab] float32 LE, the logits that chose each greedy token

Up to --attempts seeds are tried per fixture; the first whose greedy steps have a clear top-1
margin, whose MoE routing has no near-ties and whose greedy ids are not one repeated token wins.
The folder DIR/<name> is then copied to tests/fixtures/<name> (see tests/fixtures/README.md).

Usage (needs torch, transformers, safetensors; no network):
  CUDA_VISIBLE_DEVICES= python3 tests/fixtures-gen/make_fixtures.py --out DIR [--only a,b]
"""

import argparse
import array
import json
import math
import os
import random
import shutil
import sys
import traceback
import zlib

import torch
import transformers

PROMPT_LEN = 40
STEPS = 24
NOTE = "weights are exactly bf16-representable; reference computed in float32, eager attention, CPU"
MIN_MARGIN = 0.02  # wanted gap between the top two step logits (keeps greedy ids stable)
MIN_ROUTER_GAP = 0.005  # wanted gap between the k-th and (k+1)-th router logit
MIN_DISTINCT = 8  # wanted number of distinct greedy ids (avoid a fixture that just repeats)


# ----------------------------------------------------------------------------------------------
# Fixture definitions: each returns (model class, config) plus facts used by the generator.
# ----------------------------------------------------------------------------------------------

IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)


def llama_odd():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=389, hidden_size=72, intermediate_size=136, num_hidden_layers=3,
        num_attention_heads=3, num_key_value_heads=1, head_dim=24, max_position_embeddings=256,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False, **IDS)
    return LlamaForCausalLM, cfg


def qwen2_odd():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=450, hidden_size=80, intermediate_size=200, num_hidden_layers=3,
        num_attention_heads=5, num_key_value_heads=5, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        use_sliding_window=False, tie_word_embeddings=True, **IDS)
    return Qwen2ForCausalLM, cfg


def qwen3_moe_odd():
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    cfg = Qwen3MoeConfig(
        vocab_size=417, hidden_size=48, intermediate_size=100, num_hidden_layers=3,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        decoder_sparse_step=2, mlp_only_layers=[], moe_intermediate_size=24, num_experts=6,
        num_experts_per_tok=3, norm_topk_prob=False, tie_word_embeddings=False, **IDS)
    return Qwen3MoeForCausalLM, cfg


GEMMA3_TYPES = ["sliding_attention", "full_attention", "sliding_attention", "sliding_attention",
                "full_attention", "sliding_attention", "full_attention"]


def gemma3_odd():
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(
        vocab_size=392, hidden_size=56, intermediate_size=120, num_hidden_layers=7,
        num_attention_heads=2, num_key_value_heads=1, head_dim=28, max_position_embeddings=256,
        layer_types=list(GEMMA3_TYPES), sliding_window=5, query_pre_attn_scalar=20,
        rope_parameters={
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
        },
        final_logit_softcapping=15.0, attn_logit_softcapping=None, rms_norm_eps=1e-6,
        tie_word_embeddings=True, **IDS)
    return Gemma3ForCausalLM, cfg


GEMMA4_ROPE = {
    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
    "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25,
                       "rope_theta": 1000000.0},
}
# Media ids at the top of the 448-token vocab (same order as the gemma4_mllm fixture).
G4_MEDIA = dict(audio_token_id=441, eoa_token_index=442, boa_token_id=443, boi_token_id=444,
                eoi_token_id=445, image_token_id=446, video_token_id=447)


def gemma4_odd_moe():
    from transformers import Gemma4Config, Gemma4ForConditionalGeneration, Gemma4TextConfig

    s, f = "sliding_attention", "full_attention"
    text = Gemma4TextConfig(
        vocab_size=448, vocab_size_per_layer_input=448, hidden_size=48, intermediate_size=88,
        num_hidden_layers=7, num_attention_heads=3, num_key_value_heads=1, head_dim=16,
        global_head_dim=32, num_global_key_value_heads=1, attention_k_eq_v=True,
        layer_types=[s, s, s, f, s, s, f], sliding_window=6, max_position_embeddings=256,
        rope_parameters=json.loads(json.dumps(GEMMA4_ROPE)), final_logit_softcapping=30.0,
        enable_moe_block=True, num_experts=5, top_k_experts=2, moe_intermediate_size=20,
        hidden_size_per_layer_input=0, num_kv_shared_layers=0, use_double_wide_mlp=False,
        rms_norm_eps=1e-6, tie_word_embeddings=True, **IDS)
    cfg = Gemma4Config(text_config=text, vision_config=None, audio_config=None,
                       tie_word_embeddings=True, **G4_MEDIA)
    return Gemma4ForConditionalGeneration, cfg


def gemma4_ple_odd():
    from transformers import Gemma4ForCausalLM, Gemma4TextConfig

    s, f = "sliding_attention", "full_attention"
    cfg = Gemma4TextConfig(
        vocab_size=401, vocab_size_per_layer_input=401, hidden_size=40, intermediate_size=72,
        num_hidden_layers=8, num_attention_heads=2, num_key_value_heads=1, head_dim=20,
        global_head_dim=40, attention_k_eq_v=False, layer_types=[s, s, f, s, s, f, s, f],
        sliding_window=7, max_position_embeddings=256,
        rope_parameters=json.loads(json.dumps(GEMMA4_ROPE)), final_logit_softcapping=30.0,
        hidden_size_per_layer_input=8, num_kv_shared_layers=3, use_double_wide_mlp=True,
        enable_moe_block=False, rms_norm_eps=1e-6, tie_word_embeddings=True, **IDS)
    return Gemma4ForCausalLM, cfg


def phi3_partial():
    from transformers import Phi3Config, Phi3ForCausalLM

    rope = {"rope_type": "longrope", "rope_theta": 10000.0,
            "short_factor": [1.0, 1.05, 1.2, 1.5, 2.0, 2.5],
            "long_factor": [1.0, 1.5, 3.0, 6.0, 12.0, 24.0],
            "original_max_position_embeddings": 50, "partial_rotary_factor": 0.75}
    cfg = Phi3Config(
        vocab_size=430, hidden_size=64, intermediate_size=112, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
        original_max_position_embeddings=50, partial_rotary_factor=0.75, rope_parameters=rope,
        rms_norm_eps=1e-5, sliding_window=None, tie_word_embeddings=False, **IDS)
    return Phi3ForCausalLM, cfg


def mistral_odd():
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(
        vocab_size=511, hidden_size=40, intermediate_size=104, num_hidden_layers=3,
        num_attention_heads=5, num_key_value_heads=1, head_dim=8, sliding_window=5,
        max_position_embeddings=48,
        rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0},
        rms_norm_eps=1e-6, tie_word_embeddings=False, **IDS)
    return MistralForCausalLM, cfg


FIXTURES = {
    "llama_odd": dict(make=llama_odd, tests="Llama, hidden 72, 3 heads / 1 KV head (GQA 3:1), "
                      "head_dim 24, intermediate 136, 3 layers, vocab 389, untied"),
    "qwen2_odd": dict(make=qwen2_odd, small_embed=True, tests="Qwen2 q/k/v biases, hidden 80 (not a multiple of "
                      "64), 5 heads = 5 KV heads (no GQA), head_dim 16, intermediate 200, "
                      "vocab 450, tied embeddings, theta 1e6"),
    "qwen3_moe_odd": dict(make=qwen3_moe_odd, moe=True, tests="Qwen3-MoE, 6 experts top-3, "
                          "norm_topk_prob false (weights not renormalised), decoder_sparse_step 2 "
                          "(layer 1 MoE, layers 0 and 2 dense), hidden 48, 6 heads / 2 KV, "
                          "head_dim 8, vocab 417"),
    "gemma3_odd": dict(make=gemma3_odd, offset_norm=True, small_embed=True, tests="Gemma 3 text, 7 layers with "
                       "irregular layer_types (s,f,s,s,f,s,f), sliding_window 5, "
                       "query_pre_attn_scalar 20 (scale != 1/sqrt(head_dim 28)), 2 heads / 1 KV, "
                       "hidden 56, rope sliding default 1e4 / full linear x4 theta 1e6, "
                       "final_logit_softcapping 15, vocab 392"),
    "gemma4_odd_moe": dict(make=gemma4_odd_moe, moe=True, media=G4_MEDIA, small_embed=True,
                           tests="Gemma4ForConditionalGeneration text-only, hidden 48, 7 layers "
                           "(s,s,s,f,s,s,f), sliding head_dim 16 / 3 heads / 1 KV, full head_dim "
                           "32 / 1 KV with attention_k_eq_v, proportional rope prf 0.25 on full "
                           "layers, MoE 5 experts top-2 moe_intermediate 20 beside a dense MLP of "
                           "88, sliding_window 6, softcap 30, vocab 448, one image placeholder "
                           "id (446) in the prompt (embedded as pad id 0)"),
    "gemma4_ple_odd": dict(make=gemma4_ple_odd, tests="Gemma4ForCausalLM with per-layer "
                           "embeddings (hidden_size_per_layer_input 8), num_kv_shared_layers 3 "
                           "(layers 5,6,7 reuse K/V of layers 2 and 4), use_double_wide_mlp "
                           "(intermediate 144 in the shared layers, 72 elsewhere), 8 layers "
                           "(s,s,f,s,s,f,s,f), hidden 40, 2 heads / 1 KV, head_dim 20, full "
                           "head_dim 40, sliding_window 7, softcap 30, vocab 401"),
    "phi3_partial": dict(make=phi3_partial, rope_trace=True, tests="Phi-3 fused qkv/gate_up, "
                         "partial_rotary_factor 0.75 (12 of 16 lanes rotate), longrope with "
                         "original_max_position_embeddings 50: short factors while total length "
                         "<= 50, long factors afterwards (switch mid-generation), attention "
                         "factor from max_position_embeddings 256 / 50, vocab 430"),
    "mistral_odd": dict(make=mistral_odd, rope_trace=True, tests="Mistral sliding_window 5, "
                        "hidden 40, 5 heads / 1 KV, head_dim 8, dynamic NTK rope factor 2 with "
                        "max_position_embeddings 48 (scaling starts during generation), "
                        "vocab 511"),
}


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


def uniform(shape, lo, hi, gen):
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def weight_std(name, shape, ple_dim, small_embed):
    """Spread chosen so logits are O(1..5) and routing/attention are decisive, not uniform."""
    fan_in = shape[-1]
    if "embed_tokens_per_layer" in name:
        return 1.0 / math.sqrt(ple_dim)  # times sqrt(ple_dim) in the model -> unit RMS
    if "embed_tokens" in name or "lm_head" in name:
        # Tied models with a large input embedding just repeat their input token (the final
        # hidden state still points at it); those get a small embedding and a large final norm.
        return (0.25 if small_embed else 2.0) / math.sqrt(fan_in)
    if name.endswith("router.proj.weight"):
        return 4.0  # Gemma 4 router input has RMS H^-1/2
    if name.endswith("mlp.gate.weight"):
        return 3.0 / math.sqrt(fan_in)  # Qwen3-MoE router
    return 1.0 / math.sqrt(fan_in)


def is_final_norm(name):
    return name.endswith(".norm.weight") and "layers." not in name


def randomize(model, seed, offset_norm, small_embed, ple_dim, log):
    gen = torch.Generator().manual_seed(seed)
    unusual = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if small_embed and is_final_norm(name):
                    # 6..10 in effect, so logits stay O(2) with the small tied embedding.
                    v = uniform(p.shape, 5.0, 9.0, gen) if offset_norm else uniform(
                        p.shape, 6.0, 10.0, gen)
                elif "norm" in name:
                    # Gemma 2/3 store norm weights as offsets (used as 1 + w).
                    v = uniform(p.shape, -0.4, 0.4, gen) if offset_norm else uniform(
                        p.shape, 0.6, 1.4, gen)
                elif name.endswith(".bias"):
                    v = torch.randn(p.shape, generator=gen) * 0.3
                else:  # router.scale, router.per_expert_scale, anything else 1-D
                    v = uniform(p.shape, 0.5, 1.5, gen)
                    if not name.endswith(("router.scale", "router.per_expert_scale")):
                        unusual.append(name)
            else:
                v = torch.randn(p.shape, generator=gen) * weight_std(name, p.shape, ple_dim,
                                                                     small_embed)
            p.copy_(bf16(v))
        for name, b in model.named_buffers():
            if name.endswith("layer_scalar"):
                b.copy_(bf16(uniform(b.shape, 0.5, 1.5, gen)))
    if unusual:
        log(f"  note: 1-D parameters randomised as scales: {unusual}")


# ----------------------------------------------------------------------------------------------
# Reference computation
# ----------------------------------------------------------------------------------------------


def make_prompt(seed, vocab, media):
    rng = random.Random(seed)
    banned = set(media.values()) if media else set()
    ids = []
    while len(ids) < PROMPT_LEN:
        t = rng.randrange(3, vocab)
        if t not in banned:
            ids.append(t)
    if media:
        ids[17] = media["image_token_id"]
    return ids


def rope_snapshot(model):
    for name, m in model.named_modules():
        if name.endswith("rotary_emb"):
            inv = getattr(m, "inv_freq", None)
            if inv is not None:
                return [float(x) for x in inv.flatten()]
    return None


def add_router_hooks(model, k, gaps):
    """Record the smallest gap between the k-th and (k+1)-th router logit of every token."""
    hooks = []

    def hook(mod, args):
        x = args[0].reshape(-1, mod.weight.shape[1]).float()
        logits = torch.nn.functional.linear(x, mod.weight.float())
        top = torch.topk(logits, k + 1, dim=-1).values
        gaps.append(float((top[:, k - 1] - top[:, k]).min()))

    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if name.endswith(("mlp.gate", "router.proj")) and w is not None and w.dim() == 2:
            hooks.append(m.register_forward_pre_hook(hook))
    return hooks


def run_reference(model, prompt, trace_rope):
    ids = torch.tensor([prompt])
    inv_steps = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        logits_prompt = out.logits[0].float().clone()
        cache = out.past_key_values
        steps = [logits_prompt[-1].clone()]
        greedy = [int(torch.argmax(steps[0]))]
        if trace_rope:
            inv_steps.append(rope_snapshot(model))
        for k in range(1, STEPS):
            pos = len(prompt) + k - 1
            out = model(input_ids=torch.tensor([[greedy[-1]]]), past_key_values=cache,
                        use_cache=True, position_ids=torch.tensor([[pos]]))
            cache = out.past_key_values
            row = out.logits[0, -1].float().clone()
            steps.append(row)
            greedy.append(int(torch.argmax(row)))
            if trace_rope:
                inv_steps.append(rope_snapshot(model))
    return logits_prompt, torch.stack(steps), greedy, inv_steps


def full_forward_check(model, prompt, greedy, steps, logits_prompt):
    seq = torch.tensor([prompt + greedy[:-1]])
    with torch.no_grad():
        full = model(input_ids=seq, use_cache=False).logits[0].float()
        per_step = (full[len(prompt) - 1:] - steps).abs().amax(dim=-1)
        cached_vs_full = [float(x) for x in per_step]
        # Re-run the bare prompt after the long forward: shows whether a stateful rope
        # (dynamic NTK) goes back to its original table.
        again = model(input_ids=torch.tensor([prompt]), use_cache=False).logits[0].float()
        rerun = float((again - logits_prompt).abs().max())
    return cached_vs_full, rerun


def top1_margin(rows):
    top2 = torch.topk(rows, 2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


# ----------------------------------------------------------------------------------------------
# One fixture
# ----------------------------------------------------------------------------------------------


def write_f32(path, t):
    buf = array.array("f", t.contiguous().flatten().tolist())
    if sys.byteorder != "little":
        buf.byteswap()
    with open(path, "wb") as f:
        buf.tofile(f)


def text_config(cfg):
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def check_roundtrip(orig_sd, loaded, log):
    sd = loaded.state_dict()
    worst, missing = 0.0, []
    for k, v in orig_sd.items():
        if k not in sd:
            missing.append(k)
            continue
        worst = max(worst, float((sd[k].float() - v).abs().max()))
    extra = [k for k in sd if k not in orig_sd]
    if missing or extra:
        log(f"  state_dict keys missing after reload: {missing}; new: {extra}")
    if worst != 0.0:
        raise RuntimeError(f"reloaded weights differ from the generated ones by {worst}")


def describe_file(path, log):
    from safetensors import safe_open

    total, dtypes, names = 0, set(), []
    with safe_open(path, framework="pt") as f:
        for k in sorted(f.keys()):
            t = f.get_tensor(k)
            dtypes.add(str(t.dtype))
            total += t.numel()
            names.append(f"{k} {list(t.shape)}")
    log(f"  tensors ({len(names)}, {total} values, dtypes {sorted(dtypes)}):")
    for n in names:
        log(f"    {n}")
    if dtypes != {"torch.bfloat16"}:
        raise RuntimeError(f"unexpected dtypes in {path}: {dtypes}")


def attempt(name, spec, seed, workdir, log):
    cls, cfg = spec["make"]()
    tcfg = text_config(cfg)
    vocab = tcfg.vocab_size
    torch.manual_seed(seed)
    model = cls(cfg)
    model.eval()
    model.float()
    ple_dim = getattr(tcfg, "hidden_size_per_layer_input", 0) or 1
    randomize(model, seed, spec.get("offset_norm", False), spec.get("small_embed", False),
              ple_dim, log)
    orig_sd = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    model.to(torch.bfloat16)
    model.save_pretrained(workdir)
    del model

    loaded = cls.from_pretrained(workdir, dtype=torch.float32, attn_implementation="eager")
    loaded.eval()
    check_roundtrip(orig_sd, loaded, log)

    prompt = make_prompt(seed, vocab, spec.get("media"))
    gaps = []
    hooks = []
    if spec.get("moe"):
        top_k = getattr(tcfg, "num_experts_per_tok", None) or getattr(tcfg, "top_k_experts")
        hooks = add_router_hooks(loaded, top_k, gaps)
    logits_prompt, steps, greedy, inv_steps = run_reference(loaded, prompt,
                                                            spec.get("rope_trace", False))
    for h in hooks:
        h.remove()
    cached_vs_full, rerun = full_forward_check(loaded, prompt, greedy, steps, logits_prompt)

    res = dict(cls=cls.__name__, cfg=cfg, vocab=vocab, prompt=prompt, greedy=greedy,
               logits_prompt=logits_prompt, steps=steps, inv_steps=inv_steps,
               margin=top1_margin(steps), router_gap=min(gaps) if gaps else None,
               cached_vs_full=max(cached_vs_full), cached_vs_full_steps=cached_vs_full,
               rerun=rerun,
               abs_max=float(max(logits_prompt.abs().max(), steps.abs().max())),
               n_params=sum(v.numel() for v in orig_sd.values()))
    return res


def quality(spec, r):
    ok_margin = r["margin"] >= MIN_MARGIN
    ok_router = (not spec.get("moe")) or (r["router_gap"] is not None
                                          and r["router_gap"] >= MIN_ROUTER_GAP)
    ok_distinct = len(set(r["greedy"])) >= MIN_DISTINCT
    return (ok_margin and ok_router and ok_distinct, ok_margin + ok_router + ok_distinct,
            r["margin"])


def rope_facts(name, r):
    """Describe what the rope tables did during generation (from the buffers HF used)."""
    inv = r["inv_steps"]
    if not inv or inv[0] is None:
        return {}, ""
    first_change = next((i for i in range(1, len(inv)) if inv[i] != inv[0]), len(inv))
    facts = {"rope_inv_freq_steps": inv, "rope_first_changed_step": first_change}
    text = ""
    if name == "phi3_partial":
        text = (f"; longrope: HF picks short_factor while S = max position id + 1 <= 50 and "
                f"long_factor once S > 50: prompt and steps 0..{first_change - 1} use short "
                f"factors, steps {first_change}..23 long ones (rope_inv_freq_steps holds the "
                f"table used for each step); keys already cached are not re-rotated, so a "
                f"single full forward over all 63 tokens (all long) differs: "
                f"max_abs_cached_vs_full is large by design")
    if name == "mistral_odd":
        r_dim = 2 * len(inv[0])
        thetas = [inv_i[1] ** (-r_dim / 2.0) for inv_i in inv]
        errs = []
        for k, th in enumerate(thetas):
            s = PROMPT_LEN + k
            want = 10000.0 if s <= 48 else 10000.0 * (2.0 * s / 48 - 1.0) ** (r_dim / (r_dim - 2))
            errs.append(abs(th - want) / want)
        facts["rope_theta_by_step"] = thetas
        facts["dynamic_formula_max_rel_err"] = max(errs)
        text = (f"; dynamic NTK: HF recomputes theta' = theta*(factor*S/M - (factor-1))^(r/(r-2)) "
                f"with S = max position id + 1 of each forward and M = max_position_embeddings "
                f"48, only when S > M: prompt (S=40) and steps 0..{first_change - 1} use theta "
                f"1e4, step k >= {first_change} uses S = 40+k (rope_theta_by_step; formula "
                f"matches to {max(errs):.1e}); cached keys keep the rotation they were stored "
                f"with, so max_abs_cached_vs_full (one forward over 63 tokens, all at S=63) is "
                f"large by design; re-running the 40-token prompt after that long forward "
                f"differs by {r['rerun']:.3g} (prompt_rerun_max_abs_after_full; 0 means HF went "
                f"back to the base table once S <= M)")
    return facts, text


def make_fixture(name, spec, out_root, attempts, log):
    base_seed = zlib.crc32(name.encode()) & 0x7FFFFFFF
    best, best_q, best_dir = None, None, None
    for a in range(attempts):
        seed = base_seed + 1000 * a
        workdir = os.path.join(out_root, f".{name}.try{a}")
        r = attempt(name, spec, seed, workdir, log)
        q = quality(spec, r)
        log(f"  try {a} seed {seed}: margin {r['margin']:.4f} router_gap {r['router_gap']} "
            f"distinct {len(set(r['greedy']))} cached_vs_full {r['cached_vs_full']:.2e} "
            f"abs_max {r['abs_max']:.2f} params {r['n_params']}")
        r["seed"] = seed
        if best_q is None or q > best_q:
            if best_dir:
                shutil.rmtree(best_dir)
            best, best_q, best_dir = r, q, workdir
        else:
            shutil.rmtree(workdir)
        if q[0]:
            break
    r = best
    final = os.path.join(out_root, name)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(best_dir, final)

    note = NOTE + ("; greedy ids come from a manual loop over the HF cache, one token at a "
                   "time, pure argmax (EOS does not stop it)")
    if spec.get("media"):
        note += ("; the prompt holds image_token_id 446 at index 17: HF embeds it as the pad "
                 "id 0 (no vision tower)")
        hit = sorted(set(r["greedy"]) & set(spec["media"].values()))
        if hit:
            note += f"; greedy ids include media ids {hit}"
    facts, rope_text = rope_facts(name, r)
    note += rope_text
    ref = {
        "model": name,
        "class": r["cls"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "vocab_size": r["vocab"],
        "prompt_ids": r["prompt"],
        "greedy_ids": r["greedy"],
        "logits_prompt_shape": [PROMPT_LEN, r["vocab"]],
        "logits_steps_shape": [STEPS, r["vocab"]],
        "min_top1_margin_in_steps": r["margin"],
        "max_abs_cached_vs_full": r["cached_vs_full"],
        "logits_abs_max": r["abs_max"],
        "note": note,
        "tests": spec["tests"],
        "seed": best["seed"],
        "prompt_rerun_max_abs_after_full": r["rerun"],
        "cached_vs_full_per_step": r["cached_vs_full_steps"],
    }
    if r["router_gap"] is not None:
        ref["min_router_topk_gap"] = r["router_gap"]
    ref.update(facts)
    with open(os.path.join(final, "reference.json"), "w") as f:
        json.dump(ref, f)
    write_f32(os.path.join(final, "logits_prompt.f32"), r["logits_prompt"])
    write_f32(os.path.join(final, "logits_steps.f32"), r["steps"])
    describe_file(os.path.join(final, "model.safetensors"), log)
    sizes = {fn: os.path.getsize(os.path.join(final, fn)) for fn in sorted(os.listdir(final))}
    log(f"  files: {sizes}")
    log(f"  greedy: {r['greedy']}")
    log(f"  chosen: margin {r['margin']:.4f}, router gap {r['router_gap']}, "
        f"cached_vs_full {r['cached_vs_full']:.3e}, rerun {r['rerun']:.3e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--attempts", type=int, default=12)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(4)

    def log(msg):
        print(msg, flush=True)

    log(f"transformers {transformers.__version__} torch {torch.__version__} "
        f"python {sys.version.split()[0]}")
    names = [n for n in FIXTURES if not args.only or n in args.only.split(",")]
    failed = []
    for name in names:
        log(f"== {name}")
        try:
            make_fixture(name, FIXTURES[name], args.out, args.attempts, log)
        except Exception:  # keep going: one bad config must not cost the other fixtures
            failed.append(name)
            log(traceback.format_exc())
    log(f"done; failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
