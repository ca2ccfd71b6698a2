package cli

import (
	"encoding/json"
	"strings"
	"text/template"
)

// templateFuncs are the functions docker's --format templates offer.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// parseFormat parses a docker-style --format template ("{{.Name}}",
// "{{json .}}").
func parseFormat(format string) (*template.Template, error) {
	return template.New("format").Funcs(templateFuncs).Parse(format)
}
