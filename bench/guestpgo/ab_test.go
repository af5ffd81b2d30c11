//go:build guestpgo

// Package guestpgo holds the guest PGO experiment (see README.md); this
// test compares two guest images call by call.
package guestpgo

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/runtime"
)

func TestMain(m *testing.M) {
	runtime.RunChildIfRequested()
	os.Exit(m.Run())
}

// TestAB runs the same task on a warm sandbox of each image in turn (base,
// new, new, base, ...: the order flips every pair), so both sides see the
// machine at the same moment, which the drift of this shared VM otherwise
// swamps. It reports per workload the median of the per-pair new/base
// ratios with its interquartile range and the minimum time of each side.
//
//	GUESTPGO_BASE=dir GUESTPGO_NEW=dir [GUESTPGO_PAIRS=60] \
//	    go test -tags guestpgo -run TestAB -v -timeout 30m ./bench/guestpgo/
//
// It is an experiment's tool, not a test: the build tag keeps it out of
// make test.
func TestAB(t *testing.T) {
	base, next := os.Getenv("GUESTPGO_BASE"), os.Getenv("GUESTPGO_NEW")
	if base == "" || next == "" {
		t.Fatal("set GUESTPGO_BASE and GUESTPGO_NEW to two image directories")
	}
	pairs := 60
	if s := os.Getenv("GUESTPGO_PAIRS"); s != "" {
		pairs, _ = strconv.Atoi(s)
	}
	src, err := os.ReadFile("../../runtime/pybuild/pgo_workload.py")
	if err != nil {
		t.Fatal(err)
	}
	defs := strings.Split(string(src), "\nif __name__")[0] + "\nimport dill\ndill.settings['recurse'] = True\n"
	work := []struct{ name, fn, args string }{
		{"fib(25)", "fib", "((25,), {})"},
		{"mixed(1)", "mixed", "((1,), {})"},
		{"strings(3000)", "strings", "((3000,), {})"},
		{"dicts_lists(24000)", "dicts_lists", "((24000,), {})"},
		{"json_work(600)", "json_work", "((600,), {})"},
		{"re_work(3000)", "re_work", "((3000,), {})"},
		{"classes(8000)", "classes", "((8000,), {})"},
		{"pickling(4000)", "pickling", "((4000,), {})"},
	}
	var exprs []string
	for _, w := range work {
		exprs = append(exprs, w.fn, w.args)
	}
	b64 := pyfixture.Pickles(t, defs, exprs...)
	pk := make([][]byte, len(b64))
	for i, s := range b64 {
		pk[i], _ = base64.StdEncoding.DecodeString(s)
	}
	ctx := context.Background()
	tmp := t.TempDir()
	pools := map[string]*runtime.Pool{}
	for side, dir := range map[string]string{"base": base, "new": next} {
		p, err := runtime.NewPool(ctx, runtime.PoolConfig{Size: 1, ImageDir: dir, CacheDir: filepath.Join(tmp, side)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pools[side] = p
	}
	last := map[string][]byte{}
	call := func(side string, i int) time.Duration {
		fn, args := pk[2*i], pk[2*i+1]
		t0 := time.Now()
		res, err := pools[side].Run(ctx, faastype.Task{ID: "ab", Function: pickle.Hash(fn), Fn: fn, Args: args,
			Isolation: faastype.Warm})
		d := time.Since(t0)
		if err != nil || res.Status != faastype.Completed {
			t.Fatalf("%s %s: %v %+v", side, work[i].name, err, res)
		}
		last[side] = res.Payload
		return d
	}
	for i, w := range work {
		for k := 0; k < 2; k++ { // warm-up, and both images must give the same result
			call("base", i)
			call("new", i)
			if string(last["base"]) != string(last["new"]) {
				t.Fatalf("%s: the images' results differ", w.name)
			}
		}
		n := pairs
		if w.fn == "mixed" {
			n = pairs * 2
		}
		var ratios []float64
		minB, minN := time.Hour, time.Hour
		var sumB, sumN time.Duration
		for k := 0; k < n; k++ {
			var b, nw time.Duration
			if k%2 == 0 {
				b = call("base", i)
				nw = call("new", i)
			} else {
				nw = call("new", i)
				b = call("base", i)
			}
			ratios = append(ratios, float64(nw)/float64(b))
			minB, minN = min(minB, b), min(minN, nw)
			sumB += b
			sumN += nw
		}
		sort.Float64s(ratios)
		q := func(f float64) float64 { return ratios[int(f*float64(len(ratios)-1)+0.5)] }
		line := fmt.Sprintf("%-20s pairs %3d  new/base median %.3f (IQR %.3f-%.3f, 10-90%% %.3f-%.3f)  min base %.1f ms new %.1f ms (%.3f)  mean base %.1f new %.1f",
			w.name, n, q(0.5), q(0.25), q(0.75), q(0.1), q(0.9),
			ms(minB), ms(minN), float64(minN)/float64(minB), ms(sumB)/float64(n), ms(sumN)/float64(n))
		t.Log(line)
		fmt.Println("AB " + line)
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
