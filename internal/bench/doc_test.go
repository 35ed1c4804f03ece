package main

import (
	"strings"
	"testing"
)

func TestSplice(t *testing.T) {
	doc := "# Performance\nstory before\n" + tableBegin + "| old |\n" + tableEnd + "story after\n"
	got, err := splice([]byte(doc), "| new |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Performance\nstory before\n" + tableBegin + "| new |\n" + tableEnd + "story after\n"
	if string(got) != want {
		t.Errorf("splice:\n%s\nwant\n%s", got, want)
	}
	for name, bad := range map[string]string{
		"no markers": "# Performance\n",
		"no end":     tableBegin + "| old |\n",
		"reversed":   tableEnd + tableBegin,
	} {
		if _, err := splice([]byte(bad), "| new |\n"); err == nil || !strings.Contains(err.Error(), "markers") {
			t.Errorf("%s: err = %v, want one about the markers", name, err)
		}
	}
}
