package alert

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxDocumentSize bounds the size of an alert document in bytes. The
// largest real documents (a JMA intensity report listing every station, a
// USGS detail feed with all its products) are well under 1 MiB.
const MaxDocumentSize = 8 << 20

// MaxNesting bounds how deeply the elements of an XML document, or the
// objects and arrays of a JSON one, may nest. Real alert documents nest at
// most about ten levels.
const MaxNesting = 32

// ReadDocument reads a whole document from r, but never more than
// MaxDocumentSize bytes: a longer one is refused with ErrTooLarge after
// reading MaxDocumentSize+1 bytes.
func ReadDocument(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxDocumentSize)
	}
	return data, nil
}

// Digest returns "sha256:" and the hex SHA-256 of data.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// checkSize refuses documents longer than MaxDocumentSize.
func checkSize(data []byte) error {
	if len(data) > MaxDocumentSize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), MaxDocumentSize)
	}
	return nil
}

// DecodeXML decodes an XML document into v with encoding/xml after checking
// it in one token pass: at most MaxDocumentSize bytes, well-formed (strict
// mode, UTF-8 only), one root element with nothing but comments and
// whitespace after it, no DOCTYPE, and at most MaxNesting levels of
// elements (encoding/xml itself has no depth limit). Errors are
// *ParseErrors of the given format.
func DecodeXML(format string, data []byte, v any) error {
	if err := checkSize(data); err != nil {
		return WrapError(format, "", err)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF")) // a UTF-8 byte order mark
	if err := checkXML(data); err != nil {
		return WrapError(format, "", err)
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return WrapError(format, "", fmt.Errorf("malformed XML: %w", err))
	}
	return nil
}

func checkXML(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) { // Token reports unclosed elements as a SyntaxError
			if roots == 0 {
				return errors.New("malformed XML: no root element")
			}
			return nil
		}
		var se *xml.SyntaxError
		if errors.As(err, &se) && se.Msg == "unexpected EOF" {
			return fmt.Errorf("malformed XML: document ends inside an element on line %d (truncated?)", se.Line)
		}
		if err != nil {
			return fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if roots++; roots > 1 {
					return fmt.Errorf("malformed XML: element <%s> after the root element", t.Name.Local)
				}
			}
			if depth++; depth > MaxNesting {
				return fmt.Errorf("%w: element <%s> is more than %d levels deep", ErrTooDeep, t.Name.Local, MaxNesting)
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return errors.New("malformed XML: text outside the root element")
			}
		case xml.Directive:
			return errors.New("malformed XML: DOCTYPE and other directives are not allowed")
		}
	}
}

// DecodeJSON decodes one JSON value from data into v after checking that
// data holds at most MaxDocumentSize bytes and nests at most MaxNesting
// levels. Trailing data after the value is an error. Errors are
// *ParseErrors of the given format, naming the field when encoding/json
// does.
func DecodeJSON(format string, data []byte, v any) error {
	return decodeJSON(format, data, v, false)
}

// DecodeJSONStrict is DecodeJSON refusing members v has no field for: for
// refuge's own schemas, where an unknown member is a mistake.
func DecodeJSONStrict(format string, data []byte, v any) error {
	return decodeJSON(format, data, v, true)
}

func decodeJSON(format string, data []byte, v any, strict bool) error {
	if err := checkSize(data); err != nil {
		return WrapError(format, "", err)
	}
	if err := checkJSONNesting(data); err != nil {
		return WrapError(format, "", err)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	if strict {
		d.DisallowUnknownFields()
	}
	if err := d.Decode(v); err != nil {
		return jsonError(format, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return Errorf(format, "", "malformed JSON: data after the top-level value")
	}
	return nil
}

// jsonError turns an encoding/json error into a *ParseError naming the
// field when there is one.
func jsonError(format string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return Errorf(format, te.Field, "got a JSON %s, want %s", te.Value, te.Type)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return Errorf(format, strings.Trim(name, `"`), "unknown field")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Errorf(format, "", "malformed JSON: document ends early (truncated?)")
	}
	return Errorf(format, "", "malformed JSON: %v", err)
}

// checkJSONNesting counts brackets outside strings.
func checkJSONNesting(data []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > MaxNesting {
				return fmt.Errorf("%w: more than %d levels of objects and arrays", ErrTooDeep, MaxNesting)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
