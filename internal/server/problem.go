package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

func writeProblem(w http.ResponseWriter, status int, detail string, errs ...FieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// MaxBody is the largest request body accepted.
const MaxBody = 64 << 10

// decode reads a JSON body strictly into v: one object, no unknown fields,
// at most MaxBody bytes. It writes the problem and returns false on error.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeProblem(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json", ct))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value in the body")
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body exceeds %d bytes", MaxBody))
	case errors.Is(err, io.EOF):
		writeProblem(w, http.StatusBadRequest, "the body is empty: send a JSON object")
	case errors.As(err, &ute):
		writeProblem(w, http.StatusUnprocessableEntity, "a field has the wrong type",
			FieldError{Field: ute.Field, Message: fmt.Sprintf("want %s, got JSON %s", ute.Type, ute.Value)})
	case errors.As(err, &se):
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeProblem(w, http.StatusUnprocessableEntity, "unknown field", FieldError{Field: f, Message: "not a field of this request"})
	default:
		writeProblem(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
	}
	return false
}
