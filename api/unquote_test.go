package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// unquote must read every JSON string exactly as encoding/json does.
func TestUnquoteMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`""`, `"abc"`, `"gASV\nAAAA\n"`, `"a\\b\/c\"d"`, `"\t\r\n\b\f"`,
		`"\u00e9t\u00e9"`, `"snow \u2603 \ud83d\ude00"`, `"é ☃"`, `"trailing\\"`,
		"\"bad utf8 \xff\xfe here\"", `"mixed \n and \u0041"`,
		`"` + strings.Repeat("QUJD\\n", 10000) + `"`,
	}
	for _, c := range cases {
		var want string
		if err := json.Unmarshal([]byte(c), &want); err != nil {
			t.Fatalf("case %q is not JSON: %v", c, err)
		}
		got, err := unquote([]byte(c))
		if err != nil || got != want {
			t.Errorf("unquote(%.40q) = %.40q, %v; want %.40q", c, got, err, want)
		}
	}
	for _, bad := range []string{``, `"`, `abc`, `"abc`} {
		if _, err := unquote([]byte(bad)); err == nil {
			t.Errorf("unquote(%q) accepted", bad)
		}
	}
}

func BenchmarkUnquotePayload(b *testing.B) {
	raw := []byte(`"` + strings.Repeat(strings.Repeat("A", 76)+`\n`, 18000) + `"`) // ~1.4 MB, like a course client's 1 MB argument
	b.SetBytes(int64(len(raw)))
	b.Run("unquote", func(b *testing.B) {
		for b.Loop() {
			unquote(raw)
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var s string
			json.Unmarshal(raw, &s)
		}
	})
}

var objectCases = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a": "x", "b": [1, 2, {"c": "d"}], "e": null, "f": true, "g": -1.5e3}`,
	`{"payload": "gASV\nAAAA\n", "name": "f"}`, `{"a":"1","a":"2"}`, `{"\u0061": "\u00e9"}`,
	"{\"bad utf8 \xff\": \"\xfe\"}", `{"k": {"nested": {"deep": [[[]]]}}}`, "{\t\"a\"\r\n:\n\"b\"\t}",
	`{"n": 12345678901234567890}`, `{"s": "quote \" and backslash \\ and slash \/"}`,
	// refused, by both
	`{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{"a":1}}`, `{"a":1} x`, `[1]`, `"s"`,
	`{"a":"unterminated}`, "{\"a\":\"raw\ncontrol\"}", `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12zz"}`,
	`{"a":tru}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{a:1}`, `{"a":1}{"b":2}`, `{"a" 1}`, "{\"a\":1\x00}",
	`{"a":[1,2}`, `{"a":{"b":1}`, `{"a":"\ud800"}`,
}

// splitObject must agree with json.Unmarshal on every object it accepts,
// and accept nothing json.Unmarshal refuses.
func TestSplitObjectMatchesEncodingJSON(t *testing.T) {
	for _, c := range objectCases {
		checkSplitObject(t, []byte(c))
	}
	big := `{"function_id": "5f1c", "payload": "` + strings.Repeat("QUJD\\n", 50000) + `"}`
	if _, ok := splitObject([]byte(big)); !ok {
		t.Fatal("a large payload request took the slow way")
	}
	checkSplitObject(t, []byte(big))
}

func checkSplitObject(t *testing.T, data []byte) {
	t.Helper()
	var want map[string]json.RawMessage
	werr := json.Unmarshal(data, &want)
	got, ok := splitObject(data)
	if !ok {
		return // json.Unmarshal decides
	}
	if werr != nil {
		t.Fatalf("splitObject accepted %q, which json.Unmarshal refuses: %v", data, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d members, json.Unmarshal finds %d", data, len(got), len(want))
	}
	for k, v := range want {
		if string(got[k]) != string(v) {
			t.Fatalf("%q: member %q = %q, json.Unmarshal says %q", data, k, got[k], v)
		}
	}
}

func FuzzSplitObject(f *testing.F) {
	for _, c := range objectCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkSplitObject)
}
