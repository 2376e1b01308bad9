"""Writes public/models/demo/README.md (the model card) from training_log.json and config.json.
Usage: python3 tools/demo-model/model_card.py [public/models/demo]"""
import json, os, sys

d = sys.argv[1] if len(sys.argv) > 1 else "public/models/demo"
log = json.load(open(os.path.join(d, "training_log.json")))
cfg = json.load(open(os.path.join(d, "config.json")))
size = os.path.getsize(os.path.join(d, "model.safetensors")) / 2**20
doms = list(log["samples"])
L = []
w = L.append
w("# MoE Playground demo model")
w("")
w("A tiny Mixture-of-Experts chat model, trained from scratch so that the playground has something")
w("to show without any download: its 16 routed experts specialise visibly by domain. It is a toy — it")
w("knows the shape of each domain's answers, not the facts (its arithmetic is usually wrong).")
w("")
w("## Architecture")
w(f"- `qwen2_moe` (HF transformers `Qwen2MoeForCausalLM`): {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
  f"{cfg['num_attention_heads']} heads / {cfg['num_key_value_heads']} KV heads, vocab {cfg['vocab_size']}, tied embeddings")
w(f"- every layer is MoE: {cfg.get('num_experts') or cfg.get('num_local_experts')} routed experts (FFN {cfg['moe_intermediate_size']}), "
  f"top-{cfg['num_experts_per_tok']}, renormalised (`norm_topk_prob`), plus a shared expert (FFN {cfg['shared_expert_intermediate_size']}) behind a sigmoid gate")
w(f"- {log['parameters']/1e6:.2f} M parameters, stored as f16: `model.safetensors` {size:.1f} MiB, per-expert tensor names as on the hub "
  f"(e.g. `{[n for n in log['tensor_names_sample'] if 'experts.0.' in n][:1]}`)")
w("- tokenizer: byte-level BPE trained on the corpus (HF `tokenizers`), 4096 tokens, specials `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`; ChatML chat template in `tokenizer_config.json`")
w("")
w("## Data (Debian packages only; see `tools/demo-model/make_data.py`)")
w("| domain | source | prompt style |")
w("|---|---|---|")
w("| prose | `fortunes` (BSD fortune files: fortunes, wisdom, literature, people, …) | “Say something wise.” |")
w("| definitions | `wordnet-base` (WordNet 3.0 glosses of nouns, verbs, adjectives) | “Define harbor.” |")
w("| chinese | `fortunes-zh` (chinese, tang300, song100) | “请念一首诗。” |")
w("| code | Python 3.11 standard library functions (`/usr/lib/python3.11/*.py`) | “Write Python code.” |")
w("| arithmetic | generated sums, differences, products of 0–99 | “What is 12 + 30?” |")
w("")
w("## Training (`tools/demo-model/train.py`, seed 0, one NVIDIA H100)")
w(f"AdamW (lr 2e-3, betas 0.9/0.95, weight decay 0.1), 200 warm-up steps then cosine, gradient clipping 1.0, batch 64 × 256 tokens, "
  f"bf16 autocast, loss = cross-entropy + {cfg.get('router_aux_loss_coef')} × HF's load-balancing loss; validation every 200 steps on a held-out 5 %, "
  f"early stop after 3 checks without improvement. Stopped: {log['stop_reason']} after {log['steps']} steps, {log['train_minutes']} min. "
  f"Best validation loss **{log['best_val_loss']}** (nats/token; the best checkpoint is the one shipped).")
w("")
w("| step | train CE | aux loss | val loss | minutes |")
w("|---:|---:|---:|---:|---:|")
for e in log["evals"]:
    w(f"| {e['step']} | {e['train_ce']} | {e['aux']} | {e['val_loss']} | {e['minutes']} |")
w("")
w("## Routing by domain (held-out examples)")
w("Top-3 experts per domain and layer (share of that domain's routed slots), the mean pairwise Jensen–Shannon")
w("divergence between the domains' expert-usage distributions (0 = identical, ln 2 ≈ 0.693 = disjoint), and the")
w("experts that take under 5 % of tokens over all domains (the cold-start threshold; even load is 12.5 %).")
w("")
w("| layer | " + " | ".join(doms) + " | JS | cold (<5 %) |")
w("|---|" + "---|" * len(doms) + "---:|---|")
for l in log["routing"]["layers"]:
    cells = [", ".join(f"{e} ({s:.0%})" for e, s in zip(l["top_experts"][dm], l["top_share"][dm])) for dm in doms]
    w(f"| {l['layer']} | " + " | ".join(cells) + f" | {l['mean_pairwise_js']:.3f} | {len(l['cold_experts'])}: {l['cold_experts']} |")
w("")
w("## Sample replies (greedy, repetition penalty 1.1)")
for dm, s in log["samples"].items():
    w(f"- **{dm}** — {s['prompt']} → {json.dumps(s['reply'], ensure_ascii=False)}")
w("")
w(f"transformers {log['transformers_version']}, torch {log['torch_version']}. Reproduce: `python3 tools/demo-model/make_data.py` here, then "
  "`python3 tools/demo-model/train.py --data .data/demo --out OUT` on the GPU machine (see tools/demo-model/README.md).")
open(os.path.join(d, "README.md"), "w").write("\n".join(L) + "\n")
print("wrote", os.path.join(d, "README.md"))
