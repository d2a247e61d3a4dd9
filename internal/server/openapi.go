package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OpenAPI returns the API's OpenAPI 3.1 document, generated from the route
// table that also routes the requests.
func (s *Server) OpenAPI() map[string]any {
	schemas := &schemaSet{m: map[string]any{}, types: map[string]reflect.Type{}}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes() {
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": operationID(rt),
			"x-role":      rt.Access.String(),
		}
		var params []any
		for _, seg := range strings.Split(rt.Path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Access != public {
			op["security"] = []any{map[string]any{"bearer": []any{}}}
		} else {
			op["security"] = []any{}
		}
		if rt.Body != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.Body), schemas)}}}
		}
		resp := map[string]any{}
		ok := map[string]any{"description": http.StatusText(rt.Status)}
		ct := rt.ContentType
		if ct == "" {
			ct = "application/json"
		}
		if rt.Reply != nil {
			ok["content"] = map[string]any{ct: map[string]any{"schema": schemaOf(reflect.TypeOf(rt.Reply), schemas)}}
		} else {
			ok["content"] = map[string]any{ct: map[string]any{"schema": map[string]any{"type": "string"}}}
		}
		resp[strconv.Itoa(rt.Status)] = ok
		errs := append([]int(nil), rt.Errors...)
		if rt.Access != public {
			errs = append(errs, 401, 403)
		}
		sort.Ints(errs)
		for _, code := range errs {
			resp[strconv.Itoa(code)] = map[string]any{"$ref": "#/components/responses/Problem"}
		}
		op["responses"] = resp
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	schemaOf(reflect.TypeOf(Problem{}), schemas)
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "refuge controller API", "version": "1",
			"description": "Evacuate a federated private cloud's VMs before a disaster. Long work is an operation: 202 with its id, then GET /v1/operations/{id}. Errors are RFC 9457 problem details."},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas.m,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer",
				"description": "a token from refuge token create; roles viewer, operator, admin, alert-relay"}},
			"responses": map[string]any{"Problem": map[string]any{"description": "an RFC 9457 problem",
				"content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}}},
		},
	}
}

// OpenAPIJSON is the document as served and checked in (api/openapi.json).
func (s *Server) OpenAPIJSON() []byte {
	b, err := json.MarshalIndent(s.OpenAPI(), "", "  ")
	if err != nil {
		panic(err) // only maps, strings and slices
	}
	return append(b, '\n')
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.OpenAPIJSON())
}

func operationID(rt route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, seg := range strings.Split(rt.Path, "/") {
		seg = strings.Trim(seg, "{}")
		seg = strings.NewReplacer(".", "", "-", "").Replace(seg)
		if seg == "" || seg == "v1" {
			continue
		}
		b.WriteString(strings.ToUpper(seg[:1]) + seg[1:])
	}
	return b.String()
}

var (
	timeType      = reflect.TypeOf(time.Time{})
	rawType       = reflect.TypeOf(json.RawMessage{})
	marshalerType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
)

// schemaSet is the document's named schemas and the Go types they
// describe (two types of one name would otherwise share a schema).
type schemaSet struct {
	m     map[string]any
	types map[string]reflect.Type
}

// schemaOf returns the JSON Schema of t; named structs go to schemas and
// are referred to.
func schemaOf(t reflect.Type, schemas *schemaSet) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType, t.Implements(marshalerType), reflect.PointerTo(t).Implements(marshalerType):
		return map[string]any{} // its own encoding
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Struct:
		if t.Name() == "" {
			return structSchema(t, schemas)
		}
		name := t.Name()
		if other, ok := schemas.types[name]; ok && other != t {
			panic(fmt.Sprintf("server: OpenAPI: %s and %s are both named %s", other.PkgPath(), t.PkgPath(), name))
		}
		if _, ok := schemas.m[name]; !ok {
			schemas.types[name] = t
			schemas.m[name] = map[string]any{} // recursion guard
			schemas.m[name] = structSchema(t, schemas)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func structSchema(t reflect.Type, schemas *schemaSet) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" || !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				walk(ft)
				continue
			}
			if name == "" {
				name = f.Name
			}
			p := schemaOf(f.Type, schemas)
			if d := f.Tag.Get("doc"); d != "" {
				p = map[string]any{"allOf": []any{p}, "description": d}
				if _, ref := p["allOf"].([]any)[0].(map[string]any)["$ref"]; !ref {
					p = schemaOf(f.Type, schemas)
					p["description"] = d
				}
			}
			props[name] = p
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if required != nil {
		sort.Strings(required)
		out["required"] = required
	}
	return out
}
