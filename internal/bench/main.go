// Command bench runs chaoscron's performance benchmarks one at a time, each several times,
// prints the performance table from the medians and writes it into docs/performance.md
// (between its table markers; the text around them is kept), with the raw `go test` output in
// internal/bench/raw.txt.
//
//	go run ./internal/bench                 # what `task bench` runs; about 20 minutes
//	go run ./internal/bench -count 3        # fewer repetitions
//	go run ./internal/bench -only journal   # the steps whose name contains "journal"
//
// A run with -only writes no table: a partial table would overwrite the figures it skipped.
//
// Every figure is a median over -count runs of a benchmark; a ratio is the median of the
// ratios each run measured on its own (both sides taking turns within the run), never a
// ratio of medians from different runs. Environment, passed through to the benchmarks:
//
//	CHAOSCRON_BENCH_PUNCTUALITY  firing window per punctuality run (default 60s, the goal's)
//	CHAOSCRON_BENCH_IDLE         how long the idle agent is watched (default 20s; the goal: 60s)
//
// Root-only parts (tc in a network namespace) are left out when not root; stress-ng and pkill
// comparisons need those tools. Nothing here asserts a figure: it reports.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// step is one `go test` invocation: a package, a -bench pattern, and how many times and
// iterations. env is added to the environment.
type step struct {
	name      string
	pkg       string
	bench     string
	benchtime string
	count     int // 0: the -count flag
	env       []string
}

// punctuality is the firing window of each punctuality run: the goal's 60 s unless set.
var punctuality = envOr("CHAOSCRON_BENCH_PUNCTUALITY", "60s")

var steps = []step{
	{name: "journal-intent", pkg: "./journal", bench: "IntentVsFloor", benchtime: "300x"},
	{name: "journal-throughput", pkg: "./journal", bench: "RunsPerSecond", benchtime: "300x", count: 3},
	{name: "journal-big", pkg: "./journal", bench: "^(BenchmarkSize|BenchmarkList50)$", benchtime: "100x",
		env: []string{"CHAOSCRON_BENCH_RUNS=1000000"}},
	{name: "runner-fire", pkg: "./pkg/runner", bench: "FireToApplied", benchtime: "200x"},
	{name: "network-host", pkg: "./pkg/fault/network", bench: "^(BenchmarkQdiscAdd|BenchmarkFireToAppliedTbf)$", benchtime: "100x", count: 3},
	// One boot of the netem VM runs both VM benchmarks (about 100 s).
	{name: "network-vm", pkg: "./pkg/fault/network", bench: "^BenchmarkVM", benchtime: "1x", count: 1},
	{name: "schedule-punctuality", pkg: "./pkg/schedule", bench: "Punctuality", benchtime: "1x", count: 1,
		env: []string{"CHAOSCRON_BENCH_PUNCTUALITY=" + punctuality}},
	{name: "runner-punctuality", pkg: "./pkg/runner", bench: "Punctuality", benchtime: "1x", count: 3,
		env: []string{"CHAOSCRON_BENCH_PUNCTUALITY=" + punctuality}},
	{name: "runner-recover", pkg: "./pkg/runner", bench: "Recover$", benchtime: "5x", count: 3},
	{name: "runner-recover-big", pkg: "./pkg/runner", bench: "RecoverBigJournal", benchtime: "5x", count: 3},
	{name: "fault-cpu", pkg: "./pkg/fault/cpu", bench: "Compare", benchtime: "1x", count: 3},
	{name: "fault-memory", pkg: "./pkg/fault/memory", bench: "^(BenchmarkFill|BenchmarkResident)$", benchtime: "3x", count: 3},
	{name: "fault-process", pkg: "./pkg/fault/process", bench: "KillVsPkill", benchtime: "30x"},
	{name: "fault-process-scan", pkg: "./pkg/fault/process", bench: "ScanScale", benchtime: "10x", count: 3},
	// Fleet mode, against a real kube-apiserver and etcd (internal/kube).
	{name: "fleet-take", pkg: "./pkg/fleet", bench: "^(BenchmarkTake|BenchmarkHaltPropagation)$", benchtime: "50x", count: 1},
	{name: "fleet-idle", pkg: "./cmd/chaoscron", bench: "^BenchmarkFleetIdle$", benchtime: "1x", count: 1},
	{name: "fleet-halt", pkg: "./cmd/chaoscron", bench: "^BenchmarkFleetHalt$", benchtime: "5x", count: 1},
	{name: "fault-http", pkg: "./pkg/fault/request/proxy", bench: "PassThrough", benchtime: "5000x", count: 3},
}

