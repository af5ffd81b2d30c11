package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// series is one line of a plot: y at each x.
type series struct {
	name  string
	color string
	ys    []float64
}

// linePlot writes an SVG line plot of the series over the labelled x
// positions (evenly spaced, so a doubling axis reads as one); a NaN is a
// missing point. The study's plots and the scaling study's use it.
func linePlot(path, title, xlabel, ylabel string, xs []string, lines []series) error {
	const w, h, left, right, top, bottom = 460.0, 280.0, 64.0, 110.0, 30.0, 40.0
	ymax := 0.0
	for _, l := range lines {
		for _, y := range l.ys {
			if !math.IsNaN(y) {
				ymax = math.Max(ymax, y)
			}
		}
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	x := func(i int) float64 {
		if len(xs) <= 1 {
			return left + (w-left-right)/2
		}
		return left + float64(i)*(w-left-right)/float64(len(xs)-1)
	}
	y := func(v float64) float64 { return top + (h-top-bottom)*(1-v/ymax) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`, w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18" font-size="13">%s</text>`, left, title)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%s</text>`,
			left, y(v), w-right, y(v), left-6, y(v)+4, trimFloat(v))
	}
	step := max(1, len(xs)/8)
	for i, lab := range xs {
		if i%step == 0 || i == len(xs)-1 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x(i), h-bottom+16, lab)
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, (left+w-right)/2, h-6, xlabel)
	fmt.Fprintf(&b, `<text x="14" y="%.1f" transform="rotate(-90 14 %.1f)" text-anchor="middle">%s</text>`, (top+h-bottom)/2, (top+h-bottom)/2, ylabel)
	for li, l := range lines {
		var pts []string
		for i, v := range l.ys {
			if i < len(xs) && !math.IsNaN(v) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, x(i), y(v), l.color)
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, l.color, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/><text x="%.1f" y="%.1f">%s</text>`,
			w-right+10, top+10+float64(li)*16, w-right+28, top+10+float64(li)*16, l.color, w-right+32, top+14+float64(li)*16, l.name)
	}
	b.WriteString(`</svg>`)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// WriteScaleReport writes scale.json, scale.md and plots/scale-*.svg.
