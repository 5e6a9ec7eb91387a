#!/bin/sh
# make-certs.sh DIR [DAYS] -- certificates for the three parties' TLS links.
#
# Creates DIR/ca.pem + ca.key (a fresh CA) and DIR/party{0,1,2}.pem + .key,
# each with CN=partyN and subjectAltName DNS:partyN, signed by that CA
# (EC P-256, valid DAYS days, default 365). Give each party its own
# partyN.pem/.key and ca.pem; keep ca.key offline.
# If DIR already holds ca.pem and ca.key, that CA is kept and only the party
# certificates are (re)issued. For tests, a negative DAYS makes party
# certificates that have already expired (a new CA is then valid one day).
set -eu
usage() { echo "usage: make-certs.sh DIR [DAYS]" >&2; exit 1; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
dir=$1
days=${2:-365}
case "$days" in -[0-9]*|[0-9]*) ;; *) echo "make-certs.sh: DAYS must be a number: $days" >&2; exit 1 ;; esac
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
ca_days=$days
[ "$days" -gt 0 ] || ca_days=1
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

[ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] ||
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$ca_days" \
	-subj "/CN=cipherdm parties CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$tmp/log" ||
	{ cat "$tmp/log" >&2; exit 1; }

for i in 0 1 2; do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/party$i.key" -out "$tmp/party$i.csr" -subj "/CN=party$i" 2>"$tmp/log" ||
		{ cat "$tmp/log" >&2; exit 1; }
	cat >"$tmp/ext$i" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:party$i
EXT
	openssl x509 -req -in "$tmp/party$i.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
		-set_serial "$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')" -days "$days" \
		-extfile "$tmp/ext$i" -out "$dir/party$i.pem" 2>"$tmp/log" ||
		{ cat "$tmp/log" >&2; exit 1; }
done
chmod 644 "$dir"/*.pem
