package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/google/uuid"
)

// httpError is an error with the status and detail a client gets.
type httpError struct {
	status     int
	detail     string
	retryAfter int // seconds, for the Retry-After header; 0: none
}

func (e *httpError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.detail) }

// withHint returns err with hint appended to its detail (keeping its status)
// when it is an *httpError, else err unchanged.
func withHint(err error, hint string) error {
	var he *httpError
	if errors.As(err, &he) {
		return &httpError{status: he.status, detail: he.detail + hint}
	}
	return err
}

func errorf(status int, format string, args ...any) *httpError {
	return &httpError{status: status, detail: fmt.Sprintf(format, args...)}
}

// writeJSON writes v as the JSON body with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"detail":"internal error: could not encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

type errorBody struct {
	Detail string `json:"detail"`
}

func writeError(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, errorBody{Detail: detail})
}

// readObject reads a JSON object body of at most max bytes.
func readObject(w http.ResponseWriter, r *http.Request, max int64) (map[string]json.RawMessage, error) {
	if r.ContentLength > max {
		return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", max)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", max)
		}
		return nil, errorf(http.StatusBadRequest, "could not read the request body: %v", err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errorf(http.StatusUnprocessableEntity, "request body is empty; expected a JSON object")
	}
	if data[0] != '{' {
		return nil, errorf(http.StatusUnprocessableEntity, "request body must be a JSON object")
	}
	if m, ok := splitObject(data); ok {
		return m, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "request body is not valid JSON: %v", err)
	}
	return m, nil
}

// splitObject does what json.Unmarshal into a map[string]json.RawMessage
// does for a valid JSON object, faster for the large string members
// (payloads) that requests carry: it checks a string with a loop over its
// bytes, where encoding/json's scanner takes a function call per byte (and
// makes two passes). Other values go through encoding/json. Anything it
// does not accept (!ok) is left to json.Unmarshal, for its verdict and its
// error message; it never accepts what json.Unmarshal would refuse.
func splitObject(data []byte) (m map[string]json.RawMessage, ok bool) {
	p := skipSpace(data, 0)
	if p >= len(data) || data[p] != '{' {
		return nil, false
	}
	m = map[string]json.RawMessage{}
	p = skipSpace(data, p+1)
	if p < len(data) && data[p] == '}' {
		return m, skipSpace(data, p+1) == len(data)
	}
	for {
		end, ok := scanString(data, p)
		if !ok {
			return nil, false
		}
		key, err := unquote(data[p:end])
		if err != nil {
			return nil, false
		}
		p = skipSpace(data, end)
		if p >= len(data) || data[p] != ':' {
			return nil, false
		}
		p = skipSpace(data, p+1)
		if p < len(data) && data[p] == '"' {
			if end, ok = scanString(data, p); !ok {
				return nil, false
			}
		} else {
			dec := json.NewDecoder(bytes.NewReader(data[p:]))
			var v json.RawMessage
			if dec.Decode(&v) != nil {
				return nil, false
			}
			end = p + int(dec.InputOffset())
		}
		m[key] = json.RawMessage(data[p:end])
		p = skipSpace(data, end)
		if p >= len(data) {
			return nil, false
		}
		switch data[p] {
		case ',':
			p = skipSpace(data, p+1)
		case '}':
			return m, skipSpace(data, p+1) == len(data)
		default:
			return nil, false
		}
	}
}

func skipSpace(data []byte, p int) int {
	for p < len(data) {
		switch data[p] {
		case ' ', '\t', '\n', '\r':
			p++
		default:
			return p
		}
	}
	return p
}

// scanString checks the JSON string starting at data[p] and returns the
// index just past its closing quote.
func scanString(data []byte, p int) (end int, ok bool) {
	if p >= len(data) || data[p] != '"' {
		return 0, false
	}
	for i := p + 1; i < len(data); {
		switch c := data[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(data) {
				return 0, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) {
					return 0, false
				}
				for _, h := range data[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return 0, false
					}
				}
				i += 6
			default:
				return 0, false
			}
		case c < 0x20:
			return 0, false
		default:
			i++
		}
	}
	return 0, false
}

// stringField returns the string field name of m; a missing field is an
// error unless optional (then ok is false). null counts as missing for an
// optional field.
func stringField(m map[string]json.RawMessage, name string, optional bool) (s string, ok bool, err error) {
	raw, present := m[name]
	if !present || (optional && string(raw) == "null") {
		if optional {
			return "", false, nil
		}
		return "", false, errorf(http.StatusUnprocessableEntity, "field %q is required", name)
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", false, errorf(http.StatusUnprocessableEntity, "field %q must be a string", name)
	}
	s, err = unquote(raw)
	if err != nil {
		return "", false, errorf(http.StatusUnprocessableEntity, "field %q must be a string: %v", name, err)
	}
	return s, true, nil
}

// unquote decodes a JSON string taken from a document json.Unmarshal has
// already checked. Payloads are megabytes of base64, often with "\n" every
// 76 characters; this does in one pass over the bytes what json.Unmarshal
// does in three, and leaves \u escapes and invalid UTF-8 to it.
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errors.New("not a JSON string")
	}
	in := raw[1 : len(raw)-1]
	slow := func() (string, error) {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	if !utf8.Valid(in) {
		return slow()
	}
	i := bytes.IndexByte(in, '\\')
	if i < 0 {
		return string(in), nil
	}
	out := make([]byte, 0, len(in))
	for i >= 0 {
		out = append(out, in[:i]...)
		if i+1 >= len(in) {
			return slow()
		}
		switch in[i+1] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '"', '\\', '/':
			out = append(out, in[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		default: // \u and anything else
			return slow()
		}
		in = in[i+2:]
		i = bytes.IndexByte(in, '\\')
	}
	out = append(out, in...)
	return string(out), nil
}

// parseID checks that s is a UUID and returns it in canonical form
// (lower case, hyphenated), which is how ids are stored.
func parseID(what, s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return "", errorf(http.StatusBadRequest, "%s %q is not a UUID", what, truncate(s, 100))
	}
	return id.String(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
