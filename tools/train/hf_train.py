"""Runs a MoE Playground training recipe (src/engine/train/recipe.ts) with PyTorch + transformers (+ PEFT for
LoRA): the same token ids and labels, mode, optimizer, schedule, accumulation, validation / early stopping and
balance loss as the in-tab run, on a GPU you have. Writes the result (PEFT adapter, or the changed model) and a
summary with the CLI's keys.

  python3 tools/train/hf_train.py RECIPE.json --out DIR [--device cuda]

Balance losses follow losses.ts: per MoE layer, scores p = softmax(router logits) over all experts, f_i = share
of the T·k routed slots (no gradient), P_i = mean score; switch = E·Σ f_i·P_i, sqdev = Σ (P_i − 1/E)²,
kl = Σ p̄_i log(p̄_i·E) with p̄ = P/ΣP; weight · L summed over layers, added to the mean cross-entropy.
"""
import argparse, json, math, os, random, time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def lr_at(r, step):
    peak, w, total, floor = r["optimizer"]["lr"], r["schedule"]["warmup_steps"], r["steps"], r["schedule"]["min_lr_ratio"]
    if step < w:
        return peak * (step + 1) / w
    span = total - 1 - w
    progress = min(1.0, (step - w) / span) if span > 0 else (0.0 if step < total else 1.0)
    lo = peak * floor
    return lo + (peak - lo) * 0.5 * (1 + math.cos(math.pi * progress))


def balance_term(name, logits, k):
    p = logits.float().softmax(-1)  # [T, E]
    T, E = p.shape
    with torch.no_grad():
        idx = p.topk(k, dim=-1).indices
        f = torch.zeros(E, device=p.device).scatter_add_(0, idx.reshape(-1), torch.ones(idx.numel(), device=p.device)) / idx.numel()
    P = p.mean(0)
    if name == "switch":
        return E * (f * P).sum()
    if name == "sqdev":
        return ((P - 1.0 / E) ** 2).sum()
    if name == "kl":
        q = P / P.sum()
        return (q * torch.log(q.clamp_min(1e-9) * E)).sum()
    raise SystemExit(f"recipe: unknown balance loss {name!r}")


def trainable(model, r):
    if r["mode"] == "lora":
        from peft import LoraConfig, get_peft_model

        l = r["lora"]
        model = get_peft_model(model, LoraConfig(r=l["r"], lora_alpha=l["lora_alpha"], target_modules=l["target_modules"], lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
    elif r["mode"] == "router":
        for n, p in model.named_parameters():
            p.requires_grad_(n.endswith("mlp.gate.weight") or n.endswith("block_sparse_moe.gate.weight") or ".router." in n)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--base", default=None, help="the base model's folder here, when the recipe's path was another machine's")
    a = ap.parse_args()
    r = json.load(open(a.recipe))
    if r.get("format") != "moe-playground-training-recipe" or r.get("version") != 1:
        raise SystemExit(f"{a.recipe}: not a version-1 MoE Playground training recipe")
    # Options this runner does not reproduce: refuse rather than train something else than the tab did.
    missing = [k for k in ("z_loss_weight", "ortho_weight", "router_noise", "expert_dropout") if r.get(k, 0)]
    if missing:
        raise SystemExit(f"{a.recipe}: {', '.join(missing)} set; this runner does not implement them yet (set them to 0 in the tab)")
    here = os.path.dirname(os.path.abspath(a.recipe))
    train = load_jsonl(os.path.join(here, r["data"]["train"]))
    val = load_jsonl(os.path.join(here, r["data"]["validation"])) if r["data"].get("validation") else []
    torch.manual_seed(r["seed"])
    rnd = random.Random(r["seed"])
    dev = torch.device(a.device)
    model = AutoModelForCausalLM.from_pretrained(a.base or r["base_model"], attn_implementation="eager", dtype=torch.float32).to(dev)
    k = model.config.num_experts_per_tok
    model = trainable(model, r)
    params = [p for p in model.parameters() if p.requires_grad]
    o = r["optimizer"]
    opt = torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"], weight_decay=o["weight_decay"])
    bal = r.get("balance")

    def loss_of(ex, with_balance):
        ids = torch.tensor([ex["input_ids"]], device=dev)
        labels = torch.tensor(ex["labels"], device=dev)
        out = model(input_ids=ids, output_router_logits=bool(with_balance and bal))
        ce = F.cross_entropy(out.logits[0].float(), labels, ignore_index=-100)
        b = torch.zeros((), device=dev)
        if with_balance and bal and out.router_logits is not None:
            for rl in out.router_logits:
                b = b + bal["weight"] * balance_term(bal["name"], rl, k)
        return ce, b

    order, pos = list(range(len(train))), len(train)
    losses, val_losses, best, bad, stopped = [], [], None, 0, False
    t0 = time.time()
    for step in range(r["steps"]):
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(r, step)
        opt.zero_grad(set_to_none=True)
        ce_sum = 0.0
        for _ in range(r["grad_accum"]):
            if pos >= len(order):
                rnd.shuffle(order)
                pos = 0
            ce, b = loss_of(train[order[pos]], True)
            pos += 1
            ((ce + b) / r["grad_accum"]).backward()
            ce_sum += ce.item()
        if o["max_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, o["max_grad_norm"])
        opt.step()
        losses.append(ce_sum / r["grad_accum"])
        every = r["eval"]["every"]
        if val and every and (step + 1) % every == 0:
            model.eval()
            with torch.no_grad():
                v = sum(loss_of(ex, False)[0].item() for ex in val) / len(val)
            val_losses.append({"step": step + 1, "loss": v})
            if best is None or v < best:
                best, bad = v, 0
            else:
                bad += 1
                if bad >= r["eval"]["patience"]:
                    stopped = True
                    break
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out)
    summary = {"loss_first": losses[0], "loss_last": losses[-1], "val_loss_best": best, "steps": len(losses), "stopped_early": stopped,
               "mode": r["mode"], "losses": losses, "val_losses": val_losses, "seconds": time.time() - t0}
    json.dump(summary, open(os.path.join(a.out, "summary.json"), "w"))
    print(json.dumps({kk: vv for kk, vv in summary.items() if kk not in ("losses", "val_losses")}))


if __name__ == "__main__":
    main()
