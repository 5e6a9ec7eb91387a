#!/bin/sh
# TLS between three hosts, and TLS refusals, with the real tools.
#  - Three network namespaces (one per party) plus a hub namespace holding a
#    bridge, joined by veth pairs; addresses 10.79.0.1-3/24 exist only inside
#    these namespaces, nothing is added to the caller's. Certificates from
#    scripts/make-certs.sh. A 1-step secure run over TLS across them
#    succeeds and reveals; the same over plain TCP succeeds but every party
#    warns once (non-loopback address without TLS); an expired certificate
#    is refused across the namespaces too. Skipped (with a message) when not
#    root or without iproute2; the namespaces are always deleted (trap).
#  - On loopback (no root needed): a certificate from another CA, a party
#    trusting another CA, an expired certificate (right CA), TLS on one side
#    only: every party exits 2 with one line naming the TLS failure; another
#    party's certificate or a key that does not match: that party exits 1
#    naming the file, the others exit 2 (nobody to talk to).
CDM_CLI_LIB=1 . "$(dirname "$0")/lib.sh"
for t in cdm-party cdm-reveal; do
	[ -x $B/$t ] || { echo "FAIL: $B/$t not built"; exit 1; }
done
command -v openssl >/dev/null || { echo "FAIL: openssl not installed"; exit 1; }
MS=$(model_shares) || exit 1
input_shares "$T/x" 2 61 || exit 1
C=$T/certs
sh scripts/make-certs.sh "$C" 2 >/dev/null 2>"$T/err" || { echo "FAIL: make-certs: $(cat "$T/err")"; exit 1; }
sh scripts/make-certs.sh "$T/other" 2 >/dev/null 2>&1 || bad "make-certs (other CA)"
mkdir -p "$T/expired" && cp "$C/ca.pem" "$C/ca.key" "$T/expired/"
sh scripts/make-certs.sh "$T/expired" -1 >/dev/null 2>&1 || bad "make-certs (expired)"
openssl x509 -checkend 0 -noout -in "$T/expired/party2.pem" >/dev/null 2>&1 &&
	bad "make-certs -1 did not make an expired certificate"

tls() { echo "--tls-cert $1/party$2.pem --tls-key $1/party$2.key --tls-ca $3"; }
# run3 NAME PEERS [TIMEOUT]: the three parties, party i run with the command
# prefix $PREi and the extra flags $Ai; statuses in rc0 rc1 rc2, stderr in
# $T/NAME.err.i
run3() {
	local name=$1 peers=$2 to=${3:-5} i a pre
	for i in 0 1 2; do
		eval "a=\$A$i pre=\$PRE$i"
		($pre $B/cdm-party --id $i --peers "$peers" --model "$MS.$i" --input "$T/x.$i" \
			-o "$T/$name.out.$i" --steps 1 --timeout $to -q $a 2>"$T/$name.err.$i"
		 echo $? >"$T/$name.rc.$i") &
		eval pid$i=$!
		PIDS="$PIDS $!"
	done
	for i in 0 1 2; do eval "wait \$pid$i"; eval "rc$i=\$(cat \"\$T/\$name.rc.\$i\")"; done
	PIDS=""
}
# refused NAME WANT0 WANT1 WANT2 PATTERN: statuses and one matching line each
refused() {
	local name=$1 i want pat=$5
	for i in 0 1 2; do
		eval "want=\$$((i + 2)) got=\$rc$i"
		[ "$got" = "$want" ] || bad "$name: party $i exited $got, expected $want: $(cat "$T/$name.err.$i")"
		assert_one_line "$T/$name.err.$i" "$name: party $i" "$pat"
		assert_absent "$name" "$T/$name.out.$i"
	done
}
# said NAME PATTERN: at least one party gives the specific reason (which one
# does depends on who verifies first; the others may see it hang up)
said() {
	cat "$T/$1".err.* | grep -qE -- "$2" || bad "$1: no party says /$2/: $(cat "$T/$1".err.*)"
}
HS="TLS handshake failed|closed the connection during the TLS handshake|closed the connection"
PRE0="" PRE1="" PRE2=""

