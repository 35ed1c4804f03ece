package request

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/chaoscron/chaoscron/pkg/fault"
	"github.com/chaoscron/chaoscron/pkg/fault/request/internal/nstest"
	"github.com/chaoscron/chaoscron/pkg/fault/request/nft"
)

// TestRevertDrains: at revert, a request the proxy holds (delayed 3s) still gets the app's
// answer, while a new connection made during the drain goes straight to the app; Revert
// returns when the proxy is empty, well before drain. With a drain shorter than the delay,
// the held connection is closed at the end of it and Revert returns then.
func TestRevertDrains(t *testing.T) {
	cl, pod := nstest.Pair(t)
	app(t, pod, 8080)
	url := "http://" + nstest.PodIP + ":8080"
	for _, tc := range []struct {
		drain      string
		answered   bool
		revertedBy time.Duration
	}{
		{"6s", true, 5 * time.Second},     // generous: the request needs under 3s more
		{"200ms", false, 2 * time.Second}, // closed at 200ms, not after the 3s delay
	} {
		t.Run("drain "+tc.drain, func(t *testing.T) {
			var seen counter
			seen.n = map[string]int{}
			env := testEnv()
			env.Observe = seen.observe
			ff, err := New(fault.Params{"port": 8080, "netns": pod.Path, "path": "/slow", "delay": "3s", "drain": tc.drain}, env)
			if err != nil {
				t.Fatal(err)
			}
			f := ff.(*Fault)
			plan, err := f.Plan(context.Background(), "drain-"+tc.drain)
			if err != nil {
				t.Fatal(err)
			}
			u, err := f.Inject(context.Background(), plan)
			if err != nil {
				t.Fatal(err)
			}
			held := make(chan string, 1)
			go func() {
				resp, err := client(cl, false).Get(url + "/slow")
				if err != nil {
					held <- "error: " + err.Error()
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					held <- "error: " + err.Error()
					return
				}
				held <- string(b)
			}()
			for deadline := time.Now().Add(5 * time.Second); seen.get("delayed") == 0; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the request never reached the proxy")
				}
			}
			time.Sleep(100 * time.Millisecond) // well into its delay
			start := time.Now()
			reverted := make(chan error, 1)
			go func() { reverted <- f.Revert(context.Background(), u) }()
			// The redirect rule goes first; the drain goes on with the table in place.
			c, err := nft.Open(pod.NS().FD())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		wait:
			for deadline := time.Now().Add(5 * time.Second); ; {
				// Whether Revert has returned is looked at before the list, so that a list
				// taken before it returned is never read as what it left.
				var done bool
				var rerr error
				select {
				case rerr = <-reverted:
					done = true
				default:
				}
				rs, err := c.List()
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case done && len(rs) != 0:
					t.Fatalf("Revert returned %v and left %+v", rerr, rs)
				case done:
					reverted <- rerr
					break wait
				case len(rs) == 0 || !rs[0].Active:
					break wait // stopped, or already deleted after a short drain
				case time.Now().After(deadline):
					t.Fatalf("the redirect was not stopped: %+v", rs)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, body := get(t, client(cl, false), url+"/x"); body != "app /x from "+nstest.ClientIP {
				t.Errorf("a new connection during the drain: %q, want the app directly", body)
			}
			if err := <-reverted; err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			got := <-held
			if ok := got == "app /slow from "+nstest.PodIP; ok != tc.answered {
				t.Errorf("the held request got %q: answered %v, want %v", got, ok, tc.answered)
			}
			if took > tc.revertedBy {
				t.Errorf("Revert took %v, want under %v", took, tc.revertedBy)
			}
		})
	}
}
