"""Trains the built-in demo MoE model (qwen2_moe, 16 experts top-2 + a shared expert) on the corpus
from make_data.py, on the GPU machine. Seeded; stops early after 3 validation checks without
improvement, or at --max-minutes. Writes the checkpoint, tokenizer, model card and training log.

Usage (GPU machine, repo root): python3 tools/demo-model/train.py --data .data/demo --out OUT_DIR
"""
import argparse, gzip, itertools, json, math, os, random, shutil, time

import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, Qwen2MoeConfig

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
PROMPTS = {
    "prose": "Say something wise.",
    "definitions": "Define harbor.",
    "chinese": "请念一首诗。",
    "code": "Write Python code.",
    "arithmetic": "What is 12 + 30?",
}


def load(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(l) for l in f]


def train_tokenizer(texts, vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    return tok


def pack(ids_list, seq):
    flat = list(itertools.chain.from_iterable(ids_list))
    n = len(flat) // (seq + 1)
    return torch.tensor(flat[: n * (seq + 1)]).view(n, seq + 1)


def router_capture(model):
    caps, hooks = {}, []
    for name, mod in model.named_modules():
        parts = name.split(".")
        if len(parts) == 5 and parts[0] == "model" and parts[1] == "layers" and parts[3] == "mlp" and parts[4] == "gate":
            layer = int(parts[2])
            w = mod.weight
            def pre(m, args, kwargs, layer=layer, w=w):
                x = args[0] if args else next(iter(kwargs.values()))
                caps[layer] = (x.reshape(-1, w.shape[1]).float() @ w.float().t()).detach()
            hooks.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
    return caps, hooks


def js(p, q):
    m = 0.5 * (p + q)
    kl = lambda a, b: float((a * (torch.log(a + 1e-12) - torch.log(b + 1e-12))).sum())
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-minutes", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=200)
    a = ap.parse_args()
    t0 = time.time()
    random.seed(a.seed); torch.manual_seed(a.seed); torch.cuda.manual_seed_all(a.seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    print("transformers", transformers.__version__, "torch", torch.__version__, dev)

    train_rows, val_rows = load(os.path.join(a.data, "train.jsonl.gz")), load(os.path.join(a.data, "val.jsonl.gz"))
    tok = train_tokenizer([r["text"] for r in train_rows], a.vocab)
    V = tok.get_vocab_size()
    sid = {s: tok.token_to_id(s) for s in SPECIAL}
    enc = lambda rows: [tok.encode(r["text"]).ids for r in rows]
    train = pack(enc(train_rows), a.seq)
    val = pack(enc(val_rows), a.seq)
    print(f"tokenizer vocab {V}; train {train.numel()/1e6:.2f} M tokens in {len(train)} rows, val {val.numel()/1e3:.0f} k")

    cfg = Qwen2MoeConfig(
        vocab_size=V, hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, moe_intermediate_size=128, shared_expert_intermediate_size=256, num_experts=16,
        num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, tie_word_embeddings=True, rope_theta=10000.0,
        rms_norm_eps=1e-6, output_router_logits=True, router_aux_loss_coef=0.05, bos_token_id=None,
        eos_token_id=sid["<|im_end|>"], pad_token_id=sid["<|endoftext|>"], use_sliding_window=False,
    )
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=torch.float32).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params/1e6:.2f} M parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), weight_decay=0.1)
    est_steps = 6000
    warm = 200
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / est_steps)))))

    def evaluate():
        model.eval(); tot, n = 0.0, 0
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            for i in range(0, len(val), a.batch):
                b = val[i : i + a.batch].to(dev)
                out = model(b[:, :-1], output_router_logits=False)
                logits = out.logits.float()
                loss = F.cross_entropy(logits.reshape(-1, V), b[:, 1:].reshape(-1), reduction="sum")
                tot += float(loss); n += b[:, 1:].numel()
        model.train(); return tot / n

    log = dict(evals=[], seed=a.seed)
    best, best_state, bad, step = float("inf"), None, 0, 0
    g = torch.Generator().manual_seed(a.seed)
    model.train()
    stop_reason = "time limit"
    while True:
        perm = torch.randperm(len(train), generator=g)
        for i in range(0, len(perm) - a.batch + 1, a.batch):
            b = train[perm[i : i + a.batch]].to(dev)
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                out = model(b[:, :-1], output_router_logits=True)
                ce = F.cross_entropy(out.logits.float().reshape(-1, V), b[:, 1:].reshape(-1))
                aux = out.aux_loss if out.aux_loss is not None else torch.zeros((), device=dev)
                loss = ce + cfg.router_aux_loss_coef * aux
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); step += 1
            if step % a.eval_every == 0:
                vl = evaluate()
                el = time.time() - t0
                log["evals"].append(dict(step=step, train_ce=round(float(ce), 4), aux=round(float(aux), 4), val_loss=round(vl, 4), lr=sched.get_last_lr()[0], minutes=round(el / 60, 2)))
                print(f"step {step} train_ce {float(ce):.3f} aux {float(aux):.3f} val {vl:.3f} gn {float(gn):.2f} {el/60:.1f} min", flush=True)
                if vl < best - 1e-4:
                    best, bad = vl, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad += 1
                    if bad >= 3:
                        stop_reason = f"early stop: 3 evals without improvement (best {best:.4f})"
                        break
            if time.time() - t0 > a.max_minutes * 60 or step >= est_steps:
                stop_reason = "step budget" if step >= est_steps else "time limit"
                break
        else:
            continue
        break
    if best_state is not None:
        model.load_state_dict(best_state)
    train_minutes = (time.time() - t0) / 60
    print(f"stopped: {stop_reason}; {step} steps, {train_minutes:.1f} min, best val {best:.4f}")
    model.eval()

    # Per-domain routing on held-out examples.
    caps, hooks = router_capture(model)
    E, L = cfg.num_experts, cfg.num_hidden_layers
    usage = {}
    for dom in PROMPTS:
        rows = [r for r in val_rows if r["domain"] == dom][:200]
        counts = torch.zeros(L, E)
        ntok = 0
        with torch.no_grad():
            for r in rows:
                ids = torch.tensor([tok.encode(r["text"]).ids[: a.seq]], device=dev)
                model(ids)
                for l in range(L):
                    top = torch.topk(torch.softmax(caps[l], -1), 2, dim=-1).indices.cpu()
                    counts[l] += torch.bincount(top.reshape(-1), minlength=E).float()
                ntok += ids.shape[1]
        usage[dom] = dict(counts=counts, tokens=ntok)
    for h in hooks:
        h.remove()
    routing = dict(layers=[])
    doms = list(PROMPTS)
    for l in range(L):
        dist = {d: usage[d]["counts"][l] / usage[d]["counts"][l].sum() for d in doms}
        pairs = [js(dist[x], dist[y]) for i, x in enumerate(doms) for y in doms[i + 1 :]]
        allc = sum(usage[d]["counts"][l] for d in doms)
        tokens = sum(usage[d]["tokens"] for d in doms)
        cold = [int(e) for e in range(E) if allc[e] / tokens < 0.05]
        routing["layers"].append(dict(
            layer=l,
            top_experts={d: [int(e) for e in torch.topk(dist[d], 3).indices] for d in doms},
            top_share={d: [round(float(v), 3) for v in torch.topk(dist[d], 3).values] for d in doms},
            mean_pairwise_js=round(sum(pairs) / len(pairs), 4),
            overall_share=[round(float(x), 4) for x in (allc / allc.sum())],
            cold_experts=cold,
        ))
        print(f"layer {l}: JS {routing['layers'][-1]['mean_pairwise_js']:.3f} cold {cold} top {routing['layers'][-1]['top_experts']}")

    samples = {}
    for dom, prompt in PROMPTS.items():
        text = f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
        ids = torch.tensor([tok.encode(text).ids], device=dev)
        with torch.no_grad():
            outg = model.generate(ids, max_new_tokens=48, do_sample=False, repetition_penalty=1.1, eos_token_id=sid["<|im_end|>"], pad_token_id=sid["<|endoftext|>"])
        samples[dom] = dict(prompt=prompt, reply=tok.decode(outg[0, ids.shape[1]:].tolist()).replace("<|im_end|>", ""))
        print(f"[{dom}] {prompt} → {samples[dom]['reply']!r}")

    os.makedirs(a.out, exist_ok=True)
    tmp = a.out + "_tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(tmp, f), os.path.join(a.out, f))
    tok.save(os.path.join(a.out, "tokenizer.json"))
    json.dump(dict(tokenizer_class="PreTrainedTokenizerFast", bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                   unk_token=None, model_max_length=1024, clean_up_tokenization_spaces=False, chat_template=CHAT_TEMPLATE),
              open(os.path.join(a.out, "tokenizer_config.json"), "w"), indent=2, ensure_ascii=False)
    from safetensors import safe_open
    with safe_open(os.path.join(a.out, "model.safetensors"), "pt") as f:
        names = sorted(f.keys())
    log.update(stop_reason=stop_reason, steps=step, train_minutes=round(train_minutes, 2), best_val_loss=round(best, 4), parameters=n_params,
               vocab=V, routing=routing, samples=samples, tensor_names_sample=[n for n in names if "layers.0." in n][:12],
               transformers_version=transformers.__version__, torch_version=torch.__version__)
    json.dump(log, open(os.path.join(a.out, "training_log.json"), "w"), indent=1, ensure_ascii=False)
    print("saved", os.listdir(a.out), f"{os.path.getsize(os.path.join(a.out, 'model.safetensors'))/1e6:.1f} MB")


if __name__ == "__main__":
    main()
