package wire

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/fill"
)

// carried lists, for every message type, the Message fields it carries (see
// the table in message.go). The sealing header (Sealed, Channel, Seq, MAC)
// is the channel's business and checked in auth_test.go.
var carried = map[MsgType][]string{
	MsgHello:     {"Name", "Session", "Lane", "Nonce"},
	MsgChallenge: {"Channel", "Nonce", "Secured"},
	MsgRegister:  {"Capacity", "Held", "MaxMessage", "Walls"},
	MsgWelcome:   {"Incarnation", "Heartbeat", "Misses", "Timeout", "MaxMessage"},
	MsgHeartbeat: {"Free"},
	MsgTask:      {"Tasks"},
	MsgResult:    {"Results"},
	MsgAck:       {"Acks"},
	MsgCancel:    {"Cancels"},
	MsgRelease:   {"Released"},
	MsgDrain:     {},
	MsgBye:       {},
	MsgError:     {"Code", "Text"},
	MsgPull:      {"Incarnation", "GotSeq", "Free", "Draining", "Held", "Results", "Released", "MaxMessage", "Walls"},
	MsgWork:      {"Incarnation", "WorkSeq", "RetryAfter", "Tasks", "Acks", "Cancels", "MaxMessage"},
	MsgFetch:     {"Fetch", "Bundle"},
	MsgBundle:    {"Fetch", "Bundle", "Code", "Text", "RetryAfter", "BundleData"},
}

var sealHeader = []string{"Type", "Sealed", "Channel", "Seq", "MAC"}

// filler fills a field with valid, distinct values: every field of every
// nested struct (faastype.Task and faastype.Result included) is set.
func filler(seed int) *fill.Filler {
	return &fill.Filler{Seed: seed, Custom: func(path string, v reflect.Value) bool {
		switch {
		case v.Type() == reflect.TypeOf(faastype.Status("")):
			v.SetString(string(faastype.Failed))
		case v.Type() == reflect.TypeOf(faastype.Isolation("")):
			v.SetString(string(faastype.Fresh))
		case v.Type() == reflect.TypeOf(faastype.ErrorKind("")):
			v.SetString(string(faastype.KindMemoryLimit))
		case strings.HasSuffix(path, ".Env") && v.Type() == reflect.TypeOf([]string(nil)):
			v.Set(reflect.ValueOf([]string{"NAME=" + path, "EMPTY="}))
		default:
			return false
		}
		return true
	}}
}

// TestEveryFieldTravels fills every field each message type carries, down
// to the last field of the tasks and results inside, and checks that it
// comes back: a field that an encoder or a decoder forgets fails it, and so
// does a Message field that no type lists above.
func TestEveryFieldTravels(t *testing.T) {
	mt := reflect.TypeOf(Message{})
	listed := map[string]bool{}
	for _, f := range sealHeader {
		listed[f] = true
	}
	for _, fields := range carried {
		for _, f := range fields {
			listed[f] = true
		}
	}
	for i := 0; i < mt.NumField(); i++ {
		if f := mt.Field(i); f.IsExported() && !listed[f.Name] {
			t.Errorf("Message.%s is carried by no message type: add it to a codec and to carried", f.Name)
		}
	}
	if len(carried) != len(msgNames) {
		t.Errorf("carried lists %d types, the format has %d", len(carried), len(msgNames))
	}
	w, d := testChannels(t, nil, nil)
	for typ, fields := range carried {
		t.Run(typ.String(), func(t *testing.T) {
			m := &Message{Type: typ}
			v := reflect.ValueOf(m).Elem()
			for i, name := range fields {
				filler(100*int(typ) + 10*i).Fill(v.FieldByName(name).Addr().Interface())
			}
			if m.Nonce != nil {
				m.Nonce = NewNonce() // a nonce has one size
			}
			if typ == MsgTask || typ == MsgResult {
				// one task or result per message
				m.Tasks, m.Results = m.Tasks[:min(len(m.Tasks), 1)], m.Results[:min(len(m.Results), 1)]
			}
			b := frame(w, m)
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Sealed {
				if err := d.Open(got); err != nil {
					t.Fatalf("open: %v", err)
				}
			}
			gv := reflect.ValueOf(got).Elem()
			for i := 0; i < mt.NumField(); i++ {
				name := mt.Field(i).Name
				if !mt.Field(i).IsExported() || slices.Contains(sealHeader, name) {
					continue
				}
				want := v.Field(i).Interface()
				if !slices.Contains(fields, name) {
					want = reflect.Zero(mt.Field(i).Type).Interface()
				}
				if typ == MsgChallenge && name == "Channel" {
					continue // also the sealed header's field; compared below
				}
				if !reflect.DeepEqual(gv.Field(i).Interface(), want) {
					t.Errorf("%s: field %s:\n got %+v\nwant %+v", typ, name, gv.Field(i).Interface(), want)
				}
			}
			if typ == MsgChallenge && got.Channel != m.Channel {
				t.Errorf("CHALLENGE: channel %v, want %v", got.Channel, m.Channel)
			}
		})
	}
}
