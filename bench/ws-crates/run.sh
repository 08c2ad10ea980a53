#!/bin/bash
# usage: run.sh MODE idle|echo N [port]
ulimit -n 20000
MODE=$1; KIND=$2; N=$3; PORT=${4:-9101}
taskset -c 0 ./target/release/server $MODE $PORT 2>>server.err &
SP=$!; trap "kill $SP 2>/dev/null" EXIT
sleep 0.3
timeout 120 taskset -c 1 ./target/release/client $KIND $SP $PORT $N 4 10 ${MSZ:-5}
echo "rc=$? mode=$MODE kind=$KIND"
trap - EXIT; kill $SP; wait $SP 2>/dev/null
