package deploy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

// There is no container engine on the machines the tests run on, so the image build is
// reproduced instead: the Dockerfile is parsed, its build context is copied as .dockerignore
// filters it, and its `go build` line is run there with exactly its environment and flags.

const (
	testVersion = "v0.0.0-imagetest"
	maxImageMiB = 25
)

// dockerfile is what the tests need from the Dockerfile.
type dockerfile struct {
	args       map[string]string // ARG defaults, all stages
	goImage    string            // FROM of the build stage: golang:<tag>
	buildEnv   []string          // NAME=value before `go build`, expanded
	buildFlags []string          // everything after `go build`, expanded
	output     string            // the -o path
	finalFrom  string            // FROM of the last stage
	finalCopy  [][2]string       // COPY --from=… src dst in the last stage
	finalRun   int               // RUN instructions in the last stage (there must be none)
	user       string
	env        map[string]string // ENV of the last stage
	entrypoint []string
	cmd        []string
}

// instructions splits a Dockerfile into instructions: continuation lines joined, comment
// lines dropped (also inside a continuation, as Docker does).
func instructions(src string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// parseDockerfile reads the instructions the tests depend on. vars are the build arguments
// a builder would pass (VERSION, TARGETOS, TARGETARCH); ARG defaults fill in the rest.
func parseDockerfile(src string, vars map[string]string) (*dockerfile, error) {
	d := &dockerfile{args: map[string]string{}}
	lookup := func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		return d.args[name]
	}
	stage := 0
	for _, in := range instructions(src) {
		op, rest, _ := strings.Cut(in, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(op) {
		case "ARG":
			for _, a := range strings.Fields(rest) {
				name, def, _ := strings.Cut(a, "=")
				d.args[name] = def
			}
		case "FROM":
			stage++
			words := strings.Fields(rest)
			words = slices.DeleteFunc(words, func(w string) bool { return strings.HasPrefix(w, "--") })
			if len(words) == 0 {
				return nil, fmt.Errorf("FROM without an image: %q", in)
			}
			d.finalFrom = os.Expand(words[0], lookup)
			d.finalCopy, d.finalRun, d.env = nil, 0, map[string]string{}
			if strings.HasPrefix(d.finalFrom, "golang:") {
				d.goImage = d.finalFrom
			}
		case "RUN":
			d.finalRun++
			words, err := shellWords(rest, lookup)
			if err != nil {
				return nil, fmt.Errorf("RUN %q: %w", rest, err)
			}
			for len(words) > 0 && strings.HasPrefix(words[0], "--") {
				words = words[1:] // --mount=…
			}
			i := slices.Index(words, "go")
			if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
				continue
			}
			if d.buildFlags != nil {
				return nil, errors.New("more than one go build")
			}
			for _, w := range words[:i] {
				if !strings.Contains(w, "=") {
					return nil, fmt.Errorf("go build is preceded by %q, not an environment assignment", w)
				}
			}
			d.buildEnv = words[:i]
			d.buildFlags = words[i+2:]
			if j := slices.Index(d.buildFlags, "-o"); j >= 0 && j+1 < len(d.buildFlags) {
				d.output = d.buildFlags[j+1]
			}
		case "COPY":
			words := strings.Fields(rest)
			if len(words) == 3 && strings.HasPrefix(words[0], "--from=") {
				d.finalCopy = append(d.finalCopy, [2]string{words[1], words[2]})
			} else {
				d.finalCopy = append(d.finalCopy, [2]string{"(context) " + strings.Join(words[:len(words)-1], " "), words[len(words)-1]})
			}
		case "USER":
			d.user = rest
		case "ENV":
			k, v, ok := strings.Cut(rest, "=")
			if !ok || strings.ContainsAny(v, " \t\"'$") {
				return nil, fmt.Errorf("ENV %q: write one NAME=value without spaces or quotes", rest)
			}
			d.env[k] = v
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				return nil, fmt.Errorf("ENTRYPOINT must be exec form (JSON): %w", err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &d.cmd); err != nil {
				return nil, fmt.Errorf("CMD must be exec form (JSON): %w", err)
			}
		}
	}
	if d.buildFlags == nil {
		return nil, errors.New("no RUN … go build … found")
	}
	if d.output == "" {
		return nil, errors.New("go build has no -o")
	}
	return d, nil
}

