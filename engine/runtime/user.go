package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/user"
)

// maxIDFile bounds how much of /etc/passwd or /etc/group is read from an
// image: a hostile image must not make berth read a huge file.
const maxIDFile = 16 << 20

// ResolveUser resolves a Docker user spec ("", "name", "uid", "uid:gid",
// "name:group", "uid:group", ...) and group_add entries (names or numbers)
// against the rootfs's /etc/passwd and /etc/group.
//
// The files are opened inside rootfs: symlinks are resolved as if rootfs
// were /, so an image cannot make berth read a host file. A numeric uid
// missing from /etc/passwd is accepted (gid 0, home /), a missing name is
// an error, as in Docker. Supplementary groups are those /etc/group lists
// the user in (none when the spec names a group, as in Docker), then groupAdd.
func ResolveUser(rootfs, userSpec string, groupAdd []string) (User, error) {
	passwd, err := readInRoot(rootfs, "/etc/passwd")
	if err != nil {
		return User{}, err
	}
	group, err := readInRoot(rootfs, "/etc/group")
	if err != nil {
		return User{}, err
	}
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	spec := strings.TrimSpace(userSpec)
	eu, err := user.GetExecUser(spec, defaults, bytes.NewReader(passwd), bytes.NewReader(group))
	if err != nil {
		return User{}, fmt.Errorf("unable to find user %q: %w", userSpec, err)
	}
	u := User{UID: eu.Uid, GID: eu.Gid, Home: eu.Home}
	u.AdditionalGIDs = append(u.AdditionalGIDs, eu.Sgids...)
	if len(groupAdd) > 0 {
		gids, err := user.GetAdditionalGroups(groupAdd, bytes.NewReader(group))
		if err != nil {
			return User{}, fmt.Errorf("group_add: %w", err)
		}
		for _, g := range gids {
			if !slices.Contains(u.AdditionalGIDs, g) {
				u.AdditionalGIDs = append(u.AdditionalGIDs, g)
			}
		}
	}
	return u, nil
}

// readInRoot reads a regular file of rootfs with path resolution confined
// to rootfs. A missing file reads as empty.
func readInRoot(rootfs, path string) ([]byte, error) {
	f, err := pathrs.OpenInRoot(rootfs, path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open %s in %s: %w", path, rootfs, err)
	}
	defer f.Close()
	// OpenInRoot returns an O_PATH handle; reopen it for reading, refusing
	// anything but a regular file (a FIFO would block, a device is hostile).
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s in %s is not a regular file", path, rootfs)
	}
	rf, err := pathrs.Reopen(f, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", path, rootfs, err)
	}
	defer rf.Close()
	return io.ReadAll(io.LimitReader(rf, maxIDFile))
}
