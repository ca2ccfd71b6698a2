package cli

import (
	"encoding/json"
	"fmt"
	"io"
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

// imageTemplateLines prints each item through a docker-style Go template
// ("{{.Repository}}:{{.Tag}}", "{{json .}}").
func imageTemplateLines[T any](out io.Writer, format string, items []T) error {
	tmpl, err := parseFormat(format)
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	for _, it := range items {
		if err := tmpl.Execute(out, it); err != nil {
			return err
		}
		fmt.Fprintln(out)
	}
	return nil
}
