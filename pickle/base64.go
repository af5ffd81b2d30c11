package pickle

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Payloads travel as base64 text (the course protocol's serialize()).

// DecodeBase64 decodes standard base64 the way Python's codecs and base64
// modules write it: whitespace anywhere is ignored and the padding may be
// left out.
func DecodeBase64(s string) ([]byte, error) {
	// Go's decoder skips \r and \n itself (course clients send a newline
	// every 76 characters); other white space and missing padding are rare
	// and take the slow way.
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			return -1
		}
		return r
	}, s)
	if len(clean)%4 != 0 {
		return base64.RawStdEncoding.DecodeString(strings.TrimRight(clean, "="))
	}
	return base64.StdEncoding.DecodeString(clean)
}

// EncodeBase64 is the base64 text of a pickle as stored (no newlines).
func EncodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Hash is the hex SHA-256 of a pickle: a registered function's payload
// hash, kept with the function (its identity for clients and tools; warm
// reuse is keyed by the function id).
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// HashBase64 is Hash of a pickle given as base64 text.
func HashBase64(b64 string) (string, error) {
	b, err := DecodeBase64(b64)
	if err != nil {
		return "", err
	}
	return Hash(b), nil
}
