#!/bin/sh
# make bench-ceiling: peer creates through the HTTPS API at 32 clients beside
# the ceiling under them, measured on this machine in one go: bare
# hashicorp/raft with raft-boltdb (raftnode's BenchmarkBareRaftApply, with
# and without pipelined replication), raftnode's own writes
# (BenchmarkReplicatedApply) and the API (httpapi's BenchmarkCreatePeers).
# Each round runs the three once, so that a change in the machine's load
# touches all of them alike. Prints the load before and after, every run, and
# a Markdown table.
#
# From the repository's root:
#   test/bench-ceiling.sh
# Environment (all optional):
#   ROUNDS      rounds (default 3)
#   BENCHTIME   -benchtime of each benchmark (default 2s)
#   GO          the go command (default go)
set -eu

ROUNDS=${ROUNDS:-3}
BENCHTIME=${BENCHTIME:-2s}
GO=${GO:-go}

out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "load before: $(uptime)"
for round in $(seq "$ROUNDS"); do
	echo "round $round of $ROUNDS"
	"$GO" test -run '^$' -count 1 -benchtime "$BENCHTIME" -timeout 10m \
		-bench '^Benchmark(BareRaftApply|ReplicatedApply)$/^(pipeline=off|pipeline=on|proposers=32)$' \
		./raftnode/ | tee -a "$out"
	"$GO" test -run '^$' -count 1 -benchtime "$BENCHTIME" -timeout 10m \
		-bench '^BenchmarkCreatePeers$/^clients=32$' \
		./httpapi/ | tee -a "$out"
done
echo "load after: $(uptime)"
echo

# One row per benchmark: writes/s min / median / max over the rounds, the
# median of the runs' p50 and p99, and the median writes/s as a share of
# bare Raft's with pipelining off (replication as raftguard does it).
awk -v rounds="$ROUNDS" -v benchtime="$BENCHTIME" '
function median(list,    n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) {
			t = a[j]; a[j] = a[j-1]; a[j-1] = t
		}
	lo = a[1]; hi = a[n]
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++names] = name }
	for (i = 3; i < NF; i += 2) {
		if ($(i+1) ~ /\/s$/) rate[name] = rate[name] " " $i
		if ($(i+1) == "p50-ms") p50[name] = p50[name] " " $i
		if ($(i+1) == "p99-ms") p99[name] = p99[name] " " $i
	}
}
END {
	ceiling = "BenchmarkBareRaftApply/pipeline=off/clients=32"
	if (ceiling in rate) ref = median(rate[ceiling])
	printf "%d rounds, -benchtime %s, 32 concurrent clients\n\n", rounds, benchtime
	print "| benchmark | writes/s min / median / max | p50 ms (median) | p99 ms (median) | % of bare Raft, pipeline off |"
	print "|---|---|---|---|---|"
	for (k = 1; k <= names; k++) {
		n = order[k]
		m = median(rate[n]); rmin = lo; rmax = hi
		mp50 = median(p50[n]); mp99 = median(p99[n])
		share = ref > 0 ? sprintf("%.0f %%", 100 * m / ref) : "n/a"
		printf "| %s | %.0f / %.0f / %.0f | %.1f | %.1f | %s |\n", n, rmin, m, rmax, mp50, mp99, share
	}
}' "$out"
