package store

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// The Lua lint: every key a script hands to redis.call must come from
// KEYS (Redis Cluster routes a script by its KEYS and refuses, or silently
// misroutes, keys it cannot see; docs/cluster-plan.md §5). The scripts are
// parsed with gopher-lua's parser and their values followed through
// locals, table fields, loops and function parameters to a fixpoint: a key
// argument passes when every value that can reach it is KEYS[...] (or a
// table of them, spread with unpack). A channel (PUBLISH) may also come
// from ARGV. A key built by concatenation, read from Redis (an id popped
// from a queue) or passed in ARGV fails, with file:line.
//
// One place is left that does not: the single-Redis ring claim
// (claim.lua) reads the head tenant out of the ring, builds its queue's
// name and pops a task id out of it, all in one script (the Cluster layout
// moves the rotation out of Lua: docs/cluster-plan.md §3.2).
// luaLintAllowed lists each such place, so that a new one fails the test
// and a removed one must leave the list (TestLuaLintAllowlistCurrent).

// The classes of values a key argument can hold.
const (
	fromKeys  = 1 << iota // KEYS[i]
	fromArgv              // ARGV[i]
	fromOther             // anything else: literals, concatenations, Redis replies, ...
)

// luaKeyArgs gives, for each command the scripts call, which arguments are
// keys: first (the first only), all, or the first two. A command missing
// here fails the lint until it is added.
var luaKeyArgs = map[string]string{
	"GET": "first", "SET": "first", "SETNX": "first", "INCR": "first", "INCRBY": "first", "DECR": "first",
	"HGET": "first", "HSET": "first", "HSETNX": "first", "HMGET": "first", "HMSET": "first", "HDEL": "first",
	"HINCRBY": "first", "HGETALL": "first", "HEXISTS": "first", "HSTRLEN": "first", "HLEN": "first", "HKEYS": "first",
	"LLEN": "first", "LPUSH": "first", "RPUSH": "first", "LPOP": "first", "RPOP": "first", "LRANGE": "first",
	"LREM": "first", "LTRIM": "first", "LINDEX": "first",
	"ZADD": "first", "ZREM": "first", "ZSCORE": "first", "ZRANGE": "first", "ZRANGEBYSCORE": "first",
	"ZCARD": "first", "ZCOUNT": "first", "ZINCRBY": "first", "ZREMRANGEBYSCORE": "first", "ZREVRANGE": "first",
	"SADD": "first", "SREM": "first", "SMEMBERS": "first", "SISMEMBER": "first", "SCARD": "first",
	"PEXPIRE": "first", "EXPIRE": "first", "PERSIST": "first", "PTTL": "first", "TTL": "first", "TYPE": "first",
	"DEL": "all", "EXISTS": "all", "UNLINK": "all",
	"RENAME": "two", "RENAMENX": "two",
	"PUBLISH": "channel", "SPUBLISH": "channel",
}

// luaAllowed is a place allowed to touch a key not from KEYS.
type luaAllowed struct {
	why     string
	scripts []string
}

// luaLintAllowed are the places (file:line command) where today's
// single-Redis scripts touch a key that does not come from KEYS, each with
// why and, where the key comes from a caller, the only scripts allowed to
// reach it that way (none: any, for a key built on the spot). Lines are
// those of the files under lua/.
var luaLintAllowed = map[string]luaAllowed{
	"claim.lua:58 HMGET":   {why: "the ring claim: the task id popped from the queue"},
	"claim.lua:60 HMGET":   {why: "the ring claim: the task id popped from the queue"},
	"claim.lua:77 HSET":    {why: "the ring claim: the task id popped from the queue"},
	"claim.lua:79 HSET":    {why: "the ring claim: the task id popped from the queue"},
	"claim.lua:83 HDEL":    {why: "the ring claim: the task id popped from the queue"},
	"claim.lua:89 HSTRLEN": {why: "the ring claim: the task id popped from the queue"},
	"claim.lua:90 HMGET":   {why: "the ring claim: the task id popped from the queue"},
	"claim.lua:113 RPOP":   {why: "the ring claim: the head tenant's queue, built"},
}

// luaViolation is a key (or channel) argument the lint cannot trace to KEYS.
type luaViolation struct {
	script string // the composed script's name
	where  string // file:line command, as in luaLintAllowed
	expr   string // what the argument looks like, for the message
}

