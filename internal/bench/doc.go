package main

import (
	"bytes"
	"fmt"
	"os"
)

// The markers around the generated table in docs/performance.md. Everything outside them is
// written by hand (what the figures mean, what moved them) and kept as it is.
const (
	tableBegin = "<!-- bench:table begin: written by task bench -->\n"
	tableEnd   = "<!-- bench:table end -->\n"
)

// writeTable replaces the table between the markers in the document at path.
func writeTable(path, table string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := splice(doc, table)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// splice returns doc with the text between its table markers replaced by table.
func splice(doc []byte, table string) ([]byte, error) {
	i := bytes.Index(doc, []byte(tableBegin))
	j := bytes.Index(doc, []byte(tableEnd))
	if i < 0 || j < i {
		return nil, fmt.Errorf("no table markers (%q … %q)", tableBegin, tableEnd)
	}
	var b bytes.Buffer
	b.Write(doc[:i+len(tableBegin)])
	b.WriteString(table)
	b.Write(doc[j:])
	return b.Bytes(), nil
}
