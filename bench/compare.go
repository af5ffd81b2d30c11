package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Comparison is a side-by-side run of two faas binaries: the headline no-op
// point (2 sandboxes) of every mode, the binaries taking turns within each
// round so that the machine's drift hits both alike.
type Comparison struct {
	Binaries [2]string `json:"binaries"` // baseline, candidate
	// Envs are added to each binary's environment (the same binary may be
	// compared with itself under two settings, FAAS_ISOLATION=fresh
	// against warm for one).
	Envs   [2][]string `json:"envs,omitempty"`
	Rows   [2][]Row    `json:"rows"` // by binary
	Modes  []string    `json:"modes"`
	Rounds int         `json:"rounds"`
}

// Compare runs rounds rounds of every mode of cfg on baseline and on
// cfg.Faas, alternately; envs[i] is added to binary i's environment.
func Compare(ctx context.Context, cfg StudyConfig, baseline string, envs [2][]string, rounds int, progress func(kind string) Config) (*Comparison, error) {
	cfg = cfg.withDefaults()
	c := &Comparison{Binaries: [2]string{baseline, cfg.Faas}, Envs: envs, Modes: cfg.Modes, Rounds: rounds}
	noop, _ := KindByName("noop")
	for r := 1; r <= rounds; r++ {
		for _, mode := range cfg.Modes {
			for i, bin := range c.Binaries {
				bc := cfg
				bc.Faas = bin
				bc.Env = append(slices.Clip(cfg.Env), envs[i]...)
				d, err := startDeployment(ctx, bc, mode, 2)
				if err != nil {
					return c, fmt.Errorf("bench: compare: %s: %w", bin, err)
				}
				row, err := measure(ctx, bc, d, mode, 2, noop, progress("noop"))
				d.stop()
				if err != nil {
					return c, fmt.Errorf("bench: compare: %s: %w", bin, err)
				}
				row.Round = r
				c.Rows[i] = append(c.Rows[i], row)
			}
		}
	}
	return c, nil
}

// WriteText prints the comparison: per mode and binary the median
// throughput and processor time per task with their ranges, the
// candidate's ratio to the baseline, and each binary's remote modes
// against its local mode.
func (c *Comparison) WriteText(w io.Writer) {
	med := func(bin int, mode string, f func(Row) float64) (m, lo, hi float64) {
		var xs []float64
		for _, r := range c.Rows[bin] {
			if r.Mode == mode && r.Report != nil {
				xs = append(xs, f(r))
			}
		}
		if len(xs) == 0 {
			return 0, 0, 0
		}
		slices.Sort(xs)
		return xs[len(xs)/2], xs[0], xs[len(xs)-1]
	}
	tput := func(r Row) float64 { return r.Report.Throughput }
	cpu := func(r Row) float64 { return r.CPU.Total() - r.CPU.Client }
	redisCPU := func(r Row) float64 { return r.CPU.Redis }
	redisCmds := func(r Row) float64 { return r.RedisCommands }
	fmt.Fprintf(w, "no-op, 2 sandboxes, %d rounds, binaries taking turns\n", c.Rounds)
	for i, name := range []string{"baseline: ", "candidate:"} {
		fmt.Fprintf(w, "%s %s", name, c.Binaries[i])
		if len(c.Envs[i]) > 0 {
			fmt.Fprintf(w, " (with %s)", strings.Join(c.Envs[i], " "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "CPU is the processor time per task of every process but the load generator; Redis commands per task count the commands inside scripts too.\n")
	fmt.Fprintf(w, "%-6s %-9s %22s %24s %22s %20s\n", "mode", "binary", "tasks/s median (range)", "CPU µs/task median (range)",
		"Redis µs/task (range)", "Redis cmds/task")
	for _, mode := range c.Modes {
		for i, name := range []string{"baseline", "candidate"} {
			m, lo, hi := med(i, mode, tput)
			cm, clo, chi := med(i, mode, cpu)
			rm, rlo, rhi := med(i, mode, redisCPU)
			km, klo, khi := med(i, mode, redisCmds)
			fmt.Fprintf(w, "%-6s %-9s %8.0f (%5.0f-%5.0f) %10.0f (%5.0f-%5.0f) %8.0f (%4.0f-%4.0f) %6.1f (%4.1f-%4.1f)\n",
				mode, name, m, lo, hi, cm, clo, chi, rm, rlo, rhi, km, klo, khi)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "CPU µs/task by process (medians): load generator, API, Redis, dispatcher, worker, sandboxes\n")
	for _, mode := range c.Modes {
		for i, name := range []string{"baseline", "candidate"} {
			var parts []string
			for _, f := range []func(CPU) float64{
				func(c CPU) float64 { return c.Client }, func(c CPU) float64 { return c.API },
				func(c CPU) float64 { return c.Redis }, func(c CPU) float64 { return c.Dispatcher },
				func(c CPU) float64 { return c.Worker }, func(c CPU) float64 { return c.Sandboxes },
			} {
				m, _, _ := med(i, mode, func(r Row) float64 { return f(r.CPU) })
				parts = append(parts, fmt.Sprintf("%5.0f", m))
			}
			fmt.Fprintf(w, "%-6s %-9s %s\n", mode, name, strings.Join(parts, " "))
		}
	}
	fmt.Fprintln(w)
	for _, mode := range c.Modes {
		b, _, _ := med(0, mode, tput)
		n, _, _ := med(1, mode, tput)
		bc, _, _ := med(0, mode, cpu)
		nc, _, _ := med(1, mode, cpu)
		if b > 0 && bc > 0 {
			fmt.Fprintf(w, "%-6s candidate/baseline: throughput %.2fx, CPU per task %.2fx\n", mode, n/b, nc/bc)
		}
	}
	for _, mode := range c.Modes {
		var parts []string
		for _, b := range c.Rows[0] {
			for _, n := range c.Rows[1] {
				if b.Mode == mode && n.Mode == mode && b.Round == n.Round && b.Report != nil && n.Report != nil && b.Report.Throughput > 0 {
					parts = append(parts, fmt.Sprintf("%.2fx", n.Report.Throughput/b.Report.Throughput))
				}
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%-6s candidate/baseline throughput in each round: %s\n", mode, strings.Join(parts, " "))
		}
	}
	for i, name := range []string{"baseline", "candidate"} {
		local, _, _ := med(i, "local", tput)
		if local == 0 {
			continue
		}
		var parts []string
		for _, mode := range c.Modes {
			if mode != "local" {
				m, _, _ := med(i, mode, tput)
				parts = append(parts, fmt.Sprintf("%s %.2fx", mode, m/local))
			}
		}
		fmt.Fprintf(w, "%-9s against its local mode: %s\n", name, strings.Join(parts, ", "))
	}
}
