package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary files to the config loader. It must never
// panic, and every rejection must be diagnostics (an *Error), never a
// bare Go error.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	for _, p := range seeds {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile(filepath.Join("..", "..", "config.hcl")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("node = \"x\"\nstore { embedded { data_dir = \"d\" } }\napi { listen = \"127.0.0.1:0\" }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		_, err := Options{SkipFileChecks: true}.Parse("fuzz.hcl", src)
		if err == nil {
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("a rejection that is not diagnostics: %T %v", err, err)
		}
		_ = ce.Error() // rendering the snippet must not panic either
	})
}
