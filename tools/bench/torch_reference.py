"""PyTorch eager reference line for bench/: the same real-size shapes as bench/synth.ts (random
weights), run by HF transformers on the same GPU. Prints one JSON object.

    python tools/bench/torch_reference.py --shapes olmoe --dtypes bfloat16,float32 --out ref.json
"""
import argparse
import json
import time

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

# Kept in step with SHAPES in bench/synth.ts.
SHAPES = {
    "olmoe": dict(model_type="olmoe", vocab_size=50304, hidden_size=2048, intermediate_size=1024, num_hidden_layers=16,
                  num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096, rope_theta=10000.0,
                  num_experts=64, num_experts_per_tok=8, norm_topk_prob=False, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "olmoe-4l": dict(model_type="olmoe", vocab_size=50304, hidden_size=2048, intermediate_size=1024, num_hidden_layers=4,
                     num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096, rope_theta=10000.0,
                     num_experts=64, num_experts_per_tok=8, norm_topk_prob=False, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "qwen3-30b-a3b-8l": dict(model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
                             moe_intermediate_size=768, num_hidden_layers=8, num_attention_heads=32, num_key_value_heads=4,
                             head_dim=128, max_position_embeddings=40960, rope_theta=1000000.0, num_experts=128,
                             num_experts_per_tok=8, norm_topk_prob=True, rms_norm_eps=1e-6, tie_word_embeddings=False,
                             decoder_sparse_step=1, mlp_only_layers=[]),
}


def sync_time(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t, out


@torch.inference_mode()
def bench(shape, dtype, contexts, prefills, steps):
    cfg = dict(SHAPES[shape])
    mt = cfg.pop("model_type")
    config = AutoConfig.for_model(mt, **cfg)
    config.max_position_embeddings = max(config.max_position_embeddings, max(contexts + prefills))
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=getattr(torch, dtype))
    model.eval()
    V = config.vocab_size
    ids = lambda n, salt: torch.tensor([[(i * 7919 + salt * 104729) % V for i in range(n)]], device="cuda")
    model(ids(16, 1))  # warm-up
    prefill = []
    for n in prefills:
        dt, _ = sync_time(lambda: model(ids(n, 2), use_cache=False))
        prefill.append({"tokens": n, "tokensPerSecond": n / dt})
    decode = []
    for c in contexts:
        s = min(steps, c - 1)
        cache = DynamicCache(config=config)
        out = model(ids(c - s, 3), past_key_values=cache, use_cache=True)
        nxt = out.logits[:, -1:].argmax(-1)

        def run():
            nonlocal nxt
            for _ in range(s):
                o = model(nxt, past_key_values=cache, use_cache=True)
                nxt = o.logits[:, -1:].argmax(-1)

        dt, _ = sync_time(run)
        decode.append({"context": c, "tokensPerSecond": s / dt, "msPerToken": 1000 * dt / s})
    del model
    torch.cuda.empty_cache()
    return {"shape": shape, "dtype": dtype, "prefill": prefill, "decode": decode}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="olmoe")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--contexts", default="128,1024,4096")
    ap.add_argument("--prefills", default="128,512,2048")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--out")
    a = ap.parse_args()
    ints = lambda s: [int(x) for x in s.split(",")]
    rows = []
    for shape in a.shapes.split(","):
        for dt in a.dtypes.split(","):
            r = bench(shape, dt, ints(a.contexts), ints(a.prefills), a.steps)
            print(json.dumps(r), flush=True)
            rows.append(r)
    res = {"torch": torch.__version__, "transformers": transformers.__version__, "gpu": torch.cuda.get_device_name(),
           "experts_implementation": "transformers default (eager)", "rows": rows}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
