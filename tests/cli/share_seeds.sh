#!/bin/sh
# Seed-derived model shares (share format cdm-share/2) from cdm-share:
#   party 0's file holds seeds of x_0 and x_1 and no tensor data, parties 1
#   and 2 one full component (x_2) each and one seed; file 1 carries x_1's
#   seed (= party 0's seed_b) and never x_0's, file 2 x_0's (= party 0's
#   seed_a) and never x_1's; every file lists the secrets; the same
#   weights reconstruct as from a second sharing (cdm-share twice, compared
#   with a secure run elsewhere: secure_pipeline.sh, sd_pipeline.sh).
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
[ -x "$B/cdm-share" ] || { echo "FAIL: $B/cdm-share not built"; exit 1; }
$B/cdm-share -o "$T/m" $M 2>"$T/err" || { bad "cdm-share: $(cat "$T/err")"; finish "share seeds"; }
meta() { st_header "$1" | grep -o "\"$2\":\"[^\"]*\"" | cut -d'"' -f4; }
datalen() { echo $(( $(wc -c <"$1") - 8 - $(st_hdr_len "$1") )); }
for i in 0 1 2; do
	[ "$(meta "$T/m.$i" format)" = cdm-share/2 ] || bad "m.$i: format $(meta "$T/m.$i" format)"
	st_header "$T/m.$i" | grep -q '"secrets":"{' || bad "m.$i: no secrets index"
done
k0=$(meta "$T/m.0" seed_a) k1=$(meta "$T/m.0" seed_b)
[ ${#k0} = 32 ] && [ ${#k1} = 32 ] && [ "$k0" != "$k1" ] || bad "party 0 seeds: '$k0' '$k1'"
[ "$(meta "$T/m.1" seed_a)" = "$k1" ] || bad "party 1's seed_a is not x_1's seed"
[ -z "$(meta "$T/m.1" seed_b)" ] || bad "party 1 holds a second seed"
[ "$(meta "$T/m.2" seed_b)" = "$k0" ] || bad "party 2's seed_b is not x_0's seed"
[ -z "$(meta "$T/m.2" seed_a)" ] || bad "party 2 holds a second seed"
grep -q "$k0" "$T/m.1" && bad "x_0's seed reaches party 1"
grep -q "$k1" "$T/m.2" && bad "x_1's seed reaches party 2"
[ "$(datalen "$T/m.0")" = 0 ] || bad "party 0 stores $(datalen "$T/m.0") bytes of tensor data"
st_header "$T/m.1" | grep -q '"conv_in.weight.b"' && ! st_header "$T/m.1" | grep -q '\.a"' ||
	bad "party 1 must store .b (x_2) only"
st_header "$T/m.2" | grep -q '"conv_in.weight.a"' && ! st_header "$T/m.2" | grep -q '\.b"' ||
	bad "party 2 must store .a (x_2) only"
d1=$(datalen "$T/m.1") d2=$(datalen "$T/m.2")
W=$M/diffusion_pytorch_model.safetensors
st_header $W | grep -q '"dtype":"F32"' && ! st_header $W | grep -q '"dtype":"[^F]' ||
	bad "$W: expected F32 weights only"
w=$(( $(datalen $W) * 2 ))  # one U64 per F32 weight
[ "$d1" = "$d2" ] && [ "$d1" = "$w" ] ||
	bad "stored components: $d1 and $d2 bytes, expected one U64 per weight ($w)"
echo "model share data bytes: party 0 $(datalen "$T/m.0"), party 1 $d1, party 2 $d2" \
	"(files $(wc -c <"$T/m.0") $(wc -c <"$T/m.1") $(wc -c <"$T/m.2"))"
# binding every weight as a party does: party 0 expands two components, 1
# and 2 one (the other borrowed from the mapping); all three see the same
# secrets and elements
L=build/tools/share_load
if [ -x $L ]; then
	for i in 0 1 2; do
		$L --touch "$T/m.$i" >"$T/load.$i" 2>&1 || bad "share_load m.$i: $(cat "$T/load.$i")"
	done
	kv() { grep -o " $2=[0-9]*" "$T/load.$1" | cut -d= -f2; }
	n=$(kv 0 elements)
	[ "$n" -gt 0 ] && [ "$(kv 1 elements)" = "$n" ] && [ "$(kv 2 elements)" = "$n" ] ||
		bad "share_load: elements differ: $(cat "$T"/load.*)"
	[ "$(kv 0 stored_bytes)" = 0 ] && [ "$(kv 0 expanded_bytes)" = $((16 * n)) ] ||
		bad "party 0 binds: $(cat "$T/load.0")"
	for i in 1 2; do
		[ "$(kv $i stored_bytes)" = $((8 * n)) ] && [ "$(kv $i expanded_bytes)" = $((8 * n)) ] ||
			bad "party $i binds: $(cat "$T/load.$i")"
	done
else
	bad "$L not built (make tests)"
fi
# party 1's file cut inside its stored component: refused before connecting
$B/cdm-share -o "$T/in" --input --label 3 --seed 1 $M 2>/dev/null || bad "input shares"
cut=$(( 8 + $(st_hdr_len "$T/m.1") + d1 / 2 ))
head -c $cut "$T/m.1" >"$T/cut.1"
fails 1 "party 1's model share cut in its data" "too short|exceeds|beyond|data is|hole" \
	"cut\.1" -- $B/cdm-party --id 1 --peers "$(peers_list $(free_ports 3))" --model "$T/cut.1" \
	--input "$T/in.1" -o "$T/o.1" -q --steps 1 --timeout 3
assert_absent "party 1's model share cut" "$T/o.1"
# a second sharing: new seeds, new x_2
$B/cdm-share -o "$T/n" $M 2>/dev/null || bad "second cdm-share"
[ "$(meta "$T/n.0" seed_a)" != "$k0" ] || bad "two sharings share a seed"
cmp -s "$T/m.1" "$T/n.1" && bad "two sharings give the same file"
finish "share seeds"
