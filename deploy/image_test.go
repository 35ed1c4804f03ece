package deploy

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestDockerfile(t *testing.T) {
	d, err := readDockerfile(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range d.buildEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("go build runs with %v, want CGO_ENABLED=0", d.buildEnv)
	}
	if env["GOOS"] != "linux" || env["GOARCH"] != runtime.GOARCH {
		t.Errorf("GOOS/GOARCH from TARGETOS/TARGETARCH = %q/%q, want linux/%s", env["GOOS"], env["GOARCH"], runtime.GOARCH)
	}
	if !slices.Contains(d.buildFlags, "-trimpath") {
		t.Errorf("go build flags %q lack -trimpath", d.buildFlags)
	}
	ld := ""
	if i := slices.Index(d.buildFlags, "-ldflags"); i >= 0 && i+1 < len(d.buildFlags) {
		ld = d.buildFlags[i+1]
	}
	if want := "-s -w -X main.version=" + testVersion; ld != want {
		t.Errorf("-ldflags %q with VERSION=%s, want %q", ld, testVersion, want)
	}
	if _, ok := d.args["VERSION"]; !ok {
		t.Error("no ARG VERSION")
	}
	if d.buildFlags[len(d.buildFlags)-1] != "./cmd/chaoscron" {
		t.Errorf("go build builds %q, want ./cmd/chaoscron", d.buildFlags[len(d.buildFlags)-1])
	}

	// The builder's Go is at least the go directive of go.mod (GOTOOLCHAIN would otherwise
	// download another one inside the build, or fail).
	mod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goDirective := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	tag := strings.TrimPrefix(d.goImage, "golang:")
	if goDirective == nil || d.goImage == "" || versionLess(tag, string(goDirective[1])) {
		t.Errorf("build stage image %q is older than go.mod's go %s", d.goImage, goDirective[1])
	}

	// The final stage: scratch, the binary and the CA certificates, nothing else.
	if d.finalFrom != "scratch" && !strings.HasPrefix(d.finalFrom, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want scratch", d.finalFrom)
	}
	if d.finalRun != 0 {
		t.Errorf("the final stage has %d RUN instructions; scratch has no shell to run them", d.finalRun)
	}
	wantCopy := [][2]string{
		{"/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt"},
		{d.output, "/chaoscron"},
	}
	if !slices.Equal(d.finalCopy, wantCopy) {
		t.Errorf("final stage copies %q, want exactly %q", d.finalCopy, wantCopy)
	}
	if !slices.Equal(d.entrypoint, []string{"/chaoscron"}) {
		t.Errorf("ENTRYPOINT %q, want [/chaoscron]", d.entrypoint)
	}
	if !slices.Equal(d.cmd, []string{"run", "-c", "/etc/chaoscron/config.yaml"}) {
		t.Errorf("CMD %q, want [run -c /etc/chaoscron/config.yaml]", d.cmd)
	}
	// `kubectl exec … -- chaoscron journal list` resolves chaoscron on the image's PATH.
	if len(d.entrypoint) > 0 && !slices.Contains(filepath.SplitList(d.env["PATH"]), filepath.Dir(d.entrypoint[0])) {
		t.Errorf("ENV PATH=%q does not contain %s: `kubectl exec … -- chaoscron` would not find the binary", d.env["PATH"], filepath.Dir(d.entrypoint[0]))
	}
	if d.user != "0:0" && d.user != "0" && d.user != "root" {
		t.Errorf("USER %q: the sidecar runs as uid 0 (capabilities), the image should say so", d.user)
	}
}

// versionLess compares Go versions like 1.26 and 1.26.8 (a missing patch sorts first).
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			fmt.Sscan(pa[i], &x)
		}
		if i < len(pb) {
			fmt.Sscan(pb[i], &y)
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func TestDockerignoreKeepsTheBuildWorking(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	ign, err := parseDockerignore(string(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		excluded bool
	}{
		{"go.mod", false},
		{"go.sum", false},
		{"cmd/chaoscron/main.go", false},
		{"journal/journal.go", false},
		{"pkg/config/demo.yaml", false}, // embedded
		{".git", true},
		{"testdata", true},
		{"deploy", true},
		{"cmd/chaoscron/main_test.go", true},
		{"chaoscron.db", true},
		{"pkg/x/y.db", true},
	} {
		if got := ign.excludes(tc.path); got != tc.excluded {
			t.Errorf("%s: excluded = %v, want %v", tc.path, got, tc.excluded)
		}
	}
}

func TestImageBinary(t *testing.T) {
	bin := shippedBinary(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: it is dynamically linked")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("the binary has a PT_DYNAMIC program header")
		}
	}
	if f.Section(".dynamic") != nil {
		t.Error("the binary has a .dynamic section")
	}
	if f.Section(".interp") != nil {
		t.Error("the binary has an .interp section")
	}
	if s := f.Section(".symtab"); s != nil {
		t.Error("the binary has a symbol table: -s did not apply")
	}

	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image binary: %d bytes (%.1f MiB), static, linux/%s", fi.Size(), float64(fi.Size())/(1<<20), runtime.GOARCH)
	if fi.Size() > maxImageMiB<<20 {
		t.Errorf("binary is %.1f MiB, above %d MiB", float64(fi.Size())/(1<<20), maxImageMiB)
	}

	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("chaoscron version: %v", err)
	}
	if !bytes.HasPrefix(out, []byte("chaoscron "+testVersion+" ")) {
		t.Errorf("chaoscron version = %q, want the stamped %s", out, testVersion)
	}
	// -trimpath: no path of the machine that built it.
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(repoRoot(t))) || bytes.Contains(data, []byte(scratch)) {
		t.Error("the binary contains a build path: -trimpath did not apply")
	}
}
