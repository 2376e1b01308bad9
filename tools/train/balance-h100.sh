#!/usr/bin/env bash
# Issue #7 demonstrations on the demo model (our CLI, on the H100 machine; .gpu/ packed as bench/README.md says):
# a LoRA fine-tune on a domain the demo never saw (reversing letters), and router-only runs at a high learning
# rate with no balance loss, with Switch (λ 0.5 and 1.0), with the design notes' total (CE + 0.3·sqdev + 0.1·ortho)
# and with DeepSeek-V3's aux-free bias (γ 0.01).
# Usage: bash tools/train/balance-h100.sh $OUT   (writes $OUT/<run>.json summaries and .log step lines)
OUT=${1:?out}
D=$OUT/reverse.jsonl
python3 - "$D" <<'PY'
import json, random, sys
r = random.Random(3)
with open(sys.argv[1], "w") as f:
    for _ in range(600):
        w = "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(3, 7)))
        f.write(json.dumps({"messages": [{"role": "user", "content": f"Reverse the letters of {w}."}, {"role": "assistant", "content": w[::-1]}]}) + "\n")
PY
run() { name=$1; shift; bash .gpu/run.sh .gpu/cli.mjs train --data "$D" "$@" --json 2> "$OUT/$name.log" | tail -1 > "$OUT/$name.json"; echo "$name: $(cat "$OUT/$name.json")"; }
run lora --mode lora --steps 120 --lr 2e-3 --seq-len 48 --val-every 20
run router_none --mode router --balance none --steps 150 --lr 0.05 --seq-len 48 --val-every 25
run router_switch --mode router --balance switch --balance-weight 0.5 --steps 150 --lr 0.05 --seq-len 48 --val-every 25
run router_switch_1 --mode router --balance switch --balance-weight 1.0 --steps 150 --lr 0.05 --seq-len 48 --val-every 25
run router_notes --mode router --balance sqdev --balance-weight 0.3 --ortho 0.1 --steps 150 --lr 0.05 --seq-len 48 --val-every 25
run router_auxfree --mode router --balance auxfree --balance-weight 0.01 --steps 150 --lr 0.05 --seq-len 48 --val-every 25
