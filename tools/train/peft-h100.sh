#!/usr/bin/env bash
# On the H100 machine (one device call; .gpu/ packed as bench/README.md says): PEFT ⇄ engine LoRA.
# 1. PEFT makes an adapter on a fixture; the engine loads it (logits --adapter) and must match PEFT.
# 2. The engine trains a LoRA adapter and writes it in PEFT's form; PEFT loads that and must match the
#    engine's logits with it; tools/train/hf_train.py runs the exported recipe.
set -u
OUT=${1:?out dir}
FIX=${FIX:-tests/fixtures/qwen3_moe_e16k4_step2}
IDS=${IDS:-3,17,42,5,88,1,60,29}
rc=0
python3 tools/train/check_peft.py make --base "$FIX" --out "$OUT/peft_made" --ids "$IDS" || rc=1
bash .gpu/run.sh .gpu/cli.mjs logits --model "$FIX" --adapter "$OUT/peft_made" --tokens "$IDS" --out "$OUT/ours_on_peft.json" || rc=1
python3 tools/train/check_peft.py compare --base "$FIX" --adapter "$OUT/peft_made" --ours "$OUT/ours_on_peft.json" --ids "$IDS" | tee "$OUT/peft_to_engine.json" || rc=1
# 2. The engine trains a LoRA adapter on the demo model (it has a tokenizer) and writes it in PEFT's form
#    with its training_config.json; PEFT must match the engine's logits with it, and hf_train.py must run the recipe.
DEMO=public/models/demo
bash .gpu/run.sh .gpu/cli.mjs train --model "$DEMO" --data "${DATA:-tests/fixtures/train/text.txt}" --mode lora --steps ${STEPS:-5} --seq-len 32 --out "$OUT/engine_made" --json | tail -1 > "$OUT/train.json" || rc=1
bash .gpu/run.sh .gpu/cli.mjs logits --model "$DEMO" --adapter "$OUT/engine_made" --tokens "$IDS" --out "$OUT/ours_on_own.json" || rc=1
python3 tools/train/check_peft.py compare --base "$DEMO" --adapter "$OUT/engine_made" --ours "$OUT/ours_on_own.json" --ids "$IDS" | tee "$OUT/engine_to_peft.json" || rc=1
python3 tools/train/hf_train.py "$OUT/engine_made/training_config.json" --base "$DEMO" --out "$OUT/hf_run" 2>&1 | tail -3 | tee "$OUT/hf_train.log" || rc=1
rm -rf "$OUT/hf_run"/*.safetensors
exit $rc
