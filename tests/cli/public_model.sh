#!/bin/sh
# cdm-party --public-model DIR: public weights (a plaintext model folder),
# secret input. DDIM (eta 0, batch 2, labels 3 and 7, x_T from --seed) must
# reveal to an image within 40 dB PSNR of the plaintext cdm-unet-step loop
# from the same x_T, and send fewer bytes in total (three parties) than the
# same run on model shares. Also: the stats say public_model, one party on
# shares and two on the public folder disagree (exit 1, one line), --model
# with --public-model and a missing folder are usage/input errors.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-share cdm-party cdm-reveal cdm-unet-step; do
	[ -x "$B/$t" ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
MS=$(model_shares) || exit 1
STEPS=4

# trio NAME MODE(public|shares|mixed): the three parties, statuses in st0..st2
trio() {
	local name=$1 mode=$2 port i mf
	port=$(free_ports 3)
	for i in 0 1 2; do
		mf="--public-model $M"
		{ [ $mode = shares ] || { [ $mode = mixed ] && [ $i = 0 ]; }; } && mf="--model $MS.$i"
		(exec $B/cdm-party --id $i --peers "$(peers_list $port)" $mf --input "$T/in.$i" \
			-o "$T/$name.out.$i" -q --timeout 10 --sampler ddim --steps $STEPS \
			--stats "$T/$name.stats.$i" 2>"$T/$name.err.$i") &
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
	wait_trio
}
total_bytes() {
	cat "$T/$1".stats.* | grep -o '"bytes_sent": [0-9]*,$' | grep -o '[0-9]*' |
		awk '{ s += $1 } END { printf "%.0f\n", s }'
}

$B/cdm-share -o "$T/in" --input --label 3,7 --seed 4321 --dump-noise "$T/xT" $M 2>"$T/in.err" ||
	{ bad "cdm-share --input: $(cat "$T/in.err")"; finish "public model"; }

trio pub public
if [ "$st0$st1$st2" = 000 ]; then
	cp "$T/xT" "$T/plain"
	for t in $($B/cdm-unet-step -m $M --sampler ddim --steps $STEPS --timesteps); do
		$B/cdm-unet-step -m $M --sampler ddim --steps $STEPS -t $t --label 3,7 \
			<"$T/plain" >"$T/next" && mv "$T/next" "$T/plain" || bad "cdm-unet-step -t $t"
	done
	r=$($B/cdm-reveal -o "$T/pub.st" --psnr "$T/plain" "$T/pub.out.0" "$T/pub.out.1") ||
		bad "cdm-reveal of the public-model run"
	echo "public model: $r"
	db=${r#psnr_db=}; db=${db%% *}
	[ "$db" = inf ] || awk -v d="$db" 'BEGIN { exit !(d >= 40) }' || bad "PSNR $db dB < 40 dB"
	for i in 0 1 2; do
		grep -q '"public_model": true' "$T/pub.stats.$i" || bad "stats $i lack public_model true"
	done
	trio sec shares
	if [ "$st0$st1$st2" = 000 ]; then
		bp=$(total_bytes pub) bs=$(total_bytes sec)
		echo "bytes (3 parties, $STEPS steps): public model $bp, model shares $bs"
		awk -v p="$bp" -v s="$bs" 'BEGIN { exit !(p > 0 && p < s) }' || bad "public model sent $bp bytes, shares $bs"
	else
		bad "run on model shares failed: $(cat "$T"/sec.err.*)"
	fi
else
	bad "public-model run failed: $(cat "$T"/pub.err.*)"
fi

trio mixed mixed
trio_refused mixed "mixed models" "disagrees on model_sharing" "public:"

fails 1 "--model with --public-model" "exclude each other" -- $B/cdm-party --id 0 \
	--peers "$(peers_list 30000)" --model "$MS.0" --public-model $M --input "$T/in.0" -o "$T/x.0"
port=$(free_ports 3)
fails 1 "missing public model folder" "$T/nope" -- $B/cdm-party --id 0 \
	--peers "$(peers_list $port)" --public-model "$T/nope" --input "$T/in.0" -o "$T/x.0" \
	--timeout 2
assert_absent "missing public model folder" "$T/x.0"

finish "public model"
