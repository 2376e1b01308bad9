"""PEFT interop for the engine's LoRA adapters (issue #7), run on the GPU machine with PEFT installed.

  make    --base DIR --out ADIR --ids 1,2,3   a PEFT LoRA adapter on q/k/v/o_proj with random (non-zero)
                                              B, saved with save_pretrained; PEFT's logits for the ids
                                              go to ADIR/peft_logits.json
  compare --base DIR --adapter ADIR --ours FILE --ids 1,2,3 [--tol 1e-4]
                                              loads ADIR with PeftModel.from_pretrained (it may have been
                                              written by the engine), computes the logits and compares
                                              them with FILE ({"logits": [[...] per position]}, what
                                              `npm run cli -- logits --adapter ADIR` writes); exit 1 over tol
"""
import argparse, json, os, sys

import torch
from transformers import AutoModelForCausalLM


def ids_of(s):
    return torch.tensor([[int(x) for x in s.split(",")]])


def base_model(d):
    return AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32).eval()


def make(a):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(7)
    model = get_peft_model(base_model(a.base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], lora_dropout=0.0, bias="none", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    model.eval()
    model.save_pretrained(a.out)
    with torch.no_grad():
        logits = model(ids_of(a.ids)).logits[0]
    json.dump({"logits": logits.tolist()}, open(os.path.join(a.out, "peft_logits.json"), "w"))
    print(f"made {a.out}: {sorted(os.listdir(a.out))}")


def compare(a):
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_model(a.base), a.adapter).eval()
    with torch.no_grad():
        peft_logits = model(ids_of(a.ids)).logits[0]
    ours = torch.tensor(json.load(open(a.ours))["logits"])
    base = base_model(a.base)
    with torch.no_grad():
        base_logits = base(ids_of(a.ids)).logits[0]
    d = (ours - peft_logits).abs().max().item()
    moved = (peft_logits - base_logits).abs().max().item()
    ok = d <= a.tol and moved > 10 * a.tol
    print(json.dumps({"adapter": a.adapter, "max_abs_diff": d, "adapter_moves_logits_by": moved, "tol": a.tol, "ok": ok}))
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--base", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--ids", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--base", required=True)
    c.add_argument("--adapter", required=True)
    c.add_argument("--ours", required=True)
    c.add_argument("--ids", required=True)
    c.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    make(a) if a.cmd == "make" else compare(a)


if __name__ == "__main__":
    main()
