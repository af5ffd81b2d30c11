package api

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// The OpenAPI 3.1 description of the API (GET /openapi.json), from which
// GET /docs is rendered (docs.go). Response schemas are made from the Go
// types the handlers encode (schemaOf), so they cannot drift from them;
// request bodies, which the handlers read field by field, are written out
// here. TestOpenAPIMatchesRouter keeps the paths equal to the router's
// routes and TestResponsesMatchOpenAPI checks real answers against it.

type document struct {
	OpenAPI    string                `json:"openapi"`
	Info       info                  `json:"info"`
	Tags       []tag                 `json:"tags"`
	Security   []securityRequirement `json:"security,omitempty"`
	Paths      map[string]pathItem   `json:"paths"`
	Components components            `json:"components"`
	order      []string              // paths in the order they were added
	ops        map[string]*operation // "METHOD path" -> operation
}

type info struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Description string `json:"description"`
}

type tag struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// pathItem maps a lower-case HTTP method to its operation.
type pathItem map[string]*operation

type operation struct {
	OperationID string                 `json:"operationId"`
	Summary     string                 `json:"summary"`
	Description string                 `json:"description,omitempty"`
	Tags        []string               `json:"tags"`
	Parameters  []parameter            `json:"parameters,omitempty"`
	RequestBody *requestBody           `json:"requestBody,omitempty"`
	Responses   map[string]*oaResponse `json:"responses"`
	// Security overrides the document's: an empty list for a public
	// operation when tokens are configured.
	Security *[]securityRequirement `json:"security,omitempty"`
	method   string
	path     string
}

// securityRequirement maps a security scheme's name to its scopes (none).
type securityRequirement map[string][]string

type securityScheme struct {
	Type         string `json:"type"`
	Scheme       string `json:"scheme"`
	Description  string `json:"description,omitempty"`
	BearerFormat string `json:"bearerFormat,omitempty"`
}

type header struct {
	Description string  `json:"description"`
	Schema      *schema `json:"schema"`
}

type parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description"`
	Required    bool    `json:"required"`
	Schema      *schema `json:"schema"`
}

type requestBody struct {
	Description string               `json:"description,omitempty"`
	Required    bool                 `json:"required"`
	Content     map[string]mediaType `json:"content"`
}

type mediaType struct {
	Schema  *schema `json:"schema"`
	Example any     `json:"example,omitempty"`
}

type oaResponse struct {
	Description string               `json:"description"`
	Headers     map[string]header    `json:"headers,omitempty"`
	Content     map[string]mediaType `json:"content,omitempty"`
}

type components struct {
	Schemas         map[string]*schema        `json:"schemas"`
	SecuritySchemes map[string]securityScheme `json:"securitySchemes,omitempty"`
}

// schema is the part of JSON Schema (2020-12, as OpenAPI 3.1 has it) that
// this API needs.
type schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Title                string             `json:"title,omitempty"`
	Type                 any                `json:"type,omitempty"` // a string, or a list for nullable types
	Format               string             `json:"format,omitempty"`
	Description          string             `json:"description,omitempty"`
	Enum                 []string           `json:"enum,omitempty"`
	Properties           map[string]*schema `json:"properties,omitempty"`
	Required             []string           `json:"required,omitempty"`
	AdditionalProperties any                `json:"additionalProperties,omitempty"` // false or a *schema
	Items                *schema            `json:"items,omitempty"`
	OneOf                []*schema          `json:"oneOf,omitempty"`
	AnyOf                []*schema          `json:"anyOf,omitempty"`
	Not                  *schema            `json:"not,omitempty"`
	MinItems             *int               `json:"minItems,omitempty"`
	MaxItems             *int               `json:"maxItems,omitempty"`
	Minimum              *float64           `json:"minimum,omitempty"`
	Maximum              *float64           `json:"maximum,omitempty"`
	Examples             []any              `json:"examples,omitempty"`
	order                []string           // property order, for the docs page
}

// prop adds a property (in order) and returns s.
func (s *schema) prop(name string, p *schema, required bool) *schema {
	if s.Properties == nil {
		s.Properties = map[string]*schema{}
	}
	s.Properties[name] = p
	s.order = append(s.order, name)
	if required {
		s.Required = append(s.Required, name)
	}
	return s
}

// without forbids the fields: the object must have none of them.
func (s *schema) without(fields ...string) *schema {
	s.Not = &schema{AnyOf: requiredEach(fields)}
	return s
}

// needsOneOf requires at least one of the fields.
func (s *schema) needsOneOf(fields ...string) *schema {
	s.AnyOf = requiredEach(fields)
	return s
}

func requiredEach(fields []string) []*schema {
	out := make([]*schema, len(fields))
	for i, f := range fields {
		out[i] = &schema{Required: []string{f}}
	}
	return out
}