# ---- loopback refusals ---------------------------------------------------------------------
A0=$(tls $C 0 $C/ca.pem) A1=$(tls $T/other 1 $C/ca.pem) A2=$(tls $C 2 $C/ca.pem)
run3 otherca "$(peers_list $(free_ports 3))"
refused otherca 2 2 2 "$HS"
said otherca "unable to get local issuer certificate|unknown ca"
A1=$(tls $C 1 $T/other/ca.pem)
run3 trustother "$(peers_list $(free_ports 3))"
refused trustother 2 2 2 "$HS"
said trustother "certificate verify failed|unknown ca"
A1=$(tls $C 1 $C/ca.pem) A2=$(tls $T/expired 2 $C/ca.pem)
run3 expired "$(peers_list $(free_ports 3))"
refused expired 2 2 2 "$HS"
said expired "certificate (has )?expired"
A2=$(tls $C 2 $C/ca.pem) A1="--tls-cert $C/party2.pem --tls-key $C/party2.key --tls-ca $C/ca.pem"
run3 wrongparty "$(peers_list $(free_ports 3))" 2
refused wrongparty 2 1 2 "party2.pem' is for party2, but this is party 1|timed out|cannot connect"
A1="--tls-cert $C/party1.pem --tls-key $C/party0.key --tls-ca $C/ca.pem"
run3 keymismatch "$(peers_list $(free_ports 3))" 2
refused keymismatch 2 1 2 "party0.key' does not match certificate|timed out|cannot connect"
A1=""
run3 oneside "$(peers_list $(free_ports 3))" 3
refused oneside 2 2 2 "TLS on one side only|TLS handshake failed|closed the connection"

# ---- three hosts -----------------------------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: the network-namespace part needs root"
	finish "TLS refusals (loopback)"
fi
command -v ip >/dev/null || { echo "SKIP: iproute2 (ip) not installed"; finish "TLS refusals (loopback)"; }
NS=cdmtls-$$
CLEANUP_EXTRA='for n in $NS-0 $NS-1 $NS-2 $NS-hub; do ip netns del $n 2>/dev/null; done'
setup() {
	ip netns add $NS-hub && ip -n $NS-hub link set lo up &&
		ip -n $NS-hub link add br0 type bridge && ip -n $NS-hub link set br0 up || return 1
	for i in 0 1 2; do
		ip netns add $NS-$i && ip -n $NS-$i link set lo up &&
			ip -n $NS-hub link add h$i type veth peer name eth0 netns $NS-$i &&
			ip -n $NS-hub link set h$i master br0 && ip -n $NS-hub link set h$i up &&
			ip -n $NS-$i addr add 10.79.0.$((i + 1))/24 dev eth0 &&
			ip -n $NS-$i link set eth0 up || return 1
	done
}
if ! setup 2>"$T/ip.err"; then
	echo "SKIP: cannot create network namespaces here: $(head -n 1 "$T/ip.err")"
	finish "TLS refusals (loopback)"
fi
ip -o addr 2>/dev/null | grep -q "10\.79\.0\." && bad "an address leaked into the caller's namespace"
PRE0="ip netns exec $NS-0" PRE1="ip netns exec $NS-1" PRE2="ip netns exec $NS-2"
HOSTS=10.79.0.1:9000,10.79.0.2:9000,10.79.0.3:9000

A0=$(tls $C 0 $C/ca.pem) A1=$(tls $C 1 $C/ca.pem) A2=$(tls $C 2 $C/ca.pem)
t0=$(now_s)
run3 hosts "$HOSTS" 20
for i in 0 1 2; do
	eval "got=\$rc$i"
	[ "$got" = 0 ] || bad "TLS across namespaces: party $i exited $got: $(cat "$T/hosts.err.$i")"
	[ -s "$T/hosts.err.$i" ] && bad "TLS across namespaces: party $i printed: $(cat "$T/hosts.err.$i")"
done
echo "three hosts over TLS: $(( $(now_s) - t0 )) s"
$B/cdm-reveal -o "$T/hosts.png" "$T/hosts.out.0" "$T/hosts.out.2" 2>"$T/err" ||
	bad "reveal of the three-host run: $(cat "$T/err")"

A0="" A1="" A2=""
run3 plain "$HOSTS" 20
for i in 0 1 2; do
	eval "got=\$rc$i"
	[ "$got" = 0 ] || bad "plain TCP across namespaces: party $i exited $got: $(cat "$T/plain.err.$i")"
	if [ -s "$T/plain.err.$i" ]; then
		assert_one_line "$T/plain.err.$i" "plain TCP: party $i" "warning: plain TCP to 10\.79\.0\."
	else
		nowarn=1
	fi
done
[ -n "${nowarn:-}" ] && bad "cdm-party does not warn about plain TCP to a non-loopback address"


A0=$(tls $C 0 $C/ca.pem) A1=$(tls $C 1 $C/ca.pem) A2=$(tls $T/expired 2 $C/ca.pem)
run3 nsexpired "$HOSTS" 5
refused nsexpired 2 2 2 "$HS"
said nsexpired "certificate (has )?expired"

finish "TLS across three network namespaces and TLS refusals"