// lintScripts lints every registered script and returns its violations,
// sorted.
func lintScripts(t *testing.T) []luaViolation {
	t.Helper()
	var out []luaViolation
	for name, parts := range scriptParts {
		vs, err := lintScript(name, parts)
		if err != nil {
			t.Fatalf("lua lint: %s: %v", name, err)
		}
		out = append(out, vs...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].where != out[j].where {
			return out[i].where < out[j].where
		}
		return out[i].script < out[j].script
	})
	return out
}

func TestLuaKeysOnlyFromKEYS(t *testing.T) {
	if len(scriptParts) < 17 {
		t.Fatalf("only %d scripts registered: the lint would miss some", len(scriptParts))
	}
	for _, v := range lintScripts(t) {
		if a, ok := luaLintAllowed[v.where]; !ok || a.scripts != nil && !slices.Contains(a.scripts, v.script) {
			t.Errorf("%s (script %s): key %s does not come from KEYS", v.where, v.script, v.expr)
		}
	}
}

func TestLuaLintAllowlistCurrent(t *testing.T) {
	seen := map[string]map[string]bool{}
	for _, v := range lintScripts(t) {
		if seen[v.where] == nil {
			seen[v.where] = map[string]bool{}
		}
		seen[v.where][v.script] = true
	}
	for where, a := range luaLintAllowed {
		if seen[where] == nil {
			t.Errorf("luaLintAllowed has %q, which the lint no longer finds: remove it", where)
		}
		for _, s := range a.scripts {
			if !seen[where][s] {
				t.Errorf("luaLintAllowed lets script %s reach %q, which it no longer does: remove it", s, where)
			}
		}
	}
}

// TestLuaLintCatches runs the lint on small scripts, to show it fails what
// it must and passes what it may.
func TestLuaLintCatches(t *testing.T) {
	cases := []struct {
		name, src string
		bad       []string // file:line command of the violations expected
	}{
		{"direct", "redis.call('HSET', KEYS[1], 'a', ARGV[1])\n", nil},
		{"local", "local k = KEYS[2]\nredis.call('DEL', k)\n", nil},
		{"built", "local q = KEYS[1] .. ':' .. ARGV[1]\nredis.call('LLEN', q)\n", []string{"t.lua:2 LLEN"}},
		{"argv key", "redis.call('GET', ARGV[1])\n", []string{"t.lua:1 GET"}},
		{"popped id", "local id = redis.call('RPOP', KEYS[1])\nredis.call('HGET', id, 'x')\n", []string{"t.lua:2 HGET"}},
		{"reassigned", "local k = KEYS[1]\nif ARGV[1] then k = 'x' end\nredis.call('GET', k)\n", []string{"t.lua:3 GET"}},
		{"param, all callers pass KEYS", "local function f(k)\n  redis.call('GET', k)\nend\nf(KEYS[1])\nf(KEYS[2])\n", nil},
		{"param, one caller does not", "local function f(k)\n  redis.call('GET', k)\nend\nf(KEYS[1])\nf(ARGV[1])\n", []string{"t.lua:2 GET"}},
		{"table field", "local o = {stats = KEYS[3]}\nredis.call('HINCRBY', o.stats, 'n', 1)\n", nil},
		{"table field, one source built", "local o = {stats = KEYS[3]}\nlocal p = {stats = 'x' .. ARGV[1]}\nredis.call('HINCRBY', p.stats, 'n', 1)\n", []string{"t.lua:3 HINCRBY"}},
		{"keys spread", "redis.call('DEL', unpack(KEYS, 2, 4))\n", nil},
		{"table of keys", "local ids = {unpack(KEYS, 5, 8)}\nfor _, id in ipairs(ids) do\n  redis.call('DEL', id)\nend\n", nil},
		{"loop over a reply", "for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n  redis.call('DEL', id)\nend\n", []string{"t.lua:2 DEL"}},
		{"element assigned later", "local ks = {KEYS[1]}\nks[2] = ARGV[1]\nredis.call('DEL', unpack(ks))\n", []string{"t.lua:3 DEL"}},
		{"shadowed", "local k = KEYS[1]\ndo\n  local k = ARGV[1]\n  redis.call('GET', k)\nend\nredis.call('GET', k)\n", []string{"t.lua:4 GET"}},
		{"del all args", "redis.call('DEL', KEYS[1], ARGV[1])\n", []string{"t.lua:1 DEL"}},
		{"rename both", "redis.call('RENAME', KEYS[1], KEYS[1] .. 'x')\n", []string{"t.lua:1 RENAME"}},
		{"channel from ARGV", "redis.call('PUBLISH', ARGV[1], 'x')\n", nil},
		{"channel built", "redis.call('PUBLISH', 'c' .. ARGV[1], 'x')\n", []string{"t.lua:1 PUBLISH"}},
		{"computed command", "local c = ARGV[1]\nredis.call(c, KEYS[1])\n", []string{"t.lua:2 ?"}},
		{"unknown command", "redis.call('XADD', KEYS[1], '*', 'a', 1)\n", []string{"t.lua:1 XADD"}},
		{"pcall", "redis.pcall('GET', 'k')\n", []string{"t.lua:1 GET"}},
		{"escaped function", "local function f(k)\n  redis.call('GET', k)\nend\nlocal g = f\ng(KEYS[1])\n", []string{"t.lua:2 GET"}},
		{"glue call", "", nil},
		{"function never reached", "local function f(k)\n  redis.call('GET', k)\nend\nlocal function g()\n  f('x')\nend\n", nil},
		{"function reached through another", "local function f(k)\n  redis.call('GET', k)\nend\nlocal function g()\n  f('x')\nend\ng()\n", []string{"t.lua:2 GET"}},
		{"field written only where never reached", "local function g()\n  return {k = 'x'}\nend\nlocal t = {}\nredis.call('GET', t.k)\n", []string{"t.lua:5 GET"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parts := []luaPart{part("t.lua", c.src)}
			if c.name == "glue call" {
				parts = []luaPart{part("t.lua", "local function f(k)\n  redis.call('GET', k)\nend\n"), glue("f(KEYS[1])\n")}
			}
			vs, err := lintScript("t", parts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				got = append(got, v.where)
			}
			if strings.Join(got, ",") != strings.Join(c.bad, ",") {
				t.Errorf("violations %q, want %q", got, c.bad)
			}
		})
	}
}

