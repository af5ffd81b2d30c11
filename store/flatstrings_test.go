package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

// flatStrings decodes what encoding/json decodes for the records cjson
// writes, and declines (for encoding/json to decode) everything else.
func TestFlatStrings(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		ok   bool
	}{
		{`[]`, []string{}, true},
		{`["status","COMPLETED","result","gAROLg=="]`, []string{"status", "COMPLETED", "result", "gAROLg=="}, true},
		{`["stdout","a\nb\t\"q\" \\ \/ \u0001\u001f"]`, []string{"stdout", "a\nb\t\"q\" \\ / \x01\x1f"}, true},
		{`["x","\b\f\r"]`, []string{"x", "\b\f\r"}, true},
		{`["",""]`, []string{"", ""}, true},
		{`["caf\u00e9"]`, nil, false}, // beyond ASCII: encoding/json's rules
		{`["café"]`, nil, false},
		{`["\ud83d\ude00"]`, nil, false},
		{`[1,"a"]`, nil, false},
		{`["a" ,"b"]`, nil, false}, // white space cjson never writes
		{`["a",]`, nil, false},
		{`["a"`, nil, false},
		{`["a\"]`, nil, false},
		{`["a\x"]`, nil, false},
		{`["a"]x`, nil, false},
		{`{"a":"b"}`, nil, false},
		{``, nil, false},
		{`[`, nil, false},
	}
	for _, tc := range cases {
		got, ok := flatStrings(tc.in)
		if ok != tc.ok || (ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("flatStrings(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
		if ok {
			var std []string
			if err := json.Unmarshal([]byte(tc.in), &std); err != nil || !reflect.DeepEqual(std, got) {
				t.Errorf("flatStrings(%q) = %q; encoding/json: %q, %v", tc.in, got, std, err)
			}
		}
	}
}

// Whatever flatStrings accepts, encoding/json decodes to the same strings.
func FuzzFlatStrings(f *testing.F) {
	for _, s := range []string{`[]`, `["a","b"]`, `["\n\u0000\\"]`, `["x\/y","\t"]`, `["é"]`, `[1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := flatStrings(s)
		if !ok {
			return
		}
		var std []string
		if err := json.Unmarshal([]byte(s), &std); err != nil {
			t.Fatalf("flatStrings(%q) = %q, but encoding/json: %v", s, got, err)
		}
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("flatStrings(%q) = %q, encoding/json %q", s, got, std)
		}
	})
}
