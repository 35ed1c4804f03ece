package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// MinTokenBytes is the shortest API token accepted: 16 bytes, 128 bits if random
// (`openssl rand -hex 16` gives 32 characters). A short token is guessed by anyone who can
// reach agent.listen, and the API can fire faults as root.
const MinTokenBytes = 16

// maxTokenBytes bounds what is read from api.token_file: a token is a line, not a file.
const maxTokenBytes = 4096

// Token returns the bearer token for mutating API calls: the contents of api.token_file,
// else the value of the variable api.token_env names, looked up with getenv; "" means none.
// A token file must be a regular file that only its owner, this user or root, can read
// or write (like an ssh private key: chmod 600); a token must be at least MinTokenBytes
// long. Each refusal is an error saying what to change.
func (a API) Token(getenv func(string) string) (string, error) {
	if a.TokenFile != "" {
		tok, err := readTokenFile(a.TokenFile)
		if err != nil {
			return "", fmt.Errorf("api.token_file: %w", err)
		}
		return tok, nil
	}
	name := a.TokenEnv
	if name == "" {
		name = DefaultTokenEnv
	}
	tok := strings.TrimSpace(getenv(name))
	if err := checkTokenLen(tok, "$"+name); err != nil {
		return "", fmt.Errorf("api.token_env: %w", err)
	}
	return tok, nil
}

// readTokenFile reads and checks the token file. The checks are made on the open file,
// so they hold for the bytes read.
func readTokenFile(name string) (string, error) {
	// O_NONBLOCK: a FIFO at the path must not hang the agent; it is refused below.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if err := checkTokenFile(name, fi); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenBytes {
		return "", fmt.Errorf("%s is longer than %d bytes: it should hold one token", name, maxTokenBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return tok, checkTokenLen(tok, name)
}

// checkTokenFile refuses a token file that someone else could read (and so call the API
// with) or change (and so set a token they know), as ssh refuses such a private key.
func checkTokenFile(name string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", name)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
			return fmt.Errorf("%s is owned by uid %d, not by this user (uid %d) or root: chown it", name, st.Uid, euid)
		}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s is accessible by group or others (mode %04o): chmod 600 it (in Kubernetes, defaultMode: 0400 on the secret volume)", name, perm)
	}
	return nil
}

func checkTokenLen(tok, where string) error {
	if tok != "" && len(tok) < MinTokenBytes {
		return fmt.Errorf("the token in %s is %d bytes long; use at least %d (for example `openssl rand -hex 16`)", where, len(tok), MinTokenBytes)
	}
	return nil
}

// validateAPI checks the token as the agent will read it, so `chaoscron validate` tells of
// a loose token file before a restart does. A token file that is missing, or that this
// user may not read, is left to the agent: a schedule is often validated away from where
// it runs (in CI, as another user); its mode and owner are still checked when it exists.
func (r *report) validateAPI(c *Config) {
	p := path{"api"}
	if f := c.API.TokenFile; f != "" {
		_, err := readTokenFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if errors.Is(err, fs.ErrPermission) {
			fi, serr := os.Stat(f)
			if serr != nil {
				return
			}
			err = checkTokenFile(f, fi)
		}
		if err != nil {
			r.check(false, p.key("token_file"), "%v", err)
		}
		return
	}
	if r.getenv == nil {
		return
	}
	if _, err := c.API.Token(r.getenv); err != nil {
		name := c.API.TokenEnv
		if name == "" {
			name = DefaultTokenEnv
		}
		// The value comes from that variable, whatever set its name: point there.
		r.errs = append(r.errs, &Error{File: name, Path: p.key("token_env").String(),
			Msg: strings.TrimPrefix(err.Error(), "api.token_env: ")})
	}
}
