#!/bin/sh
# Print "127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2": three loopback ports the
# kernel hands out as free right now (the demos' --peers). Parties retry
# while the others start, so the order of start-up does not matter.
python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(",".join("127.0.0.1:%d"%x.getsockname()[1] for x in s))' 2>/dev/null ||
	echo "127.0.0.1:$((20000 + $$ % 20000)),127.0.0.1:$((20001 + $$ % 20000)),127.0.0.1:$((20002 + $$ % 20000))"