// shellWords splits a command line the way sh would for the simple words a Dockerfile RUN
// uses: whitespace separates, "…" and '…' quote, $VAR and ${VAR} expand outside single quotes.
// Anything fancier (escapes, command substitution, operators) is an error, so the test never
// silently runs something other than what the image build runs.
func shellWords(s string, lookup func(string) string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated '")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, errors.New(`unterminated "`)
			}
			inner := s[i+1 : i+1+j]
			if strings.ContainsAny(inner, "`\\") {
				return nil, fmt.Errorf("unsupported quoting in %q", inner)
			}
			cur.WriteString(os.Expand(inner, lookup))
			i += j + 1
			inWord = true
		case strings.IndexByte("`\\;&|<>()", c) >= 0:
			return nil, fmt.Errorf("unsupported shell syntax %q", c)
		case c == '$':
			n, name := varRef(s[i:])
			if n == 0 {
				return nil, fmt.Errorf("unsupported $ at %q", s[i:])
			}
			cur.WriteString(lookup(name))
			i += n - 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var varRE = regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

// varRef returns the length of the $VAR or ${VAR} at the start of s and the name.
func varRef(s string) (int, string) {
	m := varRE.FindStringSubmatch(s)
	if m == nil {
		return 0, ""
	}
	return len(m[0]), m[1] + m[2]
}

// dockerignore is a parsed .dockerignore: paths relative to the context, Go filepath.Match
// syntax plus "**" for any number of directories; a pattern that matches a directory
// excludes everything in it. Exceptions (!) and character classes are refused rather than
// approximated.
type dockerignore []*regexp.Regexp

func parseDockerignore(src string) (dockerignore, error) {
	var d dockerignore
	for _, line := range strings.Split(src, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if strings.HasPrefix(p, "!") || strings.ContainsAny(p, "[]\\") {
			return nil, fmt.Errorf(".dockerignore pattern %q: exceptions, classes and escapes are not supported by this test", p)
		}
		p = filepath.ToSlash(filepath.Clean(strings.TrimPrefix(p, "/")))
		var b strings.Builder
		b.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				b.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				b.WriteString(".*")
				i++
			case p[i] == '*':
				b.WriteString("[^/]*")
			case p[i] == '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		b.WriteString("$")
		d = append(d, regexp.MustCompile(b.String()))
	}
	return d, nil
}

func (d dockerignore) excludes(rel string) bool {
	for _, re := range d {
		if re.MatchString(rel) {
			return true
		}
	}
	return false
}

// copyContext copies the build context at root to dst, leaving out what .dockerignore
// excludes, and returns the relative paths copied.
func copyContext(root, dst string, ignore dockerignore) ([]string, error) {
	var copied []string
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore.excludes(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case e.IsDir():
			return os.MkdirAll(target, 0o755)
		case e.Type().IsRegular():
			copied = append(copied, rel)
			return copyFile(path, target)
		}
		return nil // sockets, symlinks: not part of a Go build
	})
	return copied, err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// imageVars are the build arguments BuildKit passes for a linux image of this machine's
// architecture, plus the version the test stamps.
func imageVars() map[string]string {
	return map[string]string{"VERSION": testVersion, "TARGETOS": "linux", "TARGETARCH": runtime.GOARCH}
}

func readDockerfile(root string) (*dockerfile, error) {
	src, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	return parseDockerfile(string(src), imageVars())
}

// buildLikeDockerfile copies the build context into dir/context and runs the Dockerfile's
// go build there; it returns the binary's path.
func buildLikeDockerfile(dir string) (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	d, err := readDockerfile(root)
	if err != nil {
		return "", fmt.Errorf("Dockerfile: %w", err)
	}
	ignSrc, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return "", err
	}
	ign, err := parseDockerignore(string(ignSrc))
	if err != nil {
		return "", err
	}
	ctxDir := filepath.Join(dir, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return "", err
	}
	if _, err := copyContext(root, ctxDir, ign); err != nil {
		return "", fmt.Errorf("copy the build context: %w", err)
	}
	bin := filepath.Join(dir, "chaoscron")
	flags := slices.Clone(d.buildFlags)
	flags[slices.Index(flags, "-o")+1] = bin
	cmd := exec.Command("go", append([]string{"build"}, flags...)...)
	cmd.Dir = ctxDir // WORKDIR /src, where COPY . . put the context
	// The Dockerfile's assignments come last, so they win over this machine's environment.
	cmd.Env = append(os.Environ(), d.buildEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s (in the .dockerignore-filtered context): %w\n%s", cmd, err, out)
	}
	return bin, nil
}