// luaVar is one declared local (or parameter, or loop variable).
type luaVar struct {
	class int               // classes of the values it can hold (0: none seen yet)
	elems int               // ... and of their elements, when it holds a table
	fn    *ast.FunctionExpr // the function it was declared with (local function f)
}

// luaLint is the state of one script's analysis: identifiers resolved to
// their variables, and every place a value flows, evaluated to a fixpoint.
type luaLint struct {
	resolve map[*ast.IdentExpr]*luaVar // nil: a global
	params  map[*ast.FunctionExpr][]*luaVar
	flows   []luaFlow
	fields  map[string]int // table field name -> classes of the values stored under it
	felems  map[string]int // ... and of their elements
	calls   []luaRedisCall
	callers []luaCaller
	escapes []luaCaller // local functions used as values (args unused)
	globals []*ast.FunctionExpr
	in      *ast.FunctionExpr // the function being walked (nil: the chunk)
	reach   map[*ast.FunctionExpr]bool
}

// luaRedisCall is a redis.call in function in.
type luaRedisCall struct {
	*ast.FuncCallExpr
	in *ast.FunctionExpr
}

// luaFlow says: the value of e (or, with elemsOf, an element of e) goes
// into v (or into v's elements, with toElems), or into every table field
// named field.
type luaFlow struct {
	v       *luaVar // nil for a field
	field   string
	toElems bool
	elemsOf bool
	e       ast.Expr
	in      *ast.FunctionExpr // where the flow happens: it counts only if that is reached
}

// luaCaller is a call of a local function by name, in function in.
type luaCaller struct {
	fn   *luaVar
	args []ast.Expr
	in   *ast.FunctionExpr
}

type luaScope struct {
	vars   map[string]*luaVar
	parent *luaScope
}

func newScope(parent *luaScope) *luaScope {
	return &luaScope{vars: map[string]*luaVar{}, parent: parent}
}

func (s *luaScope) lookup(name string) *luaVar {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v
		}
	}
	return nil
}

func (s *luaScope) declare(name string) *luaVar {
	v := &luaVar{}
	s.vars[name] = v
	return v
}

