package alert

import (
	"errors"
	"fmt"
)

// Errors a document can be refused with, whatever its format. Test for them
// with errors.Is.
var (
	// ErrTooLarge: the document is longer than MaxDocumentSize.
	ErrTooLarge = errors.New("document too large")
	// ErrTooDeep: the document nests deeper than MaxNesting.
	ErrTooDeep = errors.New("document nested too deeply")
	// ErrUnknownFormat: no registered format recognises the document.
	ErrUnknownFormat = errors.New("not a recognised alert document")
	// ErrNoAlert: the document is valid but holds no alert (an empty feed).
	ErrNoAlert = errors.New("document holds no alert")
	// ErrMultipleAlerts: Parse was given a document holding several
	// alerts (a feed); use ParseAll.
	ErrMultipleAlerts = errors.New("document holds several alerts")
)

// ParseError says what is wrong with a document and where: Path names the
// element (XML, "Body/Earthquake/Hypocenter") or field (JSON,
// "features[3].geometry.coordinates") at fault, or is empty for the whole
// document.
type ParseError struct {
	Format string
	Path   string
	Err    error
}

func (e *ParseError) Error() string {
	if e.Path == "" {
		return e.Format + ": " + e.Err.Error()
	}
	return e.Format + ": " + e.Path + ": " + e.Err.Error()
}

func (e *ParseError) Unwrap() error { return e.Err }

// Errorf returns a *ParseError for the given format and path.
func Errorf(format, path, msg string, args ...any) error {
	return &ParseError{Format: format, Path: path, Err: fmt.Errorf(msg, args...)}
}

// WrapError returns err as a *ParseError for the given format and path,
// or nil when err is nil. A *ParseError is returned as it is.
func WrapError(format, path string, err error) error {
	if err == nil {
		return nil
	}
	var pe *ParseError
	if errors.As(err, &pe) {
		return err
	}
	return &ParseError{Format: format, Path: path, Err: err}
}

// Nth is the path of the i-th (from 0) element called path among its
// siblings, written the XPath way (from 1): Nth("info", 0) is "info[1]".
func Nth(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i+1) }