func WriteScaleReport(dir string, r *ScaleResults) error {
	if err := os.MkdirAll(filepath.Join(dir, "plots"), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scale.json"), b, 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# How cost grows: the scaling study\n\n%s, %s, commit %s.\nCommand: `%s`\n\n", r.Date, r.Machine, r.Commit, r.Command)
	md.WriteString("Each part runs on fresh processes (redis-server, faas api, dispatcher, workers) started and stopped by the study; " +
		"this VM's speed drifts between minutes, so read the shapes and the ratios within a part, not absolute figures.\n\n")
	var errs []error
	plotTo := func(name, title, xl, yl string, xs []string, lines []series) {
		if err := linePlot(filepath.Join(dir, "plots", name), title, xl, yl, xs, lines); err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(&md, "![%s](plots/%s)\n\n", title, name)
	}
	if q := r.Queue; q != nil {
		fmt.Fprintf(&md, "## Queue depth\n\n%d no-op tasks enqueued (POST /execute_batch, 1,000 calls a request, 4 at a time) before the dispatcher "+
			"(local, 2 sandboxes) started; then drained.\n\n", q.Tasks)
		md.WriteString("| measure | value |\n|---|---|\n")
		fmt.Fprintf(&md, "| enqueue rate | %.0f tasks/s (%.1f s) |\n", q.EnqueueRate, q.EnqueueSeconds)
		fmt.Fprintf(&md, "| Redis memory per queued task | %.0f B |\n", q.BytesPerQueued)
		fmt.Fprintf(&md, "| Redis memory per finished task, 24 h result TTL | %.0f B |\n", q.BytesPerFinished)
		if q.NoTTLTasks > 0 {
			fmt.Fprintf(&md, "| Redis memory per finished task, no TTL (%d tasks) | %.0f B |\n", q.NoTTLTasks, q.BytesNoTTL)
		}
		fmt.Fprintf(&md, "| drain | %.0f s, %.0f tasks/s on average |\n\n", q.DrainSeconds, float64(q.Tasks)/math.Max(q.DrainSeconds, 1e-9))
		// Windows bucketed by tenths of the queue, so that the plot reads
		// from full to empty.
		var xs []string
		var tput, us []float64
		for d := 9; d >= 0; d-- {
			lo, hi := int64(q.Tasks)*int64(d)/10, int64(q.Tasks)*int64(d+1)/10
			var t, u float64
			n := 0
			for _, w := range q.Windows {
				if w.Remaining >= lo && w.Remaining < hi && w.TasksPerSec > 0 {
					t, u, n = t+w.TasksPerSec, u+w.ScriptUSCall, n+1
				}
			}
			xs = append(xs, fmt.Sprintf("%d%%", (d+1)*10))
			if n == 0 {
				tput, us = append(tput, math.NaN()), append(us, math.NaN())
				continue
			}
			tput, us = append(tput, t/float64(n)), append(us, u/float64(n))
		}
		md.WriteString("| queue left (up to) | tasks/s | Redis µs per script call |\n|---|---|---|\n")
		for i := range xs {
			fmt.Fprintf(&md, "| %s | %.0f | %.1f |\n", xs[i], tput[i], us[i])
		}
		md.WriteString("\n")
		plotTo("scale-queue-throughput.svg", "Drain throughput as the queue empties", "queue left (share of the tasks)", "tasks/s", xs,
			[]series{{"tasks/s", "#1f77b4", tput}})
		plotTo("scale-queue-script.svg", "Redis time per script call as the queue empties", "queue left (share of the tasks)", "µs per call", xs,
			[]series{{"µs/call", "#d62728", us}})
	}
	if len(r.Tenants) > 0 {
		md.WriteString("## Tenants\n\nTenants with work queued (API tokens on, no quotas), the same number of no-op tasks spread over them, " +
			"local dispatcher with 2 sandboxes. The rank column is the worst position of a tenant's first started task among all " +
			"starts, divided by the number of tenants: 1 means every tenant's first task started within the first round.\n\n")
		md.WriteString("| tenants | tasks | tasks/s | Redis µs per script call | redis-server CPU µs per task | worst first start / tenants | cold starts |\n|---|---|---|---|---|---|---|\n")
		var xs []string
		var tput, us []float64
		for _, p := range r.Tenants {
			fmt.Fprintf(&md, "| %d | %d | %.0f | %.1f | %.0f | %.2f | %.0f%% |\n", p.Tenants, p.Tasks, p.TasksPerSec, p.ScriptUSCall, p.RedisUSTask, p.FirstStartRank, 100*p.ColdShare)
			xs = append(xs, fmt.Sprint(p.Tenants))
			tput, us = append(tput, p.TasksPerSec), append(us, p.ScriptUSCall)
		}
		md.WriteString("\n")
		plotTo("scale-tenants.svg", "Throughput as the tenants grow", "tenants with work", "tasks/s", xs, []series{{"tasks/s", "#1f77b4", tput}})
		plotTo("scale-tenants-script.svg", "Redis time per script call as the tenants grow", "tenants with work", "µs per call", xs,
			[]series{{"µs/call", "#d62728", us}})
	}
	if len(r.Workers) > 0 {
		md.WriteString("## Worker processes\n\nPush and pull workers, 2 sandboxes each, no-op tasks closed loop (2 in flight per sandbox); " +
			"everything shares this machine's 2 cores, so more sandboxes than cores shows the overhead of fan-out, not more capacity.\n\n")
		md.WriteString("| mode | workers | sandboxes | tasks/s | CPU µs/task (all but the load generator) | dispatcher µs/task | workers µs/task | p50 ms |\n|---|---|---|---|---|---|---|---|\n")
		byMode := map[string][]Row{}
		var xs []string
		for _, row := range r.Workers {
			fmt.Fprintf(&md, "| %s | %d | %d | %.0f | %.0f | %.0f | %.0f | %.1f |\n", row.Mode, row.Sandboxes/2, row.Sandboxes,
				row.Report.Throughput, row.CPU.Total()-row.CPU.Client, row.CPU.Dispatcher, row.CPU.Worker, row.Report.Latency.P50)
			byMode[row.Mode] = append(byMode[row.Mode], row)
		}
		for _, row := range byMode["push"] {
			xs = append(xs, fmt.Sprint(row.Sandboxes/2))
		}
		md.WriteString("\n")
		var tput, disp []series
		for i, m := range []string{"push", "pull"} {
			var t, dcpu []float64
			for _, row := range byMode[m] {
				t, dcpu = append(t, row.Report.Throughput), append(dcpu, row.CPU.Dispatcher)
			}
			color := []string{"#1f77b4", "#2ca02c"}[i]
			tput, disp = append(tput, series{m, color, t}), append(disp, series{m, color, dcpu})
		}
		plotTo("scale-workers.svg", "Throughput by worker processes (2 sandboxes each)", "workers", "tasks/s", xs, tput)
		plotTo("scale-workers-dispatcher.svg", "Dispatcher CPU per task by worker processes", "workers", "µs per task", xs, disp)
	}
	if len(r.Payloads) > 0 {
		md.WriteString("## Payload sizes\n\nA function that returns its bytes argument: the argument and the result both that size; local " +
			"dispatcher, 2 sandboxes. Where the time goes: the sandbox's share (deserialize, run, serialize) against the whole latency.\n\n")
		md.WriteString("| size | tasks/s | MB/s (in + out) | p50 ms | sandbox ms (deserialize / run / serialize) | CPU µs/task: api / redis / dispatcher / sandboxes |\n|---|---|---|---|---|---|\n")
		var xs []string
		var mbps []float64
		for _, p := range r.Payloads {
			s, c := p.Row.Report.Split, p.Row.CPU
			fmt.Fprintf(&md, "| %s | %.1f | %.0f | %.1f | %.2f (%.2f / %.2f / %.2f) | %.0f / %.0f / %.0f / %.0f |\n", humanBytes(p.Bytes),
				p.Row.Report.Throughput, p.MBps, p.Row.Report.Latency.P50, s.Sandbox, s.Deserialize, s.Run, s.Serialize,
				c.API, c.Redis, c.Dispatcher, c.Sandboxes)
			xs, mbps = append(xs, humanBytes(p.Bytes)), append(mbps, p.MBps)
		}
		md.WriteString("\n")
		plotTo("scale-payloads.svg", "Bytes moved per second by payload size", "argument and result size", "MB/s", xs, []series{{"MB/s", "#9467bd", mbps}})
	}
	if err := os.WriteFile(filepath.Join(dir, "scale.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
