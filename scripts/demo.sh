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
# Three free loopback ports (the kernel picks them; parties retry while the
# others start, so the order of start-up does not matter).
ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(",".join("127.0.0.1:%d"%x.getsockname()[1] for x in s))' 2>/dev/null ||
	echo "127.0.0.1:$((20000 + $$ % 20000)),127.0.0.1:$((20001 + $$ % 20000)),127.0.0.1:$((20002 + $$ % 20000))")
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
