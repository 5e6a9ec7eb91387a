#!/bin/sh
# cdm-party --threads: a secure DDIM run (2 steps, mnist: its convolutions
# are large enough to be split, mnist-tiny's are not) with
# --threads 2 and with --threads 3 must write output shares byte-identical
# to those of --threads 1 (the pool only splits ring GEMMs and PRG
# expansion into disjoint ranges; --test-noise-seed fixes every random
# stream of the run); bad counts exit 1 with one line.
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
M=share/models/mnist
[ -f $M/config.json ] || { echo "FAIL: no bundled mnist model"; exit 1; }
$B/cdm-share -o "$T/m" $M 2>"$T/share.err" || { bad "cdm-share: $(cat "$T/share.err")"; finish secure_threads; }
MS=$T/m
input_shares "$T/in" 3 42 || finish secure_threads

# run NAME THREADS: the three parties, 2 DDIM steps
run() {
	local port i
	port=$(free_ports 3)
	for i in 0 1 2; do
		party_bg $i "$port" "$MS.$i" "$T/in.$i" "$T/$1.out.$i" "$T/$1.err.$i" \
			--steps 2 --timeout 60 --threads "$2" \
			--test-noise-seed 000102030405060708090a0b0c0d0e0f
	done
	trio_ok "$1" "$T/$1.err"
}

run t1 1
run t2 2
run t3 3
for i in 0 1 2; do
	[ -s "$T/t1.out.$i" ] || { bad "no output share $i with --threads 1"; continue; }
	cmp -s "$T/t1.out.$i" "$T/t2.out.$i" || bad "share $i: --threads 2 differs from --threads 1"
	cmp -s "$T/t1.out.$i" "$T/t3.out.$i" || bad "share $i: --threads 3 differs from --threads 1"
done
# the shares are shares of an image, not empty or constant files
cmp -s "$T/t1.out.0" "$T/t1.out.1" && bad "shares 0 and 1 are identical"

for v in 0 65 x; do
	run_cmd $B/cdm-party --id 0 --peers "$(peers_list 40000)" --model "$MS.0" \
		--input "$T/in.0" -o "$T/bad.out" --threads $v
	assert_exit 1 "--threads $v"
	assert_one_line "$T/stderr" "--threads $v" "--threads: '$v' is not an integer in 1\.\.64"
	[ -e "$T/bad.out" ] && bad "--threads $v: output written"
done
finish secure_threads