func objSchema(desc string) *schema { return &schema{Type: "object", Description: desc} }
func strSchema(desc string) *schema { return &schema{Type: "string", Description: desc} }
func refSchema(name string) *schema { return &schema{Ref: "#/components/schemas/" + name} }
func arrayOf(items *schema, desc string) *schema {
	return &schema{Type: "array", Items: items, Description: desc}
}

// fieldDocs describe the fields of types from other packages, which carry
// no doc tags.
var fieldDocs = map[reflect.Type]map[string]string{
	reflect.TypeFor[faastype.Timings](): {
		"queue":       "waiting for a free sandbox on the node",
		"boot":        "restoring or replacing an interpreter",
		"deserialize": "dill.loads of the function and the arguments",
		"run":         "the function itself",
		"serialize":   "dill.dumps of the result",
		"total":       "the whole run on the node",
	},
}

// schemaOf describes the JSON encoding/json makes of a value of type t:
// json tags name the fields, omitempty makes one optional (a nil pointer
// is left out), a pointer without omitempty can be null, `doc` and `enum` tags describe a field.
// Objects are closed (additionalProperties false): a field the document
// does not name is a field the handlers do not send.
func schemaOf(t reflect.Type) *schema {
	switch t {
	case reflect.TypeFor[time.Time]():
		return &schema{Type: "string", Format: "date-time"}
	case reflect.TypeFor[json.RawMessage]():
		return &schema{Description: "any JSON value"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		if tp, ok := s.Type.(string); ok {
			s.Type = []string{tp, "null"}
		}
		return s
	case reflect.String:
		return &schema{Type: "string"}
	case reflect.Bool:
		return &schema{Type: "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &schema{Type: "integer"}
	case reflect.Float32, reflect.Float64:
		return &schema{Type: "number"}
	case reflect.Slice, reflect.Array:
		return &schema{Type: "array", Items: schemaOf(t.Elem())}
	case reflect.Map:
		return &schema{Type: "object", AdditionalProperties: schemaOf(t.Elem())}
	case reflect.Struct:
		s := &schema{Type: "object", AdditionalProperties: false}
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			omitempty := slices.Contains(strings.Split(opts, ","), "omitempty")
			ft := f.Type
			if omitempty && ft.Kind() == reflect.Pointer {
				ft = ft.Elem() // left out when nil, never null
			}
			p := schemaOf(ft)
			p.Description = f.Tag.Get("doc")
			if d := fieldDocs[t][name]; d != "" {
				p.Description = d
			}
			if e := f.Tag.Get("enum"); e != "" {
				p.Enum = strings.Split(e, ",")
			}
			s.prop(name, p, !omitempty)
		}
		return s
	}
	panic(fmt.Sprintf("api: openapi: no schema for %v", t))
}

func schemaFor[T any](desc string) *schema {
	s := schemaOf(reflect.TypeFor[T]())
	s.Description = desc
	return s
}

func (d *document) component(name string, s *schema) { d.Components.Schemas[name] = s }

// op adds an operation.
func (d *document) op(method, path string, o *operation) {
	o.method, o.path = method, path
	if _, ok := d.Paths[path]; !ok {
		d.Paths[path] = pathItem{}
		d.order = append(d.order, path)
	}
	d.Paths[path][strings.ToLower(method)] = o
	d.ops[method+" "+path] = o
}

// The media types of the answers.
const (
	jsonType = "application/json"
	htmlType = "text/html"
	textType = "text/plain"
)

func jsonBody(s *schema) map[string]mediaType { return map[string]mediaType{jsonType: {Schema: s}} }

// responses builds a response map: ok is the 200 answer, errs maps an
// error status to when it happens (answered with the Error body).
func responses(okDesc string, ok map[string]mediaType, errs map[int]string) map[string]*oaResponse {
	out := map[string]*oaResponse{"200": {Description: okDesc, Content: ok}}
	for code, when := range errs {
		out[fmt.Sprint(code)] = &oaResponse{Description: when, Content: jsonBody(refSchema("Error"))}
	}
	return out
}

const storeDown = "Redis does not answer"

func taskIDParam() parameter {
	return parameter{Name: "task_id", In: "path", Required: true, Description: "a task id (a UUID, as POST /execute_function returned it)",
		Schema: &schema{Type: "string", Format: "uuid"}}
}

// buildOpenAPI describes the API as configured by opts.
func buildOpenAPI(opts Options) *document {
	d := &document{
		OpenAPI: "3.1.0",
		Info: info{
			Title:   "WasmFaaS",
			Version: "1",
			Description: "Run untrusted Python functions as a service: register a function, run it with arguments, " +
				"get the result. Every run happens in CPython 3.11 compiled to WebAssembly, without host files, " +
				"environment or network, under a memory cap and a timeout.\n\n" +
				"Payloads are `serialize(obj) = base64(dill.dumps(obj))` (the course protocol; newlines in the base64 " +
				"are accepted). A function can also be sent as source text and called with JSON arguments, for " +
				"clients on any language or Python version.\n\n" +
				"Task statuses move QUEUED → RUNNING → COMPLETED or FAILED, never backwards. Every error answer is " +
				"a JSON object `{\"detail\": \"...\"}`: 400 a payload or parameter that is not what the route needs, " +
				"401 no valid API token (when the server has tokens), " +
				"404 an unknown id or route, 405 a method the route does not have, 409 a conflict with the task's " +
				"status, 413 a body or batch over the limit, 422 a body that is not the expected JSON object, " +
				"429 over a tenant's quota (when the server has quotas), 500 a bug, 503 Redis does not answer.",
		},
		Tags: []tag{
			{"functions", "Register functions."},
			{"tasks", "Run functions and follow their tasks."},
			{"platform", "What the functions run on, health, metrics and this description."},
			{"dashboard", "The live dashboard."},
		},
		Paths:      map[string]pathItem{},
		Components: components{Schemas: map[string]*schema{}},
		ops:        map[string]*operation{},
	}

	d.component("Error", schemaFor[errorBody]("The body of every error answer."))
	d.Components.Schemas["Error"].Properties["detail"].Description = "what is wrong, in plain text"

	iso := &schema{Type: "string", Enum: []string{string(faastype.Warm), string(faastype.Fresh)},
		Description: "warm (default): an interpreter that ran this function may run it again, never another function; " +
			"fresh: every task gets a pristine interpreter"}
	lim := opts.BundleLimits.WithDefaults()
	modules := &schema{Type: "object", AdditionalProperties: strSchema("the file's text"),
		Description: "modules and packages sent with the function, as file paths relative to the bundle's root " +
			"(`mymod.py`, `pkg/__init__.py`, `pkg/data.json`) mapped to their text; merged with `bundle`"}
	zipped := strSchema(fmt.Sprintf("base64 of a zip (or wheel) of pure-Python modules and packages, mounted read-only "+
		"first on the function's sys.path in the sandbox. Source and data files only: no compiled extensions "+
		"(.so, .pyd, .dll, .dylib), links, absolute or `..` paths; __pycache__ and .pyc files are dropped; at most "+
		"%d files and %d bytes uncompressed; top-level names may not shadow the standard library or dill", lim.MaxFiles, lim.MaxBytes))
	retryObj := objSchema("How a task that failed in the function's code runs again. Missing fields take the defaults.").
		prop("max", &schema{Type: "integer", Description: fmt.Sprintf("the most retries after the first attempt, 0 to %d", faastype.MaxRetries)}, true).
		prop("backoff", &schema{Type: "string", Enum: []string{"exponential", "linear", "fixed"},
			Description: "exponential (default): base, 2 base, 4 base, ...; linear: base, 2 base, 3 base, ...; fixed: base each time"}, false).
		prop("base", &schema{Type: []string{"string", "number"}, Description: `the first delay: a duration such as "1s" or "500ms", or seconds (default 1s)`}, false).
		prop("max_delay", &schema{Type: []string{"string", "number"}, Description: `the longest delay (default 1m, or base if larger; at most 24h)`}, false).
		prop("jitter", &schema{Type: "boolean", Description: "draw each delay from [d/2, d] (default true)"}, false).
		prop("on", arrayOf(strSchema("an exception class name or an error kind"),
			"what is retried: Python exception class names (the raised exception's own class, compared after the last dot; "+
				"base classes do not match) and error kinds USER_EXCEPTION, USER_EXIT, TIMEOUT, MEMORY_LIMIT; default: every USER_EXCEPTION"), false)
	retryObj.AdditionalProperties = false
	d.component("RetryPolicy", &schema{AnyOf: []*schema{refSchema("RetryPolicyObject"),
		{Type: "integer", Description: "a number of retries, with every default"}, {Type: "null", Description: "no retries"}}})
	d.component("RetryPolicyObject", retryObj)
	retries := func(whose string) *schema {
		return &schema{AnyOf: []*schema{refSchema("RetryPolicy")}, Description: whose}
	}
	callback := func(whose string) *schema {
		return &schema{Type: []string{"string", "null"}, Format: "uri", Description: whose + ": when the task is final " +
			"(COMPLETED, FAILED, cancelled), its GET /result body is POSTed there, signed (X-WasmFaaS-Signature, see GET /webhook_secret), " +
			"with an Idempotency-Key of `<task_id>:<attempts>`, and retried with back-off until a 2xx answer or the server gives up " +
			"(the task's `callback` object in GET /result says which). Only http and https; an address in a denied range " +
			"(loopback, private, link-local, ... unless the server allows it) is refused with 400; null or \"\": none"}
	}
	withCallOptions := func(s *schema) *schema {
		return s.prop("retries", retries("this call's retry policy, instead of the function's (0 or null: none)"), false).
			prop("callback_url", callback("this call's completion webhook, instead of the function's"), false).
			prop("delay", &schema{Type: []string{"string", "number"}, Description: fmt.Sprintf(
				`start no sooner than this after the request: a duration such as "30s" or seconds; up to %s. The task waits QUEUED, `+
					`with run_at in GET /status`, MaxTaskDelay)}, false).
			prop("run_at", &schema{Type: []string{"string", "number"}, Format: "date-time",
				Description: "start no sooner than this time: RFC 3339 or unix seconds (not with delay); a time past means at once"}, false)
	}
	dill := objSchema("A function pickled by dill.").
		prop("name", strSchema("the function's name"), true).
		prop("payload", strSchema("serialize(fn): base64 of dill.dumps(fn), made with the sandbox's Python (see GET /runtime)"), true).
		prop("isolation", iso, false).
		prop("retries", retries("the retry policy of the function's tasks (a call may give its own)"), false).
		prop("timeout", &schema{Type: []string{"string", "number"}, Description: `the function's own timeout: a duration such as "10s" or seconds, at most the nodes' (GET /runtime function_limits)`}, false).
		prop("memory_mb", &schema{Type: "integer", Description: "the function's own memory cap in MiB, from 64 to the nodes' (GET /runtime function_limits)"}, false).
		prop("env", &schema{Type: "object", AdditionalProperties: strSchema("the value"), Description: "environment variables: os.environ in the sandbox holds exactly these and the secrets; shown by GET /function"}, false).
		prop("secrets", &schema{Type: "object", AdditionalProperties: strSchema("the value"), Description: "secret environment variables: in os.environ like env, but GET /function lists their names only"}, false).
		prop("callback_url", callback("the default completion webhook of the function's tasks (a call may give its own, or null)"), false).
		prop("modules", modules, false).
		prop("bundle", zipped, false)
	dill.Title = "dill function"
	dill.without("source")
	source := objSchema("A function as Python source text (any client, any Python version).").
		prop("name", strSchema("the function's name"), true).
		prop("source", strSchema("Python source that defines the function"), true).
		prop("entrypoint", strSchema("the name of the function to call, if not name (a Python identifier)"), false).
		prop("isolation", iso, false).
		prop("retries", retries("the retry policy of the function's tasks (a call may give its own)"), false).
		prop("timeout", &schema{Type: []string{"string", "number"}, Description: `the function's own timeout: a duration such as "10s" or seconds, at most the nodes' (GET /runtime function_limits)`}, false).
		prop("memory_mb", &schema{Type: "integer", Description: "the function's own memory cap in MiB, from 64 to the nodes' (GET /runtime function_limits)"}, false).
		prop("env", &schema{Type: "object", AdditionalProperties: strSchema("the value"), Description: "environment variables: os.environ in the sandbox holds exactly these and the secrets; shown by GET /function"}, false).
		prop("secrets", &schema{Type: "object", AdditionalProperties: strSchema("the value"), Description: "secret environment variables: in os.environ like env, but GET /function lists their names only"}, false).
		prop("callback_url", callback("the default completion webhook of the function's tasks (a call may give its own, or null)"), false).
		prop("modules", modules, false).
		prop("bundle", zipped, false)
	source.Title = "source function"
	source.without("payload")
	d.component("RegisterRequest", &schema{OneOf: []*schema{dill, source}})
	d.component("RegisterResponse", schemaFor[registerResponse]("The function was registered."))
	d.op("POST", "/register_function", &operation{
		OperationID: "registerFunction", Tags: []string{"functions"},
		Summary: "Register a function",
		Description: "A dill pickle is checked without being unpickled: it must be a callable that the sandbox can load. " +
			"dill pickles a function of an importable module by reference (`mymod.f`): send that module along " +
			"(`modules` or `bundle`, a bundle stored once per distinct content and tenant, checked without running it), " +
			"define the function in `__main__`, pickle with `dill.settings[\"recurse\"] = True`, or send source text. " +
			"References into the bundle's modules (`mymod.f`, instances of `mymod.Point`) are then accepted in the function " +
			"and in its calls' arguments.",
		RequestBody: &requestBody{Required: true, Content: jsonBody(refSchema("RegisterRequest"))},
		Responses: responses("the new function's id", jsonBody(refSchema("RegisterResponse")), map[int]string{
			400: "the payload is not base64 or not a dill-pickled callable, is pickled by reference to a module the sandbox lacks, " +
				"or by another Python version; or the bundle is not a zip, holds a compiled extension, a link, an absolute or `..` path, " +
				"or shadows a module the sandbox has; or callback_url is not an http(s) URL, names a denied address, or webhooks are off",
			413: fmt.Sprintf("the body is larger than %d bytes, or the bundle has more than %d files or %d bytes uncompressed",
				opts.MaxBodyBytes, lim.MaxFiles, lim.MaxBytes),
			422: "the body is not a JSON object, or a field is missing or has the wrong type",
			503: storeDown,
		}),
	})

	dillCall := objSchema("Arguments pickled by dill.").
		prop("function_id", &schema{Type: "string", Format: "uuid", Description: "a registered function's id"}, true).
		prop("payload", strSchema("serialize((args, kwargs)): base64 of dill.dumps of a (tuple, dict) pair"), true)
	withCallOptions(dillCall)
	dillCall.Title = "dill arguments"
	dillCall.without("args", "kwargs")
	jsonCall := objSchema("JSON arguments, args and/or kwargs: the result comes back as JSON too (result_json).").
		prop("function_id", &schema{Type: "string", Format: "uuid", Description: "a registered function's id"}, true).
		prop("args", arrayOf(nil, "positional arguments (default [])"), false).
		prop("kwargs", &schema{Type: "object", Description: "keyword arguments (default {})"}, false)
	withCallOptions(jsonCall)
	jsonCall.Title = "JSON arguments"
	jsonCall.needsOneOf("args", "kwargs").without("payload")
	d.component("ExecuteRequest", &schema{OneOf: []*schema{dillCall, jsonCall}})
	d.component("ExecuteResponse", schemaFor[executeResponse]("The task was created."))
	d.op("POST", "/execute_function", &operation{
		OperationID: "executeFunction", Tags: []string{"tasks"},
		Summary:     "Run a function",
		Description: "Creates a QUEUED task; a dispatcher runs it in a sandbox. Follow it with GET /status or GET /result.",
		RequestBody: &requestBody{Required: true, Content: jsonBody(refSchema("ExecuteRequest"))},
		Responses: responses("the new task's id", jsonBody(refSchema("ExecuteResponse")), map[int]string{
			400: "the function id is not a UUID, the payload is not base64 or not a pickled (tuple, dict) pair, or callback_url " +
				"is not an http(s) URL, names a denied address (loopback, private, link-local, ...), or webhooks are off on the server",
			404: "no such function",
			413: fmt.Sprintf("the body is larger than %d bytes", opts.MaxBodyBytes),
			422: "the body is not a JSON object, a field is missing or has the wrong type, or both payload and args/kwargs are given",
			503: storeDown,
		}),
	})

	maxBatch := opts.MaxBatch
	one := 1
	call := objSchema(`One call's JSON arguments.`).
		prop("args", arrayOf(nil, "positional arguments (default [])"), false).
		prop("kwargs", &schema{Type: "object", Description: "keyword arguments (default {})"}, false)
	call.AdditionalProperties = false
	d.component("Call", call)
	dillBatch := objSchema("Each call's arguments pickled by dill.").
		prop("function_id", &schema{Type: "string", Format: "uuid", Description: "a registered function's id"}, true).
		prop("payloads", &schema{Type: "array", Items: strSchema("serialize((args, kwargs))"), MinItems: &one, MaxItems: &maxBatch,
			Description: "one payload per call"}, true)
	withCallOptions(dillBatch)
	dillBatch.Title = "dill arguments"
	dillBatch.without("calls")
	jsonBatch := objSchema("Each call's arguments as JSON: the results come back as JSON too (result_json).").
		prop("function_id", &schema{Type: "string", Format: "uuid", Description: "a registered function's id"}, true).
		prop("calls", &schema{Type: "array", Items: refSchema("Call"), MinItems: &one, MaxItems: &maxBatch,
			Description: "one object per call"}, true)
	withCallOptions(jsonBatch)
	jsonBatch.Title = "JSON arguments"
	jsonBatch.without("payloads")
	d.component("BatchRequest", &schema{OneOf: []*schema{dillBatch, jsonBatch}})
	d.component("BatchResponse", schemaFor[batchResponse]("The tasks were created."))
	d.op("POST", "/execute_batch", &operation{
		OperationID: "executeBatch", Tags: []string{"tasks"},
		Summary: "Run a function on many argument sets",
		Description: fmt.Sprintf("Creates one QUEUED task per call, all of them or none, queued in the order of the calls. "+
			"Each call is checked as POST /execute_function checks its one; an error names the bad call's index "+
			"(`payloads[3]: ...`). At most %d calls per request.", maxBatch),
		RequestBody: &requestBody{Required: true, Content: jsonBody(refSchema("BatchRequest"))},
		Responses: responses("the new tasks' ids, in the order of the calls", jsonBody(refSchema("BatchResponse")), map[int]string{
			400: "the function id is not a UUID, a payload is not base64 or not a pickled (tuple, dict) pair, or callback_url is refused " +
				"(as for POST /execute_function)",
			404: "no such function",
			413: fmt.Sprintf("more than %d calls, or the body is larger than %d bytes", maxBatch, opts.MaxBodyBytes),
			422: "the body is not a JSON object; a field is missing, empty or has the wrong type; both payloads and calls are given; " +
				"or a call is not an object with args (array) and kwargs (object)",
			503: storeDown,
		}),
	})

	d.component("FunctionResponse", schemaFor[functionResponse]("The function and its settings."))
	d.op("GET", "/function/{function_id}", &operation{
		OperationID: "getFunction", Tags: []string{"functions"},
		Summary:     "Get a function and its settings",
		Description: "Its name, kind, isolation, bundle modules, retry policy, timeout, memory cap and environment; secrets by name only.",
		Parameters: []parameter{{Name: "function_id", In: "path", Required: true, Description: "a function id (a UUID, as POST /register_function returned it)",
			Schema: &schema{Type: "string", Format: "uuid"}}},
		Responses: responses("the function", jsonBody(refSchema("FunctionResponse")), map[int]string{
			400: "the function id is not a UUID", 404: "no such function", 503: storeDown,
		}),
	})

	d.component("StatusResponse", schemaFor[statusResponse]("The task's status."))
	d.op("GET", "/status/{task_id}", &operation{
		OperationID: "getStatus", Tags: []string{"tasks"},
		Summary:    "Get a task's status",
		Parameters: []parameter{taskIDParam()},
		Responses: responses("the status", jsonBody(refSchema("StatusResponse")), map[int]string{
			400: "the task id is not a UUID", 404: "no such task (or it was removed after the result TTL)", 503: storeDown,
		}),
	})

	d.component("ResultResponse", schemaFor[resultResponse]("The task, with its result once it is final."))
	d.op("GET", "/result/{task_id}", &operation{
		OperationID: "getResult", Tags: []string{"tasks"},
		Summary:     "Get a task's result",
		Description: "Answers at once, for a task in any status; with `wait`, it waits for the task to become final (long-polling).",
		Parameters: []parameter{taskIDParam(), {Name: "wait", In: "query", Required: false,
			Description: fmt.Sprintf(`how long to wait for the task to become final: a duration such as "5s" or a number of seconds; at most %s`, opts.MaxWait),
			Schema:      &schema{Type: "string", Examples: []any{"5s", "10"}}}},
		Responses: responses("the task; result is null until it is final", jsonBody(refSchema("ResultResponse")), map[int]string{
			400: "the task id is not a UUID, or wait is not a duration", 404: "no such task (or it was removed after the result TTL)", 503: storeDown,
		}),
	})

	d.component("CancelResponse", schemaFor[cancelResponse]("The task was cancelled."))
	d.op("DELETE", "/task/{task_id}", &operation{
		OperationID: "cancelTask", Tags: []string{"tasks"},
		Summary: "Cancel a task",
		Description: "A QUEUED task will not run; a RUNNING one is stopped (its sandbox is killed). Either becomes FAILED " +
			"with error kind CANCELLED, and its result is a pickled RuntimeError.",
		Parameters: []parameter{taskIDParam()},
		Responses: responses("the task is now FAILED (CANCELLED)", jsonBody(refSchema("CancelResponse")), map[int]string{
			400: "the task id is not a UUID", 404: "no such task", 409: "the task is already COMPLETED or FAILED", 503: storeDown,
		}),
	})

	d.component("TasksResponse", schemaFor[tasksResponse]("The caller's newest tasks."))
	zero, most := 0.0, float64(maxRecent)
	limitParam := func(what string) parameter {
		return parameter{Name: "limit", In: "query", Required: false,
			Description: fmt.Sprintf("how many %s to list (default %d, at most %d)", what, defaultRecent, maxRecent),
			Schema:      &schema{Type: "integer", Minimum: &zero, Maximum: &most}}
	}
	var statuses []string
	for _, st := range taskStatuses {
		statuses = append(statuses, string(st))
	}
	d.op("GET", "/tasks", &operation{
		OperationID: "listTasks", Tags: []string{"tasks"},
		Summary: "List the caller's recent tasks",
		Description: fmt.Sprintf("The newest tasks of the caller's tenant, newest first: of the last %d it submitted "+
			"(the list the dashboard shows), those not yet removed after the result TTL; with `status`, only those of them "+
			"in that status. Without payloads, results or output: GET /result/{task_id} has those.", maxRecent),
		Parameters: []parameter{limitParam("tasks"), {Name: "status", In: "query", Required: false,
			Description: "only the tasks in this status",
			Schema:      &schema{Type: "string", Enum: statuses}}},
		Responses: responses("the tasks", jsonBody(refSchema("TasksResponse")), map[int]string{
			400: "limit is not a whole number in range, or status is not a task status", 503: storeDown,
		}),
	})

	d.component("WebhookSecretResponse", schemaFor[webhookSecretResponse]("The caller's webhook signing key."))
	d.op("GET", "/webhook_secret", &operation{
		OperationID: "getWebhookSecret", Tags: []string{"tasks"},
		Summary: "Get the key the caller's webhooks are signed with",
		Description: "Completion webhooks (callback_url) carry `X-WasmFaaS-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, \"<t>.<body>\")>` " +
			"and `X-WasmFaaS-Timestamp: <t>`, where key is this secret (its text as bytes) and body the request's exact bytes; " +
			"a receiver recomputes it, compares in constant time and refuses a timestamp more than tolerance_seconds from its clock. " +
			"Also sent: `Idempotency-Key: <task_id>:<attempts>` (the same for every delivery of a task), `X-WasmFaaS-Task-Id` and " +
			"`X-WasmFaaS-Delivery-Attempt`. Each tenant has its own key; in open mode it is the server's --webhook-secret.",
		Responses: responses("the caller's key", jsonBody(refSchema("WebhookSecretResponse")), map[int]string{
			404: "webhooks are off on this server (no --webhook-secret)",
		}),
	})

	d.component("RuntimeResponse", schemaFor[runtimeResponse]("What functions run on."))
	d.op("GET", "/runtime", &operation{
		OperationID: "getRuntime", Tags: []string{"platform"},
		Summary:     "Describe the sandbox",
		Description: "The sandbox's Python and dill versions (pickle with the same ones, or register source text), and the limits of the dispatchers and workers.",
		Responses:   responses("the runtime", jsonBody(refSchema("RuntimeResponse")), map[int]string{503: storeDown}),
	})

	d.component("HealthResponse", schemaFor[healthResponse]("Health."))
	d.op("GET", "/healthz", &operation{
		OperationID: "healthz", Tags: []string{"platform"},
		Summary: "Check health",
		Responses: map[string]*oaResponse{
			"200": {Description: "the API and Redis answer", Content: jsonBody(refSchema("HealthResponse"))},
			"503": {Description: storeDown, Content: jsonBody(refSchema("HealthResponse"))},
		},
	})

	d.op("GET", "/metrics", &operation{
		OperationID: "metrics", Tags: []string{"platform"},
		Summary: "Prometheus metrics",
		Description: "The faas_* metrics are cluster-wide, read from Redis at each scrape (every API instance reports the " +
			"same); go_* and process_* describe this API process. faas_store_up is 0 when Redis does not answer. " +
			"The metrics are listed in the README.",
		Responses: map[string]*oaResponse{"200": {Description: "metrics in the Prometheus text format (or OpenMetrics, as the scraper asks)",
			Content: map[string]mediaType{textType: {Schema: strSchema("")}}}},
	})

	d.op("GET", "/openapi.json", &operation{
		OperationID: "openapi", Tags: []string{"platform"},
		Summary:   "This description (OpenAPI 3.1)",
		Responses: map[string]*oaResponse{"200": {Description: "the OpenAPI document", Content: jsonBody(objSchema(""))}},
	})
	d.op("GET", "/docs", &operation{
		OperationID: "docs", Tags: []string{"platform"},
		Summary:   "This description as a web page",
		Responses: map[string]*oaResponse{"200": {Description: "an HTML page", Content: map[string]mediaType{htmlType: {Schema: strSchema("")}}}},
	})

	d.op("GET", "/", &operation{
		OperationID: "dashboard", Tags: []string{"dashboard"},
		Summary: "The dashboard",
		Description: "A page that shows the queue, the recent tasks, the dispatchers and workers and the throughput, refreshed every second from GET /dashboard/state; " +
			"charts of the last 15 minutes from GET /dashboard/series; and a page per task (`/#/task/<task_id>`) from GET /dashboard/task/{task_id}.",
		Responses: map[string]*oaResponse{"200": {Description: "an HTML page", Content: map[string]mediaType{htmlType: {Schema: strSchema("")}}}},
	})
	d.component("DashboardState", schemaFor[dashboardState]("What the dashboard shows: cluster-wide counts and nodes, and the caller's own tasks."))
	d.op("GET", "/dashboard/state", &operation{
		OperationID: "dashboardState", Tags: []string{"dashboard"},
		Summary:    "The dashboard's data",
		Parameters: []parameter{limitParam("recent tasks")},
		Responses: responses("cluster-wide counts, the caller's recent tasks and the nodes", jsonBody(refSchema("DashboardState")), map[int]string{
			400: "limit is not a whole number in range", 503: storeDown,
		}),
	})
	d.component("DashboardSeries", schemaFor[dashSeries]("The cluster's last 15 minutes, from periodic samples of the task counters (all tenants)."))
	d.op("GET", "/dashboard/series", &operation{
		OperationID: "dashboardSeries", Tags: []string{"dashboard"},
		Summary: "The dashboard's charts",
		Description: "Throughput, latency percentiles, failures by kind and queue depth over the last 15 minutes, one point per interval " +
			"between two samples of the cluster-wide counters. The API instances sample every 10 s into Redis (one sample per period " +
			"whichever instance takes it), so every instance serves the same series.",
		Responses: responses("the series", jsonBody(refSchema("DashboardSeries")), map[int]string{503: storeDown}),
	})
	d.component("DashboardTask", schemaFor[dashTaskDetail]("One task as the dashboard's task page shows it."))
	d.op("GET", "/dashboard/task/{task_id}", &operation{
		OperationID: "dashboardTask", Tags: []string{"dashboard"},
		Summary: "One task for the dashboard",
		Description: "What GET /result/{task_id} answers (at once), with the function's name, the worker, and the result as text: " +
			"repr() of plain data, rendered on the server from the pickle's opcodes without unpickling it.",
		Parameters: []parameter{taskIDParam()},
		Responses: responses("the task", jsonBody(refSchema("DashboardTask")), map[int]string{
			400: "the task id is not a UUID", 404: "no such task (or it was removed after the result TTL)", 503: storeDown,
		}),
	})
	d.scheduleOps(opts)
	d.quotas(opts)
	return d
}

// bearerScheme is the name of the security scheme in the document.
const bearerScheme = "bearerAuth"

// quotas describes what the tenant options add to every operation: the
// bearer token and its 401, and the 429 of the rate limit and of the
// queued-task cap.
func (d *document) quotas(opts Options) {
	if opts.Auth != nil {
		d.Components.SecuritySchemes = map[string]securityScheme{bearerScheme: {Type: "http", Scheme: "bearer",
			Description: "an API token of the server's tokens file or FAAS_TOKENS; it names the tenant the request acts for"}}
		d.Security = []securityRequirement{{bearerScheme: {}}}
		d.Info.Description += "\n\nEvery route but GET /healthz, GET /, GET /docs and GET /openapi.json needs an API token: " +
			"`Authorization: Bearer <token>`, else 401. A token names a tenant: what a request creates belongs to its tenant, " +
			"and a tenant sees nothing of another's (another tenant's function or task answers 404, as an unknown id does). " +
			"Any valid token may read the cluster-wide figures of GET /metrics, GET /runtime and GET /dashboard/state; " +
			"the dashboard's list of tasks shows only the caller's."
	}
	if opts.RateLimit > 0 {
		d.Info.Description += fmt.Sprintf("\n\nEach tenant may make %s requests per second, in bursts of up to %d (per API process); "+
			"beyond that the answer is 429 with a `Retry-After` header (seconds).", strconv.FormatFloat(opts.RateLimit, 'f', -1, 64), opts.RateBurst)
	}
	if opts.maxQueued > 0 {
		d.Info.Description += fmt.Sprintf("\n\nA tenant may have at most %d tasks queued (waiting to start); a POST /execute_function "+
			"or /execute_batch beyond that is refused with 429 and a `Retry-After` header, and creates nothing.", opts.maxQueued)
	}
	unauthorized := &oaResponse{Description: "no valid API token: the Authorization header is missing, is not `Bearer <token>`, or " +
		"the token is unknown", Content: jsonBody(refSchema("Error")),
		Headers: map[string]header{"WWW-Authenticate": {Description: `Bearer realm="wasmfaas", with error="invalid_token" for an unknown token`,
			Schema: strSchema("")}}}
	retryAfter := map[string]header{"Retry-After": {Description: "seconds to wait before trying again", Schema: &schema{Type: "integer"}}}
	for key, o := range d.ops {
		if publicRoutes[key] {
			if opts.Auth != nil {
				o.Security = &[]securityRequirement{}
			}
			continue
		}
		if opts.Auth != nil {
			o.Responses["401"] = unauthorized
		}
		var why []string
		if opts.RateLimit > 0 {
			why = append(why, "the tenant is over its request rate")
		}
		if opts.maxQueued > 0 && (key == "POST /execute_function" || key == "POST /execute_batch") {
			why = append(why, fmt.Sprintf("the tenant's queued tasks would pass the limit of %d", opts.maxQueued))
		}
		if len(why) > 0 {
			o.Responses["429"] = &oaResponse{Description: strings.Join(why, ", or "), Content: jsonBody(refSchema("Error")), Headers: retryAfter}
		}
	}
}

// operations lists the operations in document order.
func (d *document) operations() []*operation {
	var out []*operation
	for _, p := range d.order {
		for _, m := range []string{"get", "post", "put", "patch", "delete"} {
			if o, ok := d.Paths[p][m]; ok {
				out = append(out, o)
			}
		}
	}
	return out
}

// resolve follows a $ref.
func (d *document) resolve(s *schema) (*schema, string) {
	if s == nil || s.Ref == "" {
		return s, ""
	}
	name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
	return d.Components.Schemas[name], name
}
