#!/usr/bin/env bash
# On the H100 machine, one device call: our roofline bench, the onnxruntime-web peer and the
# PyTorch reference line (see bench/README.md for how .gpu/ is filled).
set -u
OUT=${1:?out dir}; shift
SHAPES=${SHAPES:-olmoe,qwen3-30b-a3b-8l,olmoe-4l}
FORMATS=${FORMATS:-int4:32,int4:128,int8:32,f32}
xz -dc .gpu/ort.wasm.xz > /tmp/ort.wasm
[ "${OURS:-1}" = 1 ] && bash .gpu/run.sh .gpu/cli.mjs bench --synthetic "$SHAPES" --formats "$FORMATS" --steps ${STEPS:-32} --out "$OUT/ours.json" 2> "$OUT/ours.log"; tail -12 "$OUT/ours.log"
if [ "${PEER:-1}" = 1 ]; then
  timeout 300 bash .gpu/run.sh .gpu/cli.mjs bench --peer ort --synthetic olmoe-4l --ort-wasm /tmp/ort.wasm --steps ${STEPS:-32} --out "$OUT/ort.json" 2> "$OUT/ort.log"; grep -v "^\s*$" "$OUT/ort.log" | grep -v "Shader code" | tail -5
fi
if [ "${TORCH:-1}" = 1 ]; then
  PYTHONUNBUFFERED=1 timeout 200 python tools/bench/torch_reference.py --shapes "${TORCH_SHAPES:-olmoe,olmoe-4l}" --dtypes bfloat16,float32 --out "$OUT/torch.json" > "$OUT/torch.log" 2>&1; tail -3 "$OUT/torch.log" | cut -c1-300
fi
