package store

import (
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// ErrNoSpace means etcd refused a write because its database reached the
// backend quota (quota-backend-bytes) and it raised its NOSPACE alarm.
// Every write that adds data fails until space is reclaimed (compaction,
// then defragmentation) and the alarm is disarmed; reads and deletes
// still work. Nothing was written. On an embedded member the Maintainer
// reclaims space and disarms the alarm; on a cluster the operator does.
// The API answers 503.
var ErrNoSpace = errors.New("store full: etcd's space quota is used up and it refuses writes until space is reclaimed; retry later")

// etcdErr wraps err, returned by an etcd call while doing what, so that
// it names what failed and unwraps both to etcd's error and, when etcd
// was out of space, to ErrNoSpace.
func etcdErr(what string, err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("store: %s: %w: %w", what, ErrNoSpace, err)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// isNoSpace reports whether err is etcd's "database space exceeded",
// whether it came back as a gRPC status (a remote client) or already
// translated (the in-process client).
func isNoSpace(err error) bool {
	return errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace)
}
