package api

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
)

// The text gate: no text reaches the domain unless it is valid UTF-8 without
// NUL or other control characters (tab, line feed and carriage return
// aside, which Markdown bodies hold). PostgreSQL refuses NUL in a text
// column and invalid UTF-8 anywhere, and it would answer a 500; here the
// client learns which field to fix.

// badText says what is wrong with s, or "".
func badText(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return "must not contain control characters"
		}
	}
	return ""
}

// textGate checks every path and query parameter before a handler runs.
// Both are single-line, so any control character is refused.
func textGate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		var fields []models.FieldError
		check := func(name, v string) {
			if msg := badText(v); msg != "" {
				fields = append(fields, models.FieldError{Field: name, Message: msg})
			} else if strings.ContainsAny(v, "\t\n\r") {
				fields = append(fields, models.FieldError{Field: name, Message: "must be a single line"})
			}
		}
		for i, name := range c.ParamNames() {
			if i < len(c.ParamValues()) {
				check(name, c.ParamValues()[i])
			}
		}
		for name, vs := range c.QueryParams() {
			check(name, name)
			for _, v := range vs {
				check(name, v)
			}
		}
		if len(fields) > 0 {
			e := models.E(models.KindBadRequest, "invalid_text", "A parameter holds text that is not allowed: %s %s.", fields[0].Field, fields[0].Message)
			e.Fields = fields
			return e
		}
		return next(c)
	}
}

// checkText walks a decoded request (structs by their JSON names, pointers,
// slices, maps and Optional values) and names every string that fails
// badText.
func checkText(v any) error {
	var fields []models.FieldError
	walkText(reflect.ValueOf(v), "", &fields)
	if len(fields) > 0 {
		return models.Invalid(fields...)
	}
	return nil
}

func walkText(v reflect.Value, path string, out *[]models.FieldError) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkText(v.Elem(), path, out)
		}
	case reflect.String:
		if msg := badText(v.String()); msg != "" {
			*out = append(*out, models.FieldError{Field: path, Message: msg})
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // raw bytes (json.RawMessage) are checked where they are read
		}
		for i := range v.Len() {
			walkText(v.Index(i), path+"["+strconv.Itoa(i)+"]", out)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key()
			name := path + "." + k.String()
			if k.Kind() == reflect.String {
				if msg := badText(k.String()); msg != "" {
					*out = append(*out, models.FieldError{Field: path, Message: "keys " + msg})
					continue
				}
			}
			walkText(iter.Value(), strings.TrimPrefix(name, "."), out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case f.Anonymous && name == "":
				walkText(v.Field(i), path, out)
				continue
			case name == "" && path != "":
				name = path // the Value of an Optional keeps its field's name
			case name == "":
				name = f.Name
			case path != "":
				name = path + "." + name
			}
			walkText(v.Field(i), name, out)
		}
	}
}
