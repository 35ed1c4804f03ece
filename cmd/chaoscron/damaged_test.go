package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.etcd.io/bbolt"

	"github.com/chaoscron/chaoscron/journal"
)

// TestJournalDamagedRecords damages three closed runs inside their records, where bbolt
// sees nothing wrong: a byte that is not UTF-8 in the params, a digit changed, a record cut
// short. Every read command must print the other runs (JSON valid and UTF-8), name the file
// and each damaged run on stderr, and exit 1.
func TestJournalDamagedRecords(t *testing.T) {
	dir := t.TempDir()
	jp := filepath.Join(dir, "j.db")
	j, err := journal.Open(jp, journal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i := range 30 {
		r := journal.Record{
			Experiment: fmt.Sprintf("exp-%d", i%3), Fault: "network", Trigger: "schedule",
			Params: json.RawMessage(`{"interfaces":["eth0"],"delay":"200ms"}`), StartedAt: at,
			Status: journal.Succeeded, Cleanup: journal.CleanupDone,
			Agent: journal.Agent{Host: "node-1", PID: 4242, Instance: "a1", Version: "test"},
		}
		if err := j.Begin(&r); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	damage := map[uint64]func(v []byte) []byte{
		5: func(v []byte) []byte { v[bytes.Index(v, []byte("eth0"))] = 0xff; return v },
		7: func(v []byte) []byte { v[bytes.Index(v, []byte("4242"))+3] = '3'; return v },
		9: func(v []byte) []byte { return v[:len(v)/2] },
	}
	db, err := bbolt.Open(jp, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		runs := tx.Bucket([]byte("runs"))
		for id, fn := range damage {
			k := binary.BigEndian.AppendUint64(nil, id)
			if err := runs.Put(k, fn(bytes.Clone(runs.Get(k)))); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	cfg := writeConfig(t, dir, fmt.Sprintf("agent: {listen: \"off\"}\njournal: {path: %s}\n", jp))
	cases := []struct {
		args  []string
		check func(t *testing.T, out string)
	}{
		{[]string{"list", "-o", "json"}, func(t *testing.T, out string) {
			var recs []journal.Record
			if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 27 {
				t.Errorf("%d runs, %v; want the 27 undamaged", len(recs), err)
			}
		}},
		{[]string{"list"}, func(t *testing.T, out string) {
			if n := strings.Count(out, "exp-"); n != 27 {
				t.Errorf("%d rows, want 27", n)
			}
		}},
		{[]string{"export"}, func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for _, l := range lines {
				if !json.Valid([]byte(l)) {
					t.Errorf("not JSON: %q", l)
				}
			}
			if len(lines) != 27 {
				t.Errorf("%d lines, want 27", len(lines))
			}
		}},
		{[]string{"stats", "-o", "json"}, func(t *testing.T, out string) {
			var st struct{ Runs, Damaged int }
			if err := json.Unmarshal([]byte(out), &st); err != nil || st.Runs != 27 || st.Damaged != 3 {
				t.Errorf("stats %+v, %v; want 27 runs and 3 damaged", st, err)
			}
		}},
		{[]string{"stats"}, func(t *testing.T, out string) {
			if !regexp.MustCompile(`damaged runs +3 `).MatchString(out) {
				t.Errorf("no count of damaged runs:\n%s", out)
			}
		}},
	}
	reads := func(t *testing.T) {
		for _, c := range cases {
			t.Run(strings.Join(c.args, " "), func(t *testing.T) {
				out, errs, code := cli(t, dir, append(append([]string{"journal"}, c.args...), "-c", cfg)...)
				if !utf8.ValidString(out) {
					t.Errorf("output is not valid UTF-8: %q", out)
				}
				c.check(t, out)
				if code != 1 {
					t.Errorf("exit %d, want 1", code)
				}
				for _, want := range []string{jp, "run 5:", "run 7:", "run 9:", "checksum mismatch"} {
					if !strings.Contains(errs, want) {
						t.Errorf("stderr does not say %q:\n%s", want, errs)
					}
				}
			})
		}
	}
	t.Run("file", reads)
	// While an agent holds the journal, the same reads go through its socket and must say
	// the same: the damaged runs travel in a header (a trailer for export).
	agentCfg := writeConfig(t, dir, fmt.Sprintf("agent: {listen: \"off\"}\njournal: {path: %s}\nexperiments: []\n", jp))
	a := startAgent(t, dir, "-c", agentCfg)
	eventually(t, 20*time.Second, "the agent to hold the journal", func() bool {
		_, _, code := cli(t, dir, "probe", "ready", "-c", cfg)
		return code == 0
	})
	t.Run("agent", reads)
	if code := a.stop(); code != 0 {
		t.Fatalf("agent exited %d:\n%s", code, a.log)
	}

	// show names the run and the file; an undamaged run still shows.
	if _, errs, code := cli(t, dir, "journal", "show", "7", "-c", cfg); code != 1 || !strings.Contains(errs, jp) || !strings.Contains(errs, "run 7") {
		t.Errorf("show 7: exit %d, stderr %q; want 1, naming %s and run 7", code, errs, jp)
	}
	if _, errs, code := cli(t, dir, "journal", "show", "8", "-c", cfg); code != 0 {
		t.Errorf("show 8: exit %d: %s", code, errs)
	}
	// An agent-like command starts, and says which runs are damaged.
	_, errs, code := cli(t, dir, "recover", "-c", cfg)
	if code != 0 || !strings.Contains(errs, "damaged records") || !strings.Contains(errs, "[5,7,9]") {
		t.Errorf("recover: exit %d, want 0 and a warning naming runs 5, 7 and 9:\n%s", code, errs)
	}
}
