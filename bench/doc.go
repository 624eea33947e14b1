// Package bench measures what the recommended stormcellar stack costs on
// every request, against a bare net/http handler and against the nearest
// stack of chi's middleware.
//
// Two instruments, both run from the repository root. The first, the
// script bench/run, builds the hello servers (bench/servers/bare;
// bench/servers/bareheaders, the same sending the full stack's response
// headers as fixed values, to separate the cost of those bytes from the
// stack's work; the full stack of examples/minimal or bench/servers/full;
// and bench/servers/chionly) and load-tests them side by side with wrk on
// loopback, printing requests/s, p50 and p99 latency and the ratios to
// bare:
//
//	bench/run
//
// The second, the benchmarks in this directory, run the same stacks
// in-process, into a reused in-memory writer, so that they show the
// middleware's own time and allocations without net/http's; benchstat
// compares two runs:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./bench/ | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
//
// The stacks are built in bench/internal/stack, shared by the servers and
// the benchmarks. BENCHMARKS.md at the repository root holds the figures,
// the machine and the commands.
package bench
