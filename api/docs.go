package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// GET /docs is the OpenAPI document rendered on the server into one HTML
// page (no script, nothing fetched from elsewhere).

// row is one line of a schema's table: a field, nested fields indented.
type row struct {
	Depth    int
	Name     string
	Type     string
	Required bool
	Desc     string
	Note     bool // a heading line ("one of", an alternative's title)
}

// rows flattens a schema into table lines.
func (d *document) rows(s *schema, depth int) []row {
	s, _ = d.resolve(s)
	if s == nil {
		return nil
	}
	var out []row
	if len(s.OneOf) > 0 {
		for i, alt := range s.OneOf {
			a, name := d.resolve(alt)
			title := a.Title
			if title == "" {
				title = name
			}
			out = append(out, row{Depth: depth, Name: fmt.Sprintf("option %d: %s", i+1, title), Desc: a.Description, Note: true})
			out = append(out, d.rows(a, depth+1)...)
		}
		return out
	}
	if s.Items != nil {
		items, _ := d.resolve(s.Items)
		if len(items.Properties) > 0 || len(items.OneOf) > 0 {
			return d.rows(items, depth)
		}
	}
	for _, name := range s.order {
		p := s.Properties[name]
		r, _ := d.resolve(p)
		out = append(out, row{Depth: depth, Name: name, Type: d.typeName(p), Required: slices.Contains(s.Required, name),
			Desc: firstNonEmpty(p.Description, r.Description)})
		out = append(out, d.rows(p, depth+1)...)
	}
	if extra, ok := s.AdditionalProperties.(*schema); ok && len(s.order) == 0 {
		if sub := d.rows(extra, depth+1); len(sub) > 0 {
			out = append(out, row{Depth: depth, Name: "<key>", Type: d.typeName(extra)})
			out = append(out, sub...)
		}
	}
	return out
}

