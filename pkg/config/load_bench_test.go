package config

import (
	"path/filepath"
	"testing"
)

// BenchmarkLoad is the whole pipeline on the fullest example: parse, merge, decode, validate.
func BenchmarkLoad(b *testing.B) {
	file := filepath.Join(goodDir, "full.yaml")
	for b.Loop() {
		if _, err := Load(file, nil); err != nil {
			b.Fatal(err)
		}
	}
}
