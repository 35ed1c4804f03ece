package journal

import "testing"

func TestPrivateGroup(t *testing.T) {
	const passwd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
ann:x:1000:1000:Ann:/home/ann:/bin/bash
bob:x:1001:1001:Bob:/home/bob:/bin/bash
carl:x:1002:100:Carl:/home/carl:/bin/bash
dana:x:1003:100:Dana:/home/dana:/bin/bash
broken line
`
	const group = `root:x:0:
users:x:100:
ann:x:1000:
bob:x:1001:ann
eve:x:1004:eve
`
	for _, tc := range []struct {
		name     string
		uid, gid uint32
		want     bool
	}{
		{"ann's own group, no members", 1000, 1000, true},
		{"root's own group", 0, 0, true},
		{"bob's group lists ann as a member", 1001, 1001, false},
		{"users: primary group of carl and dana", 1002, 100, false},
		{"not the owner's primary group", 1000, 100, false},
		{"owner unknown to /etc/passwd (NSS)", 4242, 4242, false},
		{"group unknown to /etc/group", 1, 1, false},
		{"a group named after a user that is not hers", 1000, 1004, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := privateGroup(tc.uid, tc.gid, []byte(passwd), []byte(group)); got != tc.want {
				t.Errorf("privateGroup(%d, %d) = %v, want %v", tc.uid, tc.gid, got, tc.want)
			}
		})
	}
}
