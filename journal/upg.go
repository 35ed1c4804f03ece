package journal

import (
	"bytes"
	"os"
	"strconv"
)

// privateGroup reports whether gid is uid's user-private group: uid's primary group, the
// primary group of no other user, with no member but uid's own name. Write access for such a
// group grants nobody else anything, which is why Debian's sshd accepts it in StrictModes,
// and why a checkout made under umask 002 (Ubuntu's default for users) must not be refused.
// passwd and group are /etc/passwd and /etc/group. Users and groups known only to NSS
// (LDAP, sssd) are not in them: then the group is not known to be private, and is refused.
func privateGroup(uid, gid uint32, passwd, group []byte) bool {
	owner, primary, found := "", uint32(0), false
	for line := range bytes.Lines(passwd) {
		f := bytes.Split(bytes.TrimRight(line, "\n"), []byte(":"))
		if len(f) < 4 {
			continue
		}
		u, uerr := strconv.ParseUint(string(f[2]), 10, 32)
		g, gerr := strconv.ParseUint(string(f[3]), 10, 32)
		if uerr != nil || gerr != nil {
			continue
		}
		switch {
		case uint32(u) == uid:
			owner, primary, found = string(f[0]), uint32(g), true
		case uint32(g) == gid:
			return false // another user's primary group too
		}
	}
	if !found || primary != gid {
		return false
	}
	for line := range bytes.Lines(group) {
		f := bytes.Split(bytes.TrimRight(line, "\n"), []byte(":"))
		if len(f) < 4 {
			continue
		}
		if g, err := strconv.ParseUint(string(f[2]), 10, 32); err != nil || uint32(g) != gid {
			continue
		}
		for _, m := range bytes.Split(f[3], []byte(",")) {
			if m := string(bytes.TrimSpace(m)); m != "" && m != owner {
				return false
			}
		}
		return true
	}
	return false
}

// systemPrivateGroup is privateGroup on this system's /etc/passwd and /etc/group.
func systemPrivateGroup(uid, gid uint32) bool {
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return false
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		return false
	}
	return privateGroup(uid, gid, passwd, group)
}
