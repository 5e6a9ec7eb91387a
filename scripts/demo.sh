#!/bin/sh
# make demo: share the bundled `mnist` model and a user input (a digit and a
# seed), run the three parties on localhost, reveal the PNG.
#   DIGIT=7 SEED=42 STEPS=50 SAMPLER=ddim MODEL=share/models/mnist make demo
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
MODEL=${MODEL:-share/models/mnist}
DIGIT=${DIGIT:-7}
SEED=${SEED:-42}
SAMPLER=${SAMPLER:-ddim}
STEPS=${STEPS:-50}
OUT=${OUT:-out/demo}
mkdir -p "$OUT"
ports=$(sh scripts/free-ports.sh)
start=$(date +%s)
echo "demo: model owner shares $MODEL"
"$BIN/cdm-share" -o "$OUT/model" "$MODEL"
echo "demo: user shares digit $DIGIT, seed $SEED"
"$BIN/cdm-share" -o "$OUT/input" --input --label "$DIGIT" --seed "$SEED" "$MODEL"
echo "demo: three parties on $ports ($SAMPLER, $STEPS steps)"
pids=""
for i in 0 1 2; do
	q=-q; [ $i = 0 ] && q=""
	"$BIN/cdm-party" $q --id $i --peers "$ports" --model "$OUT/model.$i" --input "$OUT/input.$i" \
		--sampler "$SAMPLER" --steps "$STEPS" --stats "$OUT/stats.$i.json" -o "$OUT/out.$i" &
	pids="$pids $!"
done
status=0
for p in $pids; do wait $p || status=$?; done
[ $status = 0 ] || { echo "demo: a party failed (exit $status)" >&2; exit $status; }
echo "demo: user reveals the image from two of the three output shares"
"$BIN/cdm-reveal" -o "$OUT/digit.png" "$OUT/out.0" "$OUT/out.1"
echo "demo: done in $(( $(date +%s) - start )) s: $(pwd)/$OUT/digit.png"
