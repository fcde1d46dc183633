package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-playground/validator/v10"
	"github.com/labstack/echo/v4"

	"github.com/grace-coaching/grace/models"
)

// maxBodyBytes caps every request body; beyond it the answer is 413.
const maxBodyBytes = 1 << 20

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// newValidator reports fields by their JSON names, as clients know them.
func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	return v
}

// bind decodes a JSON body strictly into dst (a handler's own request type)
// and validates its tags. Malformed JSON and unknown fields are 400, a body
// over 1 MiB is 413, a wrong type or a broken rule is 422.
func (h *handlers) bind(c echo.Context, dst any) error {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return models.E(models.KindBadRequest, "unsupported_media_type", "Send the body as application/json.")
		}
	}
	body, err := readRawBody(c)
	if err != nil {
		return err
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD: she would
	// see a name that is not the one she typed.
	if !utf8.Valid(body) {
		return models.E(models.KindBadRequest, "invalid_text", "The body is not valid UTF-8.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return models.E(models.KindBadRequest, "malformed_json", "The body must hold exactly one JSON object.")
	}
	if err := checkText(dst); err != nil {
		return err
	}
	return h.validate(dst)
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return models.E(models.KindBadRequest, "malformed_json", "The body is not valid JSON.")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return models.E(models.KindBadRequest, "malformed_json", "The body must be a JSON object.")
		}
		return models.Invalid(models.FieldError{Field: field, Message: "must be " + jsonKind(typ.Type)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		e := models.E(models.KindBadRequest, "unknown_field", "The body has a field this endpoint does not accept: %s.", field)
		e.Fields = []models.FieldError{{Field: field, Message: "is not a known field"}}
		return e
	}
	// Valid JSON whose value a field's own decoder refused (a date that is
	// not RFC 3339, an id that is not a UUID): the client must fix a value,
	// so this is validation, not a malformed body.
	return &models.Error{Kind: models.KindInvalid, Code: "validation_failed",
		Message: "A field has a value in the wrong format: " + err.Error(), Err: err}
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	if t.String() == "time.Time" {
		return "an RFC 3339 date-time"
	}
	return "of another type"
}

// validate checks struct tags and reports every broken rule at once.
func (h *handlers) validate(v any) error {
	err := h.validator.Struct(v)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return fmt.Errorf("validate: %w", err)
	}
	fields := make([]models.FieldError, 0, len(verrs))
	for _, fe := range verrs {
		ns := fe.Namespace()
		if i := strings.IndexByte(ns, '.'); i >= 0 {
			ns = ns[i+1:]
		}
		fields = append(fields, models.FieldError{Field: ns, Message: ruleMessage(fe)})
	}
	return models.Invalid(fields...)
}

func ruleMessage(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required":
		return "is required"
	case "email":
		return "must be a valid email address"
	case "min":
		if fe.Kind() == reflect.String {
			return "must be at least " + fe.Param() + " characters"
		}
		return "must be at least " + fe.Param()
	case "max":
		if fe.Kind() == reflect.String {
			return "must be at most " + fe.Param() + " characters"
		}
		return "must be at most " + fe.Param()
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "uuid":
		return "must be a UUID"
	case "url", "http_url":
		return "must be an http or https URL"
	case "len":
		return "must be exactly " + fe.Param() + " characters"
	case "numeric":
		return "must contain digits only"
	case "eq":
		return "must be " + fe.Param()
	case "unique":
		return "must not repeat items"
	}
	return "is not valid (" + fe.Tag() + ")"
}

// pathUUID parses an {id} path parameter; a malformed id is simply not found.
func pathUUID(c echo.Context, name, what string) (uuidValue, error) {
	id, err := parseUUID(c.Param(name))
	if err != nil {
		return uuidValue{}, models.NotFound(what)
	}
	return id, nil
}

// pageParams reads ?limit=&cursor=, answering 400 for a bad limit.
func pageParams(c echo.Context) (models.PageParams, error) {
	p := models.PageParams{Cursor: c.QueryParam("cursor")}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > models.MaxPageLimit {
			e := models.E(models.KindBadRequest, "invalid_query", "limit must be a whole number from 1 to %d.", models.MaxPageLimit)
			e.Fields = []models.FieldError{{Field: "limit", Message: fmt.Sprintf("must be from 1 to %d", models.MaxPageLimit)}}
			return p, e
		}
		p.Limit = n
	}
	return p, nil
}

// list is the envelope of every list response.
type list[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// renderPage maps a domain page to its JSON envelope; data is never null.
func renderPage[M, T any](c echo.Context, p models.Page[M], conv func(M) T) error {
	out := list[T]{Data: make([]T, 0, len(p.Items)), NextCursor: p.NextCursor}
	for _, m := range p.Items {
		out.Data = append(out.Data, conv(m))
	}
	return c.JSON(http.StatusOK, out)
}

// readRawBody reads a body as sent, up to the 1 MiB cap: the JSON binder's
// input, and a webhook's, whose signature covers the exact bytes. Every
// route that reads a body maps a read failure the same way through it.
func readRawBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge, "The request body is larger than 1 MiB.")
		}
		return nil, models.E(models.KindBadRequest, "unreadable_body", "The request body could not be read.")
	}
	return body, nil
}
