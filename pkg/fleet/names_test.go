package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/chaoscron/chaoscron/pkg/config"
)

func TestDefaultGroup(t *testing.T) {
	for _, tc := range []struct {
		pod  Pod
		want string
	}{
		{Pod{Name: "web-7d4b9c8f6d-x2x9z"}, "web"},
		{Pod{Name: "checkout-api-5f6c7b9d8-abcde"}, "checkout-api"},
		{Pod{Name: "db-2"}, "db"},
		{Pod{Name: "standalone"}, "standalone"},
		{Pod{Name: "web-7d4b9c8f6d-x2x9z", Labels: map[string]string{"app": "shop"}}, "shop"},
		{Pod{Name: "x", Labels: map[string]string{"app": "shop", "app.kubernetes.io/name": "store"}}, "store"},
	} {
		if got := defaultGroup(tc.pod); got != tc.want {
			t.Errorf("defaultGroup(%+v) = %q, want %q", tc.pod, got, tc.want)
		}
	}
}

func TestParseLabels(t *testing.T) {
	got := parseLabels("app=\"web\"\npod-template-hash=\"7d4b9c8f6d\"\nnote=\"a \\\"quoted\\\" = value\"\n\nbroken\n")
	want := map[string]string{"app": "web", "pod-template-hash": "7d4b9c8f6d", "note": `a "quoted" = value`}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestNames(t *testing.T) {
	if got := memberName("Shop_API", "web-1"); got != "chaoscron-shop-api-web-1" {
		t.Errorf("memberName = %q", got)
	}
	if got := slotsName(strings.Repeat("g", 300)); len(got) > 253 {
		t.Errorf("slotsName is %d long", len(got))
	}
}

// TestResolve: the group from the labels file, the namespace from the downward API, and a
// group that is no label value refused with the key.
func TestResolve(t *testing.T) {
	dir := t.TempDir()
	lf := filepath.Join(dir, "labels")
	os.WriteFile(lf, []byte(`app.kubernetes.io/name="checkout"`+"\n"), 0o644)
	t.Setenv("POD_NAME", "checkout-5f6c7b9d8-abcde")
	t.Setenv("POD_NAMESPACE", "shop")
	t.Setenv("POD_UID", "1234")
	fc, pod, err := Resolve(config.Fleet{LabelsFile: lf}, "from-kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	if fc.Group != "checkout" || fc.Namespace != "shop" || pod.Name != "checkout-5f6c7b9d8-abcde" || pod.UID != "1234" || pod.Labels["app.kubernetes.io/name"] != "checkout" {
		t.Errorf("got %+v %+v", fc, pod)
	}
	t.Setenv("POD_NAMESPACE", "")
	fc, _, _ = Resolve(config.Fleet{}, "from-kubeconfig")
	if fc.Namespace != "from-kubeconfig" || fc.Group != "checkout" {
		t.Errorf("got %+v", fc)
	}
	if _, _, err := Resolve(config.Fleet{Group: "no/slashes"}, ""); err == nil || !strings.Contains(err.Error(), `fleet.group "no/slashes": expected a label value`) {
		t.Errorf("err = %v", err)
	}
}

// TestHolders: expired entries are not counted; a damaged annotation is an error, never
// more room.
func TestHolders(t *testing.T) {
	now := time.Now()
	l := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	setHolders(l, map[string]time.Time{"a/1": now.Add(time.Minute), "b/2": now.Add(-time.Second)})
	hs, err := holders(l)
	if err != nil {
		t.Fatal(err)
	}
	if hs = live(hs, now); len(hs) != 1 || hs["a/1"].IsZero() {
		t.Errorf("live = %v", hs)
	}
	l.Annotations[AnnHolders] = "{not json"
	if _, err := holders(l); err == nil || !strings.Contains(err.Error(), "lease s: annotation chaoscron.io/holders is not a JSON map") {
		t.Errorf("err = %v", err)
	}
}
