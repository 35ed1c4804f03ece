package config

import (
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// locate finds the line and column of the key at p in the YAML document root (a list
// item's own position for an index). Where p goes further than the document (a key that
// is missing, or a value from another layer), it falls back to the nearest parent that
// exists; 0, 0 means nothing was found, not even the document. found is how many segments
// of p were found.
//
// koanf hands over plain maps, which have no positions, so the same bytes are parsed a
// second time into yaml.Node values just for this.
func locate(root *yaml.Node, p path) (line, col, found int) {
	n := deref(root, 0)
	if n == nil {
		return 0, 0, 0
	}
	if n.Kind == yaml.DocumentNode {
		line, col = n.Line, n.Column
		if len(n.Content) == 0 {
			return line, col, 0
		}
		n = deref(n.Content[0], 0)
	}
	if n != nil && line == 0 {
		line, col = n.Line, n.Column
	}
	for _, seg := range p {
		if n == nil {
			break
		}
		var at, next *yaml.Node
		switch s := seg.(type) {
		case string:
			at, next = lookupKey(n, s, 0)
		case int:
			if n.Kind == yaml.SequenceNode && s >= 0 && s < len(n.Content) {
				at = n.Content[s]
				next = deref(at, 0)
			}
		}
		if at == nil {
			break
		}
		line, col = at.Line, at.Column
		n = next
		found++
	}
	return line, col, found
}

// maxAliasDepth bounds alias and merge-key chasing; yaml.v3 already refuses cyclic
// aliases, this is only a guard against pathological nesting.
const maxAliasDepth = 32

// deref follows aliases to the node they stand for.
func deref(n *yaml.Node, depth int) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		if depth++; depth > maxAliasDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// lookupKey returns the key node for k in mapping n, and its (dereferenced) value. Keys that
// come in through a merge key ("<<: *base") are found too, at the position of the merge.
func lookupKey(n *yaml.Node, k string, depth int) (key, val *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode || depth > maxAliasDepth {
		return nil, nil
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.Tag == "!!merge" {
			merges = append(merges, kn, vn)
			continue
		}
		if kn.Kind == yaml.ScalarNode && kn.Value == k {
			return kn, deref(vn, 0)
		}
	}
	for i := 0; i+1 < len(merges); i += 2 {
		src := deref(merges[i+1], 0)
		if src == nil {
			continue
		}
		var sources []*yaml.Node
		if src.Kind == yaml.SequenceNode {
			sources = src.Content
		} else {
			sources = []*yaml.Node{src}
		}
		for _, s := range sources {
			if _, v := lookupKey(deref(s, 0), k, depth+1); v != nil {
				return merges[i], v
			}
		}
	}
	return nil, nil
}

// syntaxLine matches yaml.v3's error texts, which carry the line only inside the message:
// "yaml: line 3: mapping values are not allowed in this context".
var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into an Error with its line.
func syntaxError(file string, err error) *Error {
	msg := err.Error()
	e := &Error{File: file, Msg: msg, err: err}
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	} else if len(msg) > 6 && msg[:6] == "yaml: " {
		e.Msg = msg[6:]
	}
	e.Msg = "invalid YAML: " + e.Msg
	return e
}
