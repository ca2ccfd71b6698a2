package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
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

// isTemplate tells whether a --format value is a Go template rather than
// one of the named formats.
// formatError is compose's error for a --format value of ls, images or
// volumes that is neither table, json nor a template.
func formatError(format string) error {
	return fmt.Errorf("format value %q could not be parsed: parsing failed", format)
}

func isTemplate(format string) bool {
	return strings.Contains(format, "{{")
}

// templateTable prints items through a docker-style template. With a
// "table " prefix the columns are aligned under a header, which is the
// template run on the field names in capitals, as docker's formatter does.
func templateTable[T any](out io.Writer, format string, items []T) error {
	table := strings.HasPrefix(format, "table ")
	format = strings.TrimPrefix(format, "table ")
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err := parseFormat(format)
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	w := out
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(out, 0, 0, 3, ' ', 0)
		w = tw
		fmt.Fprintln(w, tableHeader(format))
	}
	for _, it := range items {
		if err := tmpl.Execute(w, it); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

var (
	fieldAction = regexp.MustCompile(`\{\{-?\s*\.(\w+)\s*-?\}\}`)
	otherAction = regexp.MustCompile(`\{\{.*?\}\}`)
)

// tableHeader is a table template's header: each {{.Field}} becomes
// FIELD, any other action nothing.
func tableHeader(format string) string {
	h := fieldAction.ReplaceAllStringFunc(format, func(a string) string {
		return strings.ToUpper(fieldAction.FindStringSubmatch(a)[1])
	})
	return otherAction.ReplaceAllString(h, "")
}
