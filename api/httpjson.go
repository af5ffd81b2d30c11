package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

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
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "request body is not valid JSON: %v", err)
	}
	return m, nil
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
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, errorf(http.StatusUnprocessableEntity, "field %q must be a string: %v", name, err)
	}
	return s, true, nil
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