// results maps a benchmark name (without the -GOMAXPROCS suffix) to unit → values, one per run.
type results map[string]map[string][]float64

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

func (r results) parse(out []byte) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if r[m[1]] == nil {
				r[m[1]] = map[string][]float64{}
			}
			r[m[1]][f[i+1]] = append(r[m[1]][f[i+1]], v)
		}
	}
}

// med is the median of a benchmark's metric, and whether it was measured.
func (r results) med(name, unit string) (float64, bool) {
	v := r[name][unit]
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// f formats the median of name's unit with format, or "—" when it was not measured.
func (r results) f(format, name, unit string) string {
	v, ok := r.med(name, unit)
	if !ok {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

// spread is "min–max" of the runs, to show the noise next to a median.
func (r results) spread(format, name, unit string) string {
	v := r[name][unit]
	if len(v) < 2 {
		return ""
	}
	return fmt.Sprintf(" ("+format+"–"+format+")", slices.Min(v), slices.Max(v))
}

func main() {
	count := flag.Int("count", 5, "runs of each benchmark (some heavy ones use fewer)")
	only := flag.String("only", "", "run only the steps whose name contains this")
	flag.Parse()
	root, err := moduleRoot()
	if err != nil {
		fatal(err)
	}
	raw, err := os.Create(filepath.Join(root, "internal", "bench", "raw.txt"))
	if err != nil {
		fatal(err)
	}
	defer raw.Close()
	log := io.MultiWriter(os.Stderr, raw)
	fmt.Fprintf(log, "# %s, %s, %d CPUs, %s\n", time.Now().UTC().Format(time.RFC3339), runtime.Version(), runtime.NumCPU(), loadavg())

	res := results{}
	for _, s := range steps {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		n := s.count
		if n == 0 {
			n = *count
		}
		n = min(n, *count)
		args := []string{"test", "-run", "^$", "-bench", s.bench, "-benchtime", s.benchtime, "-count", strconv.Itoa(n), s.pkg}
		fmt.Fprintf(log, "\n## %s: %s go %s\n", s.name, strings.Join(s.env, " "), strings.Join(args, " "))
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = root, append(os.Environ(), s.env...)
		b, err := cmd.CombinedOutput()
		_, _ = log.Write(b)
		if err != nil {
			fmt.Fprintf(log, "step %s failed: %v (its figures are left out)\n", s.name, err)
		}
		res.parse(b)
	}
	var bin agentFigures
	if *only == "" || strings.Contains("agent", *only) {
		if bin, err = measureAgent(root, log); err != nil {
			fmt.Fprintf(log, "agent: %v\n", err)
		}
	}
	table := render(res, bin, *count)
	fmt.Print(table)
	if *only != "" {
		return
	}
	if err := writeTable(filepath.Join(root, "docs", "performance.md"), table); err != nil {
		fatal(err)
	}
}

func render(r results, a agentFigures, count int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Generated by `task bench` (`go run ./internal/bench`) on %s: %d CPUs, %s; medians of up to %d runs.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), count)
	sb.WriteString("| what | how measured | ours | alternative | ratio |\n|---|---|---|---|---|\n")
	row := func(cells ...string) { sb.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	x := func(name string) string { return r.f("%.2f×", name, "ratio") }

	const p = "BenchmarkPunctuality"
	row("firing punctuality: 200 experiments `@every 1s`, lateness of each fire vs its tick (goal p99 < 5 ms)",
		"runner `BenchmarkPunctuality`: started_at − scheduled_at from the journal, window "+punctuality,
		"p50 "+r.f("%.1f ms", p, "p50-ms")+", p99 "+r.f("%.1f ms", p, "p99-ms")+r.spread("%.1f", p, "p99-ms")+"; fault in place p99 "+r.f("%.0f ms", p, "applied-p99-ms"),
		"scheduler alone, no-op inline jobs: p50 "+r.f("%.1f ms", p, "sched-p50-ms")+", p99 "+r.f("%.1f ms", p, "sched-p99-ms"),
		x(p)+" (p99)")
	const sp = "BenchmarkPunctuality/"
	row("scheduler alone: 200 entries `@every 1s`, no-op jobs, lateness of each call vs its tick",
		"schedule `BenchmarkPunctuality`, window "+punctuality+", in turn; a goroutine per call, as robfig's loop",
		"p50 "+r.f("%.0f µs", sp+"scheduler", "p50-µs")+", p99 "+r.f("%.0f µs", sp+"scheduler", "p99-µs")+r.spread("%.0f", sp+"scheduler", "p99-µs")+
			"; jobs inline (called by the loop in turn): p50 "+r.f("%.0f µs", sp+"inline", "p50-µs")+", p99 "+r.f("%.0f µs", sp+"inline", "p99-µs"),
		"robfig's `cron.Cron` run loop: p50 "+r.f("%.0f µs", sp+"robfig-cron", "p50-µs")+", p99 "+r.f("%.0f µs", sp+"robfig-cron", "p99-µs"),
		ratioOf(r, sp+"scheduler", "p99-µs", sp+"robfig-cron", "p99-µs")+" (p99)")
	const tbf = "BenchmarkFireToAppliedTbf"
	row("fire → fault in place, intent fsync included (goal median < 2 ms)",
		"the network fault's `bandwidth` (tbf; the host kernel has no netem) on a veth in a netns, `BenchmarkFireToAppliedTbf`: started_at → applied_at, in turns with `tc`",
		r.f("%.2f ms", tbf, "p50-ms")+r.spread("%.2f", tbf, "p50-ms")+" (p99 "+r.f("%.1f ms", tbf, "p99-ms")+")",
		"exec `tc qdisc add … tbf` of the same qdisc: "+r.f("%.2f ms", tbf, "tc-p50-ms"),
		x(tbf))
	const fire = "BenchmarkFireToApplied"
	row("fire → fault in place, other faults",
		"runner `BenchmarkFireToApplied`: started_at → applied_at",
		"disk fill 64 KiB (its own file and directory fsyncs included) "+r.f("%.2f ms", fire, "p50-ms")+r.spread("%.2f", fire, "p50-ms")+
			"; a fault that changes nothing "+r.f("%.2f ms", fire, "noop-p50-ms")+"; disk, until Fire returns "+r.f("%.2f ms", fire, "return-p50-ms"),
		"—", "—")
	const vmFire = "BenchmarkVMFireToApplied"
	row("network fault: fire → netem in place, intent included, in the netem VM (software emulation; the VM's journal is on tmpfs)",
		"`BenchmarkVMFireToApplied`: started_at → applied_at, turns with `tc`",
		r.f("%.1f ms", vmFire, "p50-ms")+" (p99 "+r.f("%.0f ms", vmFire, "p99-ms")+")",
		"exec `tc qdisc add … netem` in the same VM: "+r.f("%.1f ms", vmFire, "tc-p50-ms")+"; the fault's three qdiscs by `tc`: "+r.f("%.0f ms", vmFire, "tc3-p50-ms"),
		x(vmFire))
	const qa = "BenchmarkQdiscAdd/"
	row("network: a root qdisc in place over netlink, host kernel (tbf: it has no netem)",
		"`BenchmarkQdiscAdd`, a veth in a netns",
		msFromNs(r, qa+"netlink/tbf"), "exec `tc qdisc add`: "+msFromNs(r, qa+"tc-exec/tbf"),
		ratioOf(r, qa+"netlink/tbf", "ns/op", qa+"tc-exec/tbf", "ns/op"))
	row("same in the netem VM (netem)", "`BenchmarkVM` (`BenchmarkQdiscAdd` inside)",
		nsAsMs(r, "BenchmarkVM", "netlink-netem-ns/op"), "exec `tc`: "+nsAsMs(r, "BenchmarkVM", "tc-exec-netem-ns/op"),
		ratioOf(r, "BenchmarkVM", "netlink-netem-ns/op", "BenchmarkVM", "tc-exec-netem-ns/op"))
	const intent = "BenchmarkIntentVsFloor"
	row("intent commit, bbolt, fsync on (goal median < 1.5 ms)",
		"`BenchmarkIntentVsFloor`, turns with the floor",
		r.f("%.0f µs", intent, "p50-µs")+r.spread("%.0f", intent, "p50-µs")+" (p99 "+r.f("%.0f µs", intent, "p99-µs")+")",
		"write + fdatasync of the same bytes: "+r.f("%.0f µs", intent, "floor-p50-µs"),
		x(intent))
	const big = "BenchmarkRecoverBigJournal"
	row("start-up recovery: 100 open runs (real disk fills) in a 1,000,000-run journal, to all reverted (goal < 100 ms)",
		"`BenchmarkRecoverBigJournal`: Open + New + Recover",
		r.f("%.0f ms", big, "p50-ms")+r.spread("%.0f", big, "p50-ms"),
		"the same 100 open runs in a 100-run journal: "+r.f("%.0f ms", big, "small-p50-ms"),
		x(big))
	var scale []string
	for _, n := range []string{"1", "10", "100", "1000"} {
		scale = append(scale, n+": "+r.f("%.0f ms", "BenchmarkRecover/open="+n, "p50-ms"))
	}
	row("recovery time vs open runs (10,000-run journal)", "`BenchmarkRecover`", strings.Join(scale, ", "), "—", "—")
	row("`journal list --limit 50` on a 1,000,000-run journal (goal < 20 ms)", "`BenchmarkList50`",
		msFromNs(r, "BenchmarkList50/runs=1000000"), "—", "—")
	row("journal file for 1,000,000 runs; with retention `max_runs: 10000`", "`BenchmarkSize` (runs bulk-loaded; retention prunes every 10,000)",
		r.f("%.0f MB", "BenchmarkSize/runs=1000000", "MB")+"; with retention "+r.f("%.1f MB", "BenchmarkSize/runs=1000000/max_runs=10000", "MB")+" (bounded)", "—", "—")
	var tput []string
	for _, c := range []string{"1", "4", "16"} {
		tput = append(tput, c+": "+r.f("%.0f", "BenchmarkRunsPerSecond/concurrent="+c, "runs/s"))
	}
	row("runs/s the journal sustains, fsync on (intent + active + end), by experiments firing at once", "`BenchmarkRunsPerSecond`", strings.Join(tput, ", "), "—", "—")
	row("agent idle, 20 experiments scheduled, none firing (goal < 20 MiB, < 0.5% of a core)",
		fmt.Sprintf("`chaoscron run`, /proc/<pid>/status VmRSS and utime+stime over %s", a.window),
		a.String(), "—", "—")
	const cpu = "BenchmarkCompare"
	row("cpu fault, load 50 on 2 workers: busy share per worker (goal 50 ± 3%)", "`BenchmarkCompare`, /proc/<pid>/stat over 2 s",
		r.f("%.2f%%", cpu+"/chaoscron", "busy%/worker")+r.spread("%.2f", cpu+"/chaoscron", "busy%/worker"),
		"`stress-ng --cpu 2 --cpu-load 50`: "+r.f("%.2f%%", cpu+"/stress-ng", "busy%/worker")+r.spread("%.2f", cpu+"/stress-ng", "busy%/worker"), "—")
	row("memory fault 512 MiB: fill rate; resident accuracy (goal ≥ stress-ng's rate, ±2%)", "`BenchmarkFill` (turns), `BenchmarkResident` (VmRSS delta)",
		r.f("%.2f GiB/s", "BenchmarkFill", "chaoscron-GiB/s")+r.spread("%.2f", "BenchmarkFill", "chaoscron-GiB/s")+"; resident "+r.f("%.1f%%", "BenchmarkResident", "resident%"),
		"`stress-ng --vm 1 --vm-bytes 512M --vm-keep` (RSS-based): "+r.f("%.2f GiB/s", "BenchmarkFill", "stress-ng-rss-GiB/s")+r.spread("%.2f", "BenchmarkFill", "stress-ng-rss-GiB/s")+
			"; with `--vm-madvise hugepage`: "+r.f("%.2f GiB/s", "BenchmarkFill", "stress-ng-hugepage-rss-GiB/s"),
		ratioOf(r, "BenchmarkFill", "chaoscron-GiB/s", "BenchmarkFill", "stress-ng-rss-GiB/s"))
	const kill = "BenchmarkKillVsPkill"
	row("process kill, fire → target reaped, SIGKILL (goal median < 10 ms)", "`BenchmarkKillVsPkill`, both started at the same moment",
		r.f("%.2f ms", kill, "p50-ms")+r.spread("%.2f", kill, "p50-ms"), "`pkill -9 -f`: "+r.f("%.2f ms", kill, "pkill-p50-ms"), x(kill))
	var scan []string
	for _, n := range []string{"0", "500", "1000", "2000"} {
		name := "BenchmarkScanScale/extra=" + n
		scan = append(scan, r.f("%.0f", name, "processes")+": "+msFromNs(r, name))
	}
	row("process scan time vs process count (Plan, no match: every process read)", "`BenchmarkScanScale`", strings.Join(scan, ", "), "—", "—")
	const pt = "BenchmarkPassThrough"
	alt := func(name string) string {
		return name + ": added p50 " + r.f("%.0f µs", pt, name+"-added-p50-µs") + ", p99 " + r.f("%.0f µs", pt, name+"-added-p99-µs") +
			"; " + r.f("%.2f×", pt, name+"-ratio-direct") + " direct, sidecar " + r.f("%.2f×", pt, "sidecar-"+name+"-ratio-direct") +
			"; CPU " + r.f("%.0f µs", pt, name+"-cpu-µs/req") + ", " + r.f("%.1f", pt, name+"-switches/req") + " switches a request"
	}
	row("http fault: a request not faulted, HTTP/1.1 keep-alive, to a small net/http app: added latency, requests/s (goals: p50 added < 100 µs; ≥ 0.8× direct and ≥ toxiproxy)",
		"`BenchmarkPassThrough`: direct, through the proxy (a process of its own), toxiproxy v2.5.0 with no toxics and HAProxy (HTTP mode), in turns: one client for latency; 8 clients for requests/s, on shared cores and in the sidecar layout (client and app on one core, the proxy on the other); per request: the proxy process's CPU (utime+stime) and context switches",
		"added p50 "+r.f("%.0f µs", pt, "added-p50-µs")+r.spread("%.0f", pt, "added-p50-µs")+", p99 "+r.f("%.0f µs", pt, "added-p99-µs")+
			"; "+r.f("%.0f req/s", pt, "proxy-req/s")+", "+r.f("%.2f×", pt, "ratio-direct")+r.spread("%.2f", pt, "ratio-direct")+" direct ("+r.f("%.0f req/s", pt, "direct-req/s")+
			"), sidecar "+r.f("%.2f×", pt, "sidecar-ratio-direct")+r.spread("%.2f", pt, "sidecar-ratio-direct")+
			"; CPU "+r.f("%.0f µs", pt, "proxy-cpu-µs/req")+", "+r.f("%.1f", pt, "proxy-switches/req")+" switches a request",
		alt("toxiproxy")+"<br>"+alt("haproxy"),
		"toxiproxy "+r.f("%.2f×", pt, "ratio-toxiproxy")+", sidecar "+r.f("%.2f×", pt, "sidecar-ratio-toxiproxy")+
			"; haproxy "+r.f("%.2f×", pt, "ratio-haproxy")+", sidecar "+r.f("%.2f×", pt, "sidecar-ratio-haproxy")+" (req/s)")
	const take = "BenchmarkTake/agents="
	row("fleet: taking a slot on a real API server (a Lease update with resourceVersion)",
		"`pkg/fleet` `BenchmarkTake`: one agent alone; five agents at the same instant, all granted (conflicts, fresh reads, retries)",
		"alone: p50 "+r.f("%.1f ms", take+"1", "p50-ms")+", p99 "+r.f("%.1f ms", take+"1", "p99-ms")+
			"; five at once: p50 "+r.f("%.0f ms", take+"5", "p50-ms")+", p99 "+r.f("%.0f ms", take+"5", "p99-ms"), "—", "—")
	const hp = "BenchmarkHaltPropagation"
	row("fleet halt → the last of 10 members has seen it (its watch)", "`pkg/fleet` `BenchmarkHaltPropagation`: state Lease written → OnState of the tenth",
		"p50 "+r.f("%.1f ms", hp, "p50-ms")+", p99 "+r.f("%.1f ms", hp, "p99-ms"), "—", "—")
	const fh = "BenchmarkFleetHalt"
	row("fleet halt → the last of 10 agents' faults reverted", "`BenchmarkFleetHalt`: ten `chaoscron run` processes with a CPU fault each; `chaoscron fleet halt` → the latest ended_at in their journals",
		"p50 "+r.f("%.0f ms", fh, "p50-ms")+", max "+r.f("%.0f ms", fh, "max-ms"), "—", "—")
	const fi = "BenchmarkFleetIdle"
	row("idle fleet agent: API requests per minute, RSS (goals: ≤ one renew per interval plus one watch; < 30 MiB)",
		"`BenchmarkFleetIdle`: five agents, renew 5 s; apiserver_request_total over the window less the API server's own, per agent; the audit log's count of the agents' requests",
		r.f("%.1f", fi, "req/agent/min")+" requests/min (audit: "+r.f("%.1f", fi, "audit-req/agent/min")+"; one renew per 5 s is 12); RSS "+r.f("%.1f MiB", fi, "rss-MiB"),
		"—", "—")
	row("binary size (goal < 25 MB; with client-go for fleet mode < 32 MB)", "`CGO_ENABLED=0 go build -trimpath -ldflags '-s -w'`", a.size(), "—", "—")
	return sb.String()
}

func msFromNs(r results, name string) string { return nsAsMs(r, name, "ns/op") }

// nsAsMs is the median of name's unit, a figure in nanoseconds, in milliseconds.
func nsAsMs(r results, name, unit string) string {
	v, ok := r.med(name, unit)
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.2f ms", v/1e6)
}

// ratioOf is the median over runs of metric a of benchmark na over metric b of nb, each
// run's pair taken together.
func ratioOf(r results, na, a, nb, b string) string {
	va, vb := r[na][a], r[nb][b]
	if len(va) == 0 || len(va) != len(vb) {
		return "—"
	}
	q := make([]float64, len(va))
	for i := range va {
		q[i] = va[i] / vb[i]
	}
	slices.Sort(q)
	return fmt.Sprintf("%.2f×", q[len(q)/2])
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	return "load average " + strings.Join(f[:3], " ")
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run from inside the chaoscron module")
	}
	return filepath.Dir(mod), nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