// lintScript parses a composed script and returns the key arguments of its
// redis calls that it cannot trace to KEYS.
func lintScript(name string, parts []luaPart) ([]luaViolation, error) {
	var src strings.Builder
	for _, p := range parts {
		src.WriteString(p.text)
	}
	chunk, err := parse.Parse(strings.NewReader(src.String()), name)
	if err != nil {
		return nil, err
	}
	l := &luaLint{resolve: map[*ast.IdentExpr]*luaVar{}, params: map[*ast.FunctionExpr][]*luaVar{},
		fields: map[string]int{}, felems: map[string]int{}}
	l.block(chunk, newScope(nil))
	l.link()
	l.fixpoint()
	var out []luaViolation
	for _, c := range l.calls {
		if !l.reach[c.in] {
			continue
		}
		where := func(cmd string) string { return partLine(parts, c.Line()) + " " + cmd }
		if len(c.Args) == 0 {
			out = append(out, luaViolation{name, where("?"), "(no command)"})
			continue
		}
		cmdExpr, ok := c.Args[0].(*ast.StringExpr)
		if !ok {
			out = append(out, luaViolation{name, where("?"), "(a command that is not a literal)"})
			continue
		}
		cmd := strings.ToUpper(cmdExpr.Value)
		kind, known := luaKeyArgs[cmd]
		if !known {
			out = append(out, luaViolation{name, where(cmd), "(a command the lint does not know: add it to luaKeyArgs)"})
			continue
		}
		args, allowed := c.Args[1:], fromKeys
		switch kind {
		case "first":
			args = args[:min(1, len(args))]
		case "two":
			args = args[:min(2, len(args))]
		case "channel":
			args, allowed = args[:min(1, len(args))], fromKeys|fromArgv
		}
		for _, a := range args {
			if l.argClass(a)&^allowed != 0 {
				out = append(out, luaViolation{name, where(cmd), exprString(a)})
				break
			}
		}
	}
	return out, nil
}

// partLine maps a line of the composed script to file:line of its part.
func partLine(parts []luaPart, line int) string {
	first := 1
	for _, p := range parts {
		n := strings.Count(p.text, "\n")
		if line < first+n {
			file := p.file
			if file == "" {
				file = "(scripts.go)"
			}
			return fmt.Sprintf("%s:%d", file, line-first+1)
		}
		first += n
	}
	return fmt.Sprintf("?:%d", line)
}

func (l *luaLint) block(stmts []ast.Stmt, s *luaScope) {
	for _, st := range stmts {
		l.stmt(st, s)
	}
}

func (l *luaLint) stmt(st ast.Stmt, s *luaScope) {
	switch st := st.(type) {
	case *ast.LocalAssignStmt:
		if len(st.Names) == 1 && len(st.Exprs) == 1 {
			if fe, ok := st.Exprs[0].(*ast.FunctionExpr); ok {
				v := s.declare(st.Names[0]) // local function f: f is visible in its body
				v.fn, v.class, v.elems = fe, fromOther, fromOther
				l.expr(fe, s)
				return
			}
		}
		for _, e := range st.Exprs {
			l.expr(e, s)
		}
		vars := make([]*luaVar, len(st.Names))
		for i, n := range st.Names {
			vars[i] = s.declare(n)
		}
		for i, v := range vars {
			l.flowFrom(luaFlow{v: v}, st.Exprs, i)
		}
	case *ast.AssignStmt:
		for _, e := range st.Rhs {
			l.expr(e, s)
		}
		for i, lhs := range st.Lhs {
			switch lhs := lhs.(type) {
			case *ast.IdentExpr:
				if v := s.lookup(lhs.Value); v != nil {
					l.resolve[lhs] = v
					l.flowFrom(luaFlow{v: v}, st.Rhs, i)
				}
			case *ast.AttrGetExpr:
				l.expr(lhs.Object, s)
				if k, ok := lhs.Key.(*ast.StringExpr); ok {
					l.flowFrom(luaFlow{field: k.Value}, st.Rhs, i)
					continue
				}
				l.expr(lhs.Key, s)
				if id, ok := lhs.Object.(*ast.IdentExpr); ok && l.resolve[id] != nil {
					l.flowFrom(luaFlow{v: l.resolve[id], toElems: true}, st.Rhs, i)
				}
			}
		}
	case *ast.FuncCallStmt:
		l.expr(st.Expr, s)
	case *ast.DoBlockStmt:
		l.block(st.Stmts, newScope(s))
	case *ast.WhileStmt:
		l.expr(st.Condition, s)
		l.block(st.Stmts, newScope(s))
	case *ast.RepeatStmt:
		inner := newScope(s)
		l.block(st.Stmts, inner)
		l.expr(st.Condition, inner)
	case *ast.IfStmt:
		l.expr(st.Condition, s)
		l.block(st.Then, newScope(s))
		l.block(st.Else, newScope(s))
	case *ast.NumberForStmt:
		l.expr(st.Init, s)
		l.expr(st.Limit, s)
		if st.Step != nil {
			l.expr(st.Step, s)
		}
		inner := newScope(s)
		v := inner.declare(st.Name)
		v.class, v.elems = fromOther, fromOther
		l.block(st.Stmts, inner)
	case *ast.GenericForStmt:
		for _, e := range st.Exprs {
			l.expr(e, s)
		}
		inner := newScope(s)
		for i, n := range st.Names {
			v := inner.declare(n)
			// for k, v in ipairs(t) or pairs(t): v is an element of t; the
			// keys, and whatever another iterator yields, are not keys.
			if call, ok := iterCall(st.Exprs); ok && i == 1 {
				l.flow(luaFlow{v: v, e: call.Args[0], elemsOf: true})
				continue
			}
			v.class, v.elems = fromOther, fromOther
		}
		l.block(st.Stmts, inner)
	case *ast.FuncDefStmt:
		// a global function: called by name from anywhere, so its
		// parameters may hold anything
		l.expr(st.Func, s)
		l.globals = append(l.globals, st.Func)
		for _, p := range l.params[st.Func] {
			p.class, p.elems = fromOther, fromOther
		}
	case *ast.ReturnStmt:
		for _, e := range st.Exprs {
			l.expr(e, s)
		}
	}
}

