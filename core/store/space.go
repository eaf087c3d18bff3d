package store

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Space is how much room etcd has, as the member this Store talks to
// reports it.
type Space struct {
	// Size is the database file's size: what the quota counts. It only
	// shrinks by defragmentation; after a compaction the freed pages stay
	// in the file and are reused.
	Size int64
	// InUse is the part of Size holding data; Size-InUse is what a
	// defragmentation would give back.
	InUse int64
	// Quota is the member's quota-backend-bytes.
	Quota int64
	// Revision is the store's current revision.
	Revision int64
	// NoSpace says the NOSPACE alarm is raised (on any member): writes
	// fail with ErrNoSpace until it is disarmed.
	NoSpace bool
}

// pressed says more than half the quota is in use: retention then runs
// every pressedEvery, and compaction keeps a tenth of its revisions.
func (sp Space) pressed() bool { return sp.Quota > 0 && sp.InUse >= sp.Quota/2 }

// Space reads the member's database size and quota and the cluster's
// alarms. With several endpoints it asks the first one.
func (s *Store) Space(ctx context.Context) (Space, error) {
	ep := ""
	if eps := s.cli.Endpoints(); len(eps) > 0 {
		ep = eps[0]
	}
	st, err := s.cli.Status(ctx, ep)
	if err != nil {
		return Space{}, etcdErr("status", err)
	}
	al, err := s.cli.AlarmList(ctx)
	if err != nil {
		return Space{}, etcdErr("alarms", err)
	}
	sp := Space{Size: st.DbSize, InUse: st.DbSizeInUse, Quota: st.DbSizeQuota, Revision: st.Header.Revision}
	for _, a := range al.Alarms {
		if a.Alarm == pb.AlarmType_NOSPACE {
			sp.NoSpace = true
		}
	}
	return sp, nil
}

// Compact discards every revision before rev, the whole store's (etcd
// compacts a cluster, not a prefix), and returns when the member has
// also freed their pages, so a Space read right after shows it. A rev at
// or below the last compaction is no error. Watches behind rev end with
// ErrCompacted. Compaction works while the NOSPACE alarm is raised.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	if _, err := s.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return etcdErr("compact", err)
	}
	return nil
}

// DisarmNoSpace disarms every member's NOSPACE alarm, so that writes are
// accepted again. Only call it once space was reclaimed: etcd raises the
// alarm again on the next write that does not fit.
func (s *Store) DisarmNoSpace(ctx context.Context) error {
	al, err := s.cli.AlarmList(ctx)
	if err != nil {
		return etcdErr("alarms", err)
	}
	for _, a := range al.Alarms {
		if a.Alarm != pb.AlarmType_NOSPACE {
			continue
		}
		if _, err := s.cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: a.MemberID, Alarm: a.Alarm}); err != nil {
			return etcdErr("disarm NOSPACE", err)
		}
	}
	return nil
}
