package store

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// A task's timings field holds the six Timings (queue, boot, deserialize,
// run, serialize, total) as whole microseconds, comma-separated
// ("12,0,85,3,41,160"): at most 64 bytes for any task under an hour, the
// longest value Redis keeps in a small hash's compact encoding, where the
// JSON form (about 120 bytes) made every finished task a hash table.
// Tasks written before hold JSON, which still reads.

func encodeTimings(t faastype.Timings) string {
	var b strings.Builder
	for i, v := range timingValues(&t) {
		if i > 0 {
			b.WriteByte(',')
		}
		us := *v * 1e6
		if math.IsNaN(us) || math.IsInf(us, 0) || us < 0 {
			us = 0
		}
		b.WriteString(strconv.FormatInt(int64(math.Min(math.Round(us), 1e15)), 10))
	}
	return b.String()
}

func decodeTimings(s string) (faastype.Timings, error) {
	var t faastype.Timings
	if strings.HasPrefix(s, "{") {
		err := json.Unmarshal([]byte(s), &t)
		return t, err
	}
	parts := strings.Split(s, ",")
	vals := timingValues(&t)
	if len(parts) != len(vals) {
		return t, errors.New("want 6 comma-separated microsecond counts")
	}
	for i, p := range parts {
		us, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return t, err
		}
		*vals[i] = float64(us) / 1e6
	}
	return t, nil
}

func timingValues(t *faastype.Timings) []*float64 {
	return []*float64{&t.Queue, &t.Boot, &t.Deserialize, &t.Run, &t.Serialize, &t.Total}
}