// flowFrom records that target i of an assignment to n targets gets its
// value from exprs: the i-th one; past the last, what a call in last place
// returns besides its first value (for unpack(t), more elements of t), or
// nil.
func (l *luaLint) flowFrom(f luaFlow, exprs []ast.Expr, i int) {
	switch {
	case i < len(exprs):
		f.e = exprs[i]
	case len(exprs) == 0:
		return
	default:
		last, ok := exprs[len(exprs)-1].(*ast.FuncCallExpr)
		if !ok {
			return
		}
		f.e = last
		if _, spread := unpackOf(last); !spread {
			f.e = &ast.StringExpr{Value: "(another value of a call)"}
		}
	}
	l.flow(f)
}

// flow records a flow in the function being walked.
func (l *luaLint) flow(f luaFlow) {
	f.in = l.in
	l.flows = append(l.flows, f)
}

// iterCall returns the ipairs(t) or pairs(t) call of a generic for.
func iterCall(exprs []ast.Expr) (*ast.FuncCallExpr, bool) {
	if len(exprs) != 1 {
		return nil, false
	}
	call, ok := exprs[0].(*ast.FuncCallExpr)
	if !ok || len(call.Args) != 1 {
		return nil, false
	}
	id, ok := call.Func.(*ast.IdentExpr)
	return call, ok && (id.Value == "ipairs" || id.Value == "pairs")
}

