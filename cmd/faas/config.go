package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// envNames are the variables of flags whose names are too short to make a
// good one.
var envNames = map[string]string{
	"redis": "FAAS_REDIS_URL",
	"w":     "FAAS_SANDBOXES",
	"p":     "FAAS_PORT",
	"m":     "FAAS_MODE",
	"mode":  "FAAS_MODE",
}

// envName is the FAAS_* variable that overrides a flag: --max-body -> FAAS_MAX_BODY.
func envName(flagName string) string {
	if v, ok := envNames[flagName]; ok {
		return v
	}
	return "FAAS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its FAAS_*
// variable, and notes the variable in the flag's usage text.
func applyEnv(fs *flag.FlagSet, given map[string]bool) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// parseFlags parses args, then fills unset flags from the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	_, err := parseCommandLine(fs, args, false, nil)
	return err
}

// parseCommandLine parses args, then fills unset flags from the
// environment: only those named in envFlags, if it is not nil. With
// positional, flags may come before, between or after the positional
// arguments (faas call ID --wait 30s), which it returns in order;
// everything after "--" is positional. Without, parsing stops at the first
// non-flag argument, as flag.FlagSet.Parse does.
func parseCommandLine(fs *flag.FlagSet, args []string, positional bool, envFlags []string) ([]string, error) {
	fromEnv := func(name string) bool { return envFlags == nil || slices.Contains(envFlags, name) }
	fs.VisitAll(func(f *flag.Flag) {
		if fromEnv(f.Name) {
			f.Usage += " (env " + envName(f.Name) + ")"
		}
	})
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 || !positional {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	given := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { given[f.Name] = !fromEnv(f.Name) })
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := applyEnv(fs, given); err != nil {
		// fs.Parse reports its own errors; this one is ours to print.
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return nil, err
	}
	return pos, nil
}

// byteSize is a flag value like 256MiB, 10MB, 1048576.
type byteSize struct{ v *int64 }

func (b byteSize) String() string {
	if b.v == nil {
		return ""
	}
	return formatBytes(*b.v)
}

func (b byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b.v = n
	return nil
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (examples: 256MiB, 1048576)", s)
	}
	return n * mult, nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// autoNumber is a flag whose default depends on other flags: it remembers
// whether it was given.
type autoNumber struct {
	val     float64
	set     bool
	integer bool // whole numbers only
}

func (a *autoNumber) String() string {
	if a == nil || !a.set {
		return ""
	}
	return strconv.FormatFloat(a.val, 'f', -1, 64)
}

func (a *autoNumber) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || (a.integer && v != math.Trunc(v)) {
		if a.integer {
			return fmt.Errorf("%q is not a whole number >= 0", s)
		}
		return fmt.Errorf("%q is not a number >= 0", s)
	}
	a.val, a.set = v, true
	return nil
}

// or is the value given, else def.
func (a *autoNumber) or(def float64) float64 {
	if a.set {
		return a.val
	}
	return def
}

// limitFlags registers the sandbox limit flags shared by every command that
// runs sandboxes.
type limitFlags struct {
	timeout                               time.Duration
	memory, output, result, args, tmpSize int64
}

func addLimitFlags(fs *flag.FlagSet) *limitFlags {
	d := faastype.DefaultLimits
	l := &limitFlags{timeout: d.Timeout, memory: int64(d.MemoryBytes), output: int64(d.OutputBytes),
		result: int64(d.ResultBytes), args: int64(d.ArgBytes), tmpSize: int64(d.TmpBytes)}
	fs.DurationVar(&l.timeout, "timeout", l.timeout, "wall-clock limit per task")
	fs.Var(byteSize{&l.memory}, "memory", "linear memory cap per sandbox")
	fs.Var(byteSize{&l.output}, "output-cap", "captured stdout and stderr per task, each")
	fs.Var(byteSize{&l.result}, "result-cap", "pickled result size cap")
	fs.Var(byteSize{&l.args}, "args-cap", "pickled function and arguments size cap, each")
	fs.Var(byteSize{&l.tmpSize}, "tmp-cap", "size of the in-memory /tmp per sandbox")
	return l
}

func (l *limitFlags) limits() faastype.Limits {
	return faastype.Limits{Timeout: l.timeout, MemoryBytes: uint64(l.memory), OutputBytes: int(l.output),
		ResultBytes: int(l.result), ArgBytes: int(l.args), TmpBytes: int(l.tmpSize)}
}

// limitsFromEnv reads the limit variables only (for faas python, whose
// arguments all belong to the interpreter).
func limitsFromEnv() (faastype.Limits, error) {
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	l := addLimitFlags(fs)
	if err := applyEnv(fs, nil); err != nil {
		return faastype.Limits{}, err
	}
	return l.limits(), nil
}

func limitEnvHelp(w io.Writer) {
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	addLimitFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  %-18s %s (default %s)\n", envName(f.Name), f.Usage, f.DefValue)
	})
}