// typeName is how the docs write a schema's type.
func (d *document) typeName(s *schema) string {
	s, name := d.resolve(s)
	if s == nil {
		return "any"
	}
	var t string
	switch v := s.Type.(type) {
	case string:
		t = v
	case []string:
		t = strings.Join(v, " | ")
	case nil:
		t = "any"
		if len(s.OneOf) > 0 {
			t = "one of"
		}
	}
	if strings.HasPrefix(t, "array") {
		t = strings.Replace(t, "array", "array of "+d.typeName(s.Items), 1)
	}
	if strings.HasPrefix(t, "object") && s.AdditionalProperties != nil && s.AdditionalProperties != false {
		if extra, ok := s.AdditionalProperties.(*schema); ok {
			t = strings.Replace(t, "object", "map of "+d.typeName(extra), 1)
		}
	}
	if s.Format != "" {
		t += " (" + s.Format + ")"
	}
	if len(s.Enum) > 0 {
		t += ": " + strings.Join(s.Enum, ", ")
	}
	if s.MaxItems != nil {
		t += fmt.Sprintf(", %d to %d items", *s.MinItems, *s.MaxItems)
	}
	if name != "" && t == "object" {
		t = name
	}
	return t
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// docsOp is an operation as the page shows it.
type docsOp struct {
	*operation
	Anchor    string
	Method    string
	Path      string
	Body      []row
	BodyTypes []string
	Codes     []docsResponse
}

type docsResponse struct {
	Code  string
	Desc  string
	Types []string
	Rows  []row
}

type docsPage struct {
	Info  info
	Tags  []tag
	ByTag map[string][]docsOp
	Paras []string
}

func (d *document) page() docsPage {
	p := docsPage{Info: d.Info, Tags: d.Tags, ByTag: map[string][]docsOp{}, Paras: strings.Split(d.Info.Description, "\n\n")}
	for _, o := range d.operations() {
		v := docsOp{operation: o, Method: o.method, Path: o.path, Anchor: o.OperationID}
		if o.RequestBody != nil {
			for mt, m := range o.RequestBody.Content {
				v.BodyTypes = append(v.BodyTypes, mt)
				v.Body = d.rows(m.Schema, 0)
			}
		}
		codes := make([]string, 0, len(o.Responses))
		for c := range o.Responses {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			r := o.Responses[c]
			dr := docsResponse{Code: c, Desc: r.Description}
			for mt, m := range r.Content {
				dr.Types = append(dr.Types, mt)
				if c == "200" || !strings.HasSuffix(m.Schema.Ref, "/Error") {
					dr.Rows = d.rows(m.Schema, 0)
				}
			}
			v.Codes = append(v.Codes, dr)
		}
		for _, t := range o.Tags {
			p.ByTag[t] = append(p.ByTag[t], v)
		}
	}
	return p
}

var docsTemplate = template.Must(template.New("docs").Funcs(template.FuncMap{
	"indent": func(depth int) string { return fmt.Sprintf("d%d", min(depth, 5)) },
	"lower":  strings.ToLower,
	"md":     inlineCode,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Info.Title}} API</title>
<style>
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; background: #f6f7fb; }
header { padding: 14px 24px; background: #111827; color: #fff; display: flex; gap: 16px; align-items: baseline; }
header h1 { margin: 0; font-size: 18px; }
header a { color: #c7d2fe; text-decoration: none; margin-left: auto; }
main { max-width: 1100px; margin: 0 auto; padding: 12px 24px 40px; }
nav.toc { background: #fff; border: 1px solid #e3e6ee; border-radius: 8px; padding: 8px 16px; margin: 16px 0; }
nav.toc ul { margin: 4px 0; padding-left: 18px; }
h2 { margin-top: 32px; border-bottom: 1px solid #e3e6ee; padding-bottom: 4px; }
.op { background: #fff; border: 1px solid #e3e6ee; border-radius: 8px; margin: 16px 0; padding: 4px 18px 12px; }
.op h3 { font-size: 16px; display: flex; gap: 10px; align-items: baseline; }
.op h4 { margin: 14px 0 4px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #687086; }
code, .path { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
.m { font: 700 12px ui-monospace, monospace; padding: 2px 8px; border-radius: 4px; color: #fff; }
.get { background: #1a7f4b; } .post { background: #175cd3; } .delete { background: #b42318; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #eef0f5; }
th { color: #687086; font-weight: 500; }
td.name { font-family: ui-monospace, monospace; white-space: nowrap; }
td.type { color: #5b21b6; font-family: ui-monospace, monospace; }
tr.note td { font-style: italic; color: #687086; }
.req { color: #b42318; font-size: 11px; }
.code { font-weight: 700; font-family: ui-monospace, monospace; }
.d0 { padding-left: 8px; } .d1 { padding-left: 32px; } .d2 { padding-left: 56px; }
.d3 { padding-left: 80px; } .d4 { padding-left: 104px; } .d5 { padding-left: 128px; }
</style>
</head>
<body>
<header><h1>{{.Info.Title}} API</h1><span>OpenAPI 3.1</span><a href="openapi.json">openapi.json</a></header>
<main>
{{range .Paras}}<p>{{md .}}</p>
{{end}}
<nav class="toc"><strong>Routes</strong>
{{range .Tags}}{{$ops := index $.ByTag .Name}}{{if $ops}}<ul>{{range $ops}}<li><a href="#{{.Anchor}}"><span class="path">{{.Method}} {{.Path}}</span></a>: {{.Summary}}</li>{{end}}</ul>{{end}}{{end}}
</nav>
{{range .Tags}}{{$ops := index $.ByTag .Name}}{{if $ops}}
<h2 id="tag-{{.Name}}">{{.Name}}</h2>
<p>{{.Description}}</p>
{{range $ops}}
<div class="op" id="{{.Anchor}}">
<h3><span class="m {{lower .Method}}">{{.Method}}</span><span class="path">{{.Path}}</span><span>{{.Summary}}</span></h3>
{{if .Description}}<p>{{md .Description}}</p>{{end}}
{{if .Parameters}}<h4>Parameters</h4>
<table><tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>
{{range .Parameters}}<tr><td class="name">{{.Name}}{{if .Required}} <span class="req">required</span>{{end}}</td><td>{{.In}}</td><td class="type">{{.Schema.Type}}{{if .Schema.Format}} ({{.Schema.Format}}){{end}}</td><td>{{md .Description}}</td></tr>
{{end}}</table>{{end}}
{{if .Body}}<h4>Request body ({{range .BodyTypes}}{{.}}{{end}})</h4>
<table><tr><th>field</th><th>type</th><th>description</th></tr>
{{range .Body}}{{template "row" .}}{{end}}</table>{{end}}
<h4>Responses</h4>
<table><tr><th>status</th><th>when</th><th>body</th></tr>
{{range .Codes}}<tr><td class="code">{{.Code}}</td><td>{{md .Desc}}</td><td>{{range .Types}}<code>{{.}}</code> {{end}}{{if and (not .Rows) (ne .Code "200")}}{"detail": "..."}{{end}}</td></tr>
{{if .Rows}}<tr><td></td><td colspan="2"><table><tr><th>field</th><th>type</th><th>description</th></tr>
{{range .Rows}}{{template "row" .}}{{end}}</table></td></tr>{{end}}
{{end}}</table>
</div>
{{end}}{{end}}{{end}}
</main>
</body>
</html>
{{define "row"}}{{if .Note}}<tr class="note"><td colspan="3" class="{{indent .Depth}}">{{.Name}}{{if .Desc}}: {{.Desc}}{{end}}</td></tr>
{{else}}<tr><td class="name {{indent .Depth}}">{{.Name}}{{if .Required}} <span class="req">required</span>{{end}}</td><td class="type">{{.Type}}</td><td>{{md .Desc}}</td></tr>
{{end}}{{end}}`))

// inlineCode renders the one piece of Markdown the descriptions use:
// `code` spans. Everything else is escaped.
func inlineCode(s string) template.HTML {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i%2 == 0:
			b.WriteString(template.HTMLEscapeString(p))
		case i == len(parts)-1: // an unpaired backtick
			b.WriteString(template.HTMLEscapeString("`" + p))
		default:
			b.WriteString("<code>" + template.HTMLEscapeString(p) + "</code>")
		}
	}
	return template.HTML(b.String())
}

// mustRenderDocs makes the bodies of GET /openapi.json and GET /docs for
// opts. The document is built from fixed code, so an error is a bug.
func mustRenderDocs(opts Options) (openapiJSON, docsHTML []byte) {
	d := buildOpenAPI(opts)
	j, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("api: encode the OpenAPI document: %v", err))
	}
	var b bytes.Buffer
	if err := docsTemplate.Execute(&b, d.page()); err != nil {
		panic(fmt.Sprintf("api: render the docs page: %v", err))
	}
	return append(j, '\n'), b.Bytes()
}

// openapi: GET /openapi.json.
func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Access-Control-Allow-Origin", "*") // for API tools in the browser
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(h.openapiJSON)
}

// docs: GET /docs.
func (h *Handler) docs(w http.ResponseWriter, r *http.Request) {
	writePage(w, h.docsHTML, h.docsCSP)
}