// expr walks an expression: it resolves identifiers, declares function
// parameters, and records redis calls, table fields and calls of local
// functions.
func (l *luaLint) expr(e ast.Expr, s *luaScope) {
	switch e := e.(type) {
	case *ast.IdentExpr:
		if v := s.lookup(e.Value); v != nil {
			l.resolve[e] = v
			if v.fn != nil {
				l.escapes = append(l.escapes, luaCaller{fn: v, in: l.in}) // used as a value, not called by name
			}
		}
	case *ast.AttrGetExpr:
		l.expr(e.Object, s)
		l.expr(e.Key, s)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				l.expr(f.Key, s)
			}
			l.expr(f.Value, s)
			if k, ok := f.Key.(*ast.StringExpr); ok {
				l.flow(luaFlow{field: k.Value, e: f.Value})
			}
		}
	case *ast.FuncCallExpr:
		for _, a := range e.Args {
			l.expr(a, s)
		}
		if e.Receiver != nil {
			l.expr(e.Receiver, s)
			return
		}
		if isRedisCall(e) {
			l.calls = append(l.calls, luaRedisCall{e, l.in})
			return
		}
		if isTableInsert(e) && len(e.Args) >= 2 {
			if id, ok := e.Args[0].(*ast.IdentExpr); ok && l.resolve[id] != nil {
				l.flow(luaFlow{v: l.resolve[id], toElems: true, e: e.Args[len(e.Args)-1]})
			}
		}
		if id, ok := e.Func.(*ast.IdentExpr); ok {
			if v := s.lookup(id.Value); v != nil {
				l.resolve[id] = v
				if v.fn != nil {
					l.callers = append(l.callers, luaCaller{fn: v, args: e.Args, in: l.in})
				}
				return
			}
		}
		l.expr(e.Func, s)
	case *ast.FunctionExpr:
		inner := newScope(s)
		params := make([]*luaVar, len(e.ParList.Names))
		for i, n := range e.ParList.Names {
			params[i] = inner.declare(n)
		}
		l.params[e] = params
		outer := l.in
		l.in = e
		l.block(e.Stmts, inner)
		l.in = outer
	case *ast.LogicalOpExpr:
		l.expr(e.Lhs, s)
		l.expr(e.Rhs, s)
	case *ast.RelationalOpExpr:
		l.expr(e.Lhs, s)
		l.expr(e.Rhs, s)
	case *ast.StringConcatOpExpr:
		l.expr(e.Lhs, s)
		l.expr(e.Rhs, s)
	case *ast.ArithmeticOpExpr:
		l.expr(e.Lhs, s)
		l.expr(e.Rhs, s)
	case *ast.UnaryMinusOpExpr:
		l.expr(e.Expr, s)
	case *ast.UnaryNotOpExpr:
		l.expr(e.Expr, s)
	case *ast.UnaryLenOpExpr:
		l.expr(e.Expr, s)
	}
}

// link finds the functions the chunk can reach (by calls from reached
// code, or as values used there: those may be called with anything), and
// makes the arguments of every reached call of a local function flow
// into its parameters. Flows and redis calls in functions never reached
// do not count: lib.lua's functions a script does not use are not its.
func (l *luaLint) link() {
	l.reach = map[*ast.FunctionExpr]bool{nil: true}
	for _, g := range l.globals {
		l.reach[g] = true
	}
	for changed := true; changed; {
		changed = false
		for _, c := range append(l.callers[:len(l.callers):len(l.callers)], l.escapes...) {
			if l.reach[c.in] && !l.reach[c.fn.fn] {
				l.reach[c.fn.fn] = true
				changed = true
			}
		}
	}
	for _, c := range l.callers {
		if !l.reach[c.in] {
			continue
		}
		for i, p := range l.params[c.fn.fn] {
			if i < len(c.args) {
				l.flows = append(l.flows, luaFlow{v: p, e: c.args[i], in: c.in})
			}
		}
	}
	for _, c := range l.escapes {
		if l.reach[c.in] {
			for _, p := range l.params[c.fn.fn] {
				p.class, p.elems = fromOther, fromOther
			}
		}
	}
	for _, f := range l.flows {
		if f.v == nil && l.reach[f.in] {
			l.fields[f.field] |= 0 // the field is written somewhere
			l.felems[f.field] |= 0
		}
	}
}

func (l *luaLint) fixpoint() {
	for changed := true; changed; {
		changed = false
		update := func(dst *int, add int) {
			if *dst|add != *dst {
				*dst |= add
				changed = true
			}
		}
		for _, f := range l.flows {
			if !l.reach[f.in] {
				continue
			}
			val, elems := l.class(f.e), l.elemsClass(f.e)
			if f.elemsOf {
				val, elems = l.elemsClass(f.e), fromOther
			}
			switch {
			case f.v == nil:
				fv, fe := l.fields[f.field], l.felems[f.field]
				update(&fv, val)
				update(&fe, elems)
				l.fields[f.field], l.felems[f.field] = fv, fe
			case f.toElems:
				update(&f.v.elems, val)
			default:
				update(&f.v.class, val)
				update(&f.v.elems, elems)
			}
		}
	}
}

// argClass is the class of a redis.call argument: unpack(t) spreads t's
// elements.
func (l *luaLint) argClass(e ast.Expr) int {
	if t, ok := unpackOf(e); ok {
		return l.elemsClass(t)
	}
	return l.class(e)
}

