// Package bench measures what the recommended stormcellar stack costs on
// every request, against a bare net/http handler and against the nearest
// stack of chi's middleware.
//
// Three instruments, all run from the repository root. The first, the
// script bench/run, builds the hello servers (bench/servers/bare;
// bench/servers/bareheaders, the same sending the full stack's response
// headers as fixed values, to separate the cost of those bytes from the
// stack's work; bench/servers/nomiddleware, the full stack's server and
// router without its middleware; the full stack of examples/minimal or
// bench/servers/full; and bench/servers/chionly) and load-tests them side
// by side with wrk on
// loopback, printing requests/s, p50 and p99 latency, the CPU time the
// server process spent per request, and the ratios to bare:
//
//	bench/run
//
// The machine drifts (other work shares its two CPUs), so bench/run
// measures every server in each of several short rounds, in an order that
// changes from round to round, and compares each server with bare measured
// in the same round: the ratios it prints are medians of those per-round
// ratios.
//
// The second, the benchmarks in this directory, run the same stacks
// in-process, into a reused in-memory writer, so that they show the
// middleware's own time and allocations without net/http's; benchstat
// compares two runs:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./bench/ | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
//
// Timings drift by tens of per cent between runs on a shared machine, more
// than a small change costs. The third, the script bench/icount, counts
// instead the CPU instructions each case of BenchmarkChain and
// BenchmarkChainLayers executes per iteration, with valgrind's cachegrind,
// one case at a time and with GOMAXPROCS=1. It runs the test binary for N
// and for 2N iterations and divides the difference of the two totals by N,
// which cancels the start-up of the process and the construction of the
// stacks, and prints the median of three such measurements as a Markdown
// table, with the instructions each layer of BenchmarkChainLayers adds.
// The counts include the garbage collector's work, which is part of what a
// request costs. By default every collection stops the world (-g stw), and
// the counts repeat within about 1 %, which makes them the measure to
// compare two versions with; they leave out the write barriers and mark
// assists of a concurrent mark. With the concurrent collector, as a server
// runs it (-g concurrent), the counts of the cases that allocate vary from
// run to run by up to tens of per cent, because how much of the run the
// mark phase overlaps depends on wall-clock time. A whole run takes about
// 5 minutes; -c restricts it to the cases whose name matches a regular
// expression:
//
//	bench/icount
//	bench/icount -c 'Chain/(bare|full_chain)$'
//
// The stacks are built in bench/internal/stack, shared by the servers and
// the benchmarks. BENCHMARKS.md at the repository root holds the figures,
// the machine and the commands.
package bench