func (l *luaLint) class(e ast.Expr) int {
	switch e := e.(type) {
	case *ast.NilExpr:
		return 0
	case *ast.IdentExpr:
		if v := l.resolve[e]; v != nil {
			return v.class
		}
		return fromOther
	case *ast.AttrGetExpr:
		if id, ok := e.Object.(*ast.IdentExpr); ok && l.resolve[id] == nil {
			switch id.Value {
			case "KEYS":
				return fromKeys
			case "ARGV":
				return fromArgv
			}
		}
		if l.class(e.Object) == 0 {
			return 0 // nothing reaches the table (a parameter of a function never called)
		}
		if k, ok := e.Key.(*ast.StringExpr); ok {
			if c, written := l.fields[k.Value]; written {
				return c | l.elemsClass(e.Object)
			}
			return fromOther
		}
		return l.elemsClass(e.Object)
	case *ast.LogicalOpExpr:
		return l.class(e.Lhs) | l.class(e.Rhs)
	case *ast.FuncCallExpr:
		if t, ok := unpackOf(e); ok {
			return l.elemsClass(t)
		}
	}
	return fromOther
}

func (l *luaLint) elemsClass(e ast.Expr) int {
	switch e := e.(type) {
	case *ast.NilExpr:
		return 0
	case *ast.TableExpr:
		c := 0
		for _, f := range e.Fields {
			if f.Key == nil {
				c |= l.argClass(f.Value)
			}
		}
		return c
	case *ast.IdentExpr:
		if v := l.resolve[e]; v != nil {
			return v.elems
		}
		switch e.Value {
		case "KEYS":
			return fromKeys
		case "ARGV":
			return fromArgv
		}
	case *ast.AttrGetExpr:
		if k, ok := e.Key.(*ast.StringExpr); ok {
			if c, written := l.felems[k.Value]; written {
				return c
			}
		}
	case *ast.LogicalOpExpr:
		return l.elemsClass(e.Lhs) | l.elemsClass(e.Rhs)
	}
	return fromOther
}

// unpackOf returns t of unpack(t, ...) (or table.unpack).
func unpackOf(e ast.Expr) (ast.Expr, bool) {
	call, ok := e.(*ast.FuncCallExpr)
	if !ok || len(call.Args) == 0 {
		return nil, false
	}
	switch f := call.Func.(type) {
	case *ast.IdentExpr:
		return call.Args[0], f.Value == "unpack"
	case *ast.AttrGetExpr:
		obj, ok := f.Object.(*ast.IdentExpr)
		key, ok2 := f.Key.(*ast.StringExpr)
		return call.Args[0], ok && ok2 && obj.Value == "table" && key.Value == "unpack"
	}
	return nil, false
}

func isRedisCall(e *ast.FuncCallExpr) bool {
	return isAttrCall(e, "redis", "call") || isAttrCall(e, "redis", "pcall")
}

func isTableInsert(e *ast.FuncCallExpr) bool { return isAttrCall(e, "table", "insert") }

func isAttrCall(e *ast.FuncCallExpr, object, name string) bool {
	a, ok := e.Func.(*ast.AttrGetExpr)
	if !ok {
		return false
	}
	obj, ok := a.Object.(*ast.IdentExpr)
	key, ok2 := a.Key.(*ast.StringExpr)
	return ok && ok2 && obj.Value == object && key.Value == name
}

// exprString renders an argument for a message.
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.IdentExpr:
		return e.Value
	case *ast.StringExpr:
		return fmt.Sprintf("%q", e.Value)
	case *ast.NumberExpr:
		return e.Value
	case *ast.AttrGetExpr:
		if k, ok := e.Key.(*ast.StringExpr); ok {
			return exprString(e.Object) + "." + k.Value
		}
		return exprString(e.Object) + "[" + exprString(e.Key) + "]"
	case *ast.StringConcatOpExpr:
		return exprString(e.Lhs) + " .. " + exprString(e.Rhs)
	case *ast.LogicalOpExpr:
		return exprString(e.Lhs) + " " + e.Operator + " " + exprString(e.Rhs)
	case *ast.ArithmeticOpExpr:
		return exprString(e.Lhs) + " " + e.Operator + " " + exprString(e.Rhs)
	case *ast.FuncCallExpr:
		args := make([]string, len(e.Args))
		for i, a := range e.Args {
			args[i] = exprString(a)
		}
		return exprString(e.Func) + "(" + strings.Join(args, ", ") + ")"
	}
	return "(expression)"
}
