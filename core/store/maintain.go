package store

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Maintainer defaults, used where a MaintainerConfig field is zero.
const (
	DefaultRetainEvery = time.Minute
	DefaultCheckEvery  = time.Second
)

// pressedEvery is how often retention runs while more than half the quota
// is in use.
const pressedEvery = 5 * time.Second

// Defragmenter shrinks a member's database file to the space in use. An
// embedded member (*embedded.Member) is one; a cluster's members are the
// operator's to defragment.
type Defragmenter interface {
	Defragment(ctx context.Context) error
}

// MaintainerConfig says what a Maintainer does.
type MaintainerConfig struct {
	// Retention is applied by PruneHistory every RetainEvery (default a
	// minute); sooner when the space in use grew by an eighth of the
	// quota since the last pass; every 5s while more than half the quota
	// is in use; and at once when etcd is out of space.
	Retention   Retention
	RetainEvery time.Duration
	// CompactRevisions, if positive, has the Maintainer compact the store
	// to keep that many revisions (a tenth of them while more than half
	// the quota is in use), checked every CheckEvery (default a second);
	// it compacts once a tenth of that many revisions more have been
	// written, so an idle store is left alone. Zero leaves
	// compaction to etcd's own configuration (a cluster's operator).
	CompactRevisions int64
	CheckEvery       time.Duration
	// Defragmenter, if set, is used when defragmenting pays: the file
	// has grown to three quarters of the quota and a quarter of the quota
	// in it is free pages; or the NOSPACE alarm is raised and
	// defragmenting would bring the file below DisarmBelow, or the
	// round's compaction advanced (see defrag). Below that
	// the free pages are simply reused (etcd's quota counts the file, so
	// only a file near the quota needs shrinking), and a defragmentation
	// blocks the member's reads and writes for as long as it copies the
	// data in use (see RATIONALE.md). nil: never.
	Defragmenter Defragmenter
	// DisarmNoSpace lets the Maintainer disarm etcd's NOSPACE alarm once
	// it has reclaimed space and the database is below DisarmBelow of the
	// quota (default 3/4). Set it for an embedded member, whose only
	// writer is this node; leave it unset for a cluster, whose operator
	// disarms after reclaiming space on every member.
	DisarmNoSpace bool
	DisarmBelow   float64
	Logger        *slog.Logger
}

// Maintainer keeps the store within bounds while a node runs: history
// retention, compaction, defragmentation, and recovery from etcd's NOSPACE
// alarm. Run it on every node: its removals are guarded (see
// PruneHistory) and compacting to a revision already compacted is no
// error, so several Maintainers on one cluster do no harm; defragmenting
// and disarming are for the member's own node only.
type Maintainer struct {
	s   *Store
	cfg MaintainerConfig
	log *slog.Logger

	round      sync.Mutex // serializes Round; guards the fields below
	lastPass   time.Time  // last retention pass
	inUseLow   int64      // the least space in use seen since
	complained time.Time  // last "still full" log line

	mu      sync.Mutex
	alarmed bool // NOSPACE seen and not yet disarmed by us
	stats   MaintenanceStats
}

// MaintenanceStats is what a Maintainer did so far.
type MaintenanceStats struct {
	Passes        int    // retention passes
	Pruned        Pruned // summed over passes
	Compactions   int
	CompactedTo   int64 // the last revision compacted to
	Defrags       int
	DefragTime    time.Duration // summed: how long the member was blocked
	Reclaimed     int64         // bytes defragmentation gave back
	NoSpaceAlarms int           // times the alarm was seen raised
	Disarms       int
	LastSpace     Space
}

// NewMaintainer returns a Maintainer for s; Run starts it.
func NewMaintainer(s *Store, cfg MaintainerConfig) *Maintainer {
	if cfg.RetainEvery <= 0 {
		cfg.RetainEvery = DefaultRetainEvery
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = DefaultCheckEvery
	}
	if cfg.DisarmBelow <= 0 || cfg.DisarmBelow >= 1 {
		cfg.DisarmBelow = 0.75
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Maintainer{s: s, cfg: cfg, log: l}
}

// Stats returns what the Maintainer did so far. Safe to call while it
// runs.
func (m *Maintainer) Stats() MaintenanceStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Run maintains the store until ctx ends, then returns: it indexes the
// deletions a former Lucid did not index (IndexDeletions), then does a
// Round every CheckEvery. Failures are logged and retried on the next
// round; none stops it.
func (m *Maintainer) Run(ctx context.Context) {
	if n, err := m.s.IndexDeletions(ctx); err != nil {
		if ctx.Err() == nil {
			m.log.Error("store maintenance: index deletions", "err", err)
		}
	} else if n > 0 {
		m.log.Info("store maintenance: indexed deleted instances for retention", "instances", n)
	}
	tick := time.NewTicker(m.cfg.CheckEvery)
	defer tick.Stop()
	for {
		m.Round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Round is one round of maintenance: read the space; if etcd is out of
// space, reclaim it and disarm the alarm (see MaintainerConfig); else
// compact if due, run the retention pass if due (the first round always
// does), and defragment if it pays. A node runs one Round before it
// registers, so that it can start on a store that filled up. Rounds are
// serialized.
func (m *Maintainer) Round(ctx context.Context) {
	m.round.Lock()
	defer m.round.Unlock()
	sp, err := m.s.Space(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Error("store maintenance: read space", "err", err)
		}
		return
	}
	m.setSpace(sp)
	if sp.NoSpace {
		m.recover(ctx, sp)
		m.inUseLow = m.Stats().LastSpace.InUse
		return
	}
	m.mu.Lock()
	m.alarmed = false // (a cluster's operator may have disarmed it)
	m.mu.Unlock()
	if m.compact(ctx, sp) {
		if sp, err = m.s.Space(ctx); err != nil {
			return
		}
	}
	// Retention is due every RetainEvery, and sooner when history grows
	// fast: once the space in use grew by an eighth of the quota over
	// its low since the last pass (what a pass removes is freed only
	// when compaction passes it, a little later), or while more than
	// half the quota is in use, every pressedEvery.
	m.inUseLow = min(m.inUseLow, sp.InUse)
	since := time.Since(m.lastPass)
	grown := sp.Quota > 0 && sp.InUse-m.inUseLow >= sp.Quota/8
	pressed := sp.pressed() && since >= pressedEvery
	if m.lastPass.IsZero() || grown || pressed || since >= m.cfg.RetainEvery {
		sp = m.prune(ctx)
		m.inUseLow, m.lastPass = sp.InUse, time.Now()
	}
	m.defrag(ctx, sp, false, false)
}

// prune runs one retention pass and returns the space after it.
func (m *Maintainer) prune(ctx context.Context) Space {
	t0 := time.Now()
	p, err := m.s.PruneHistory(ctx, m.cfg.Retention, time.Now())
	if err != nil && ctx.Err() == nil {
		m.log.Error("store maintenance: history retention", "err", err)
	}
	m.mu.Lock()
	m.stats.Passes++
	m.stats.Pruned.Trimmed += p.Trimmed
	m.stats.Pruned.Records += p.Records
	m.stats.Pruned.Deleted += p.Deleted
	m.stats.Pruned.DeletedRecords += p.DeletedRecords
	m.mu.Unlock()
	if p.Records > 0 || p.Deleted > 0 {
		m.log.Info("store maintenance: history retention removed records", "instances", p.Trimmed, "records", p.Records,
			"deleted_instances", p.Deleted, "deleted_records", p.DeletedRecords, "took", time.Since(t0).Round(time.Millisecond))
	}
	sp, err := m.s.Space(ctx)
	if err != nil {
		return m.Stats().LastSpace
	}
	m.setSpace(sp)
	return sp
}

// compact compacts to CompactRevisions behind the current revision, if
// that moves the compacted revision forward; while more than half the
// quota is in use, to a tenth of that behind. A revision is not a fixed
// amount of data: the commits that queue behind one in flight land
// together at one revision (group.go), six to a revision under the
// bench's load, so 10,000 revisions can hold 60 MB of superseded values
// where they held 12; under pressure the space goes first, and a watcher
// that falls further behind re-lists.
func (m *Maintainer) compact(ctx context.Context, sp Space) bool {
	if m.cfg.CompactRevisions <= 0 {
		return false
	}
	keep := m.cfg.CompactRevisions
	if sp.pressed() {
		keep = max(keep/10, 1)
	}
	rev := sp.Revision - keep
	m.mu.Lock()
	done := m.stats.CompactedTo
	m.mu.Unlock()
	if rev-done < max(m.cfg.CompactRevisions/10, 1) {
		return false
	}
	return m.compactTo(ctx, rev)
}

// compactTo compacts to rev unless it already did.
func (m *Maintainer) compactTo(ctx context.Context, rev int64) bool {
	m.mu.Lock()
	done := m.stats.CompactedTo
	m.mu.Unlock()
	if rev <= done {
		return false
	}
	if err := m.s.Compact(ctx, rev); err != nil {
		if ctx.Err() == nil {
			m.log.Error("store maintenance: compact", "revision", rev, "err", err)
		}
		return false
	}
	m.mu.Lock()
	m.stats.Compactions++
	m.stats.CompactedTo = rev
	m.mu.Unlock()
	return true
}

// defrag defragments sp's member when it pays (see
// MaintainerConfig.Defragmenter); if urgent (NOSPACE), when it would bring
// the file below the disarm threshold, or when compacted (this round's
// compaction freed pages that sp may not count as free yet).
//
// etcd reports the space in use as of its backend's last commit, and
// bbolt counts a freed page as free only once no reader holds it, at a
// later commit. Under NOSPACE nothing writes, so nothing commits: a
// figure taken right after the compaction can stay too high for good,
// and the store would stay full though a defragmentation (which keeps
// only the data in use) would empty it. That happened on a busy machine
// (2 MiB quota: 1.8 MiB "in use" after every history record but two was
// removed). A round defragments at most once for each compaction, and a
// full store refuses writes anyway.
func (m *Maintainer) defrag(ctx context.Context, sp Space, urgent, compacted bool) {
	if m.cfg.Defragmenter == nil || sp.Quota <= 0 {
		return
	}
	free := sp.Size - sp.InUse
	pays := sp.Size >= sp.Quota/4*3 && free >= sp.Quota/4
	if urgent {
		pays = compacted || free > 0 && float64(sp.InUse) < m.cfg.DisarmBelow*float64(sp.Quota)
	}
	if !pays {
		return
	}
	t0 := time.Now()
	if err := m.cfg.Defragmenter.Defragment(ctx); err != nil {
		if ctx.Err() == nil {
			m.log.Error("store maintenance: defragment", "err", err)
		}
		return
	}
	took := time.Since(t0)
	after, err := m.s.Space(ctx)
	if err != nil {
		after = sp
	}
	m.mu.Lock()
	m.stats.Defrags++
	m.stats.DefragTime += took
	m.stats.Reclaimed += max(sp.Size-after.Size, 0)
	m.stats.LastSpace = after
	m.mu.Unlock()
	m.log.Info("store maintenance: defragmented", "size_before_mib", mib(sp.Size), "size_mib", mib(after.Size),
		"in_use_mib", mib(after.InUse), "quota_mib", mib(after.Quota), "blocked", took.Round(time.Millisecond))
}

// recover wins space back after etcd raised NOSPACE: retention (deletes
// still work; at once, then every pressedEvery), compaction,
// defragmentation; then, if allowed and the database is back below
// DisarmBelow of the quota, it disarms the alarm. While it cannot, it says
// so once a minute.
func (m *Maintainer) recover(ctx context.Context, sp Space) {
	m.mu.Lock()
	raised := !m.alarmed
	m.alarmed = true
	if raised {
		m.stats.NoSpaceAlarms++
	}
	m.mu.Unlock()
	if raised {
		m.log.Error("store full: etcd raised its NOSPACE alarm and refuses writes; reclaiming space",
			"size_mib", mib(sp.Size), "in_use_mib", mib(sp.InUse), "quota_mib", mib(sp.Quota))
	}
	if raised || time.Since(m.lastPass) >= pressedEvery {
		m.prune(ctx)
		m.lastPass = time.Now()
	}
	compacted := false
	if now, err := m.s.Space(ctx); err == nil && m.cfg.CompactRevisions > 0 {
		// Compact to the current revision, not CompactRevisions behind
		// it: a record is freed only once the compaction passes its
		// deletion. Watchers re-list; that is the price of writing again.
		compacted = m.compactTo(ctx, now.Revision)
	}
	if now, err := m.s.Space(ctx); err == nil {
		m.defrag(ctx, now, true, compacted)
	}
	after, err := m.s.Space(ctx)
	if err != nil {
		return
	}
	m.setSpace(after)
	complain := raised || time.Since(m.complained) >= time.Minute
	if !m.cfg.DisarmNoSpace {
		if complain {
			m.complained = time.Now()
			m.log.Error("store full: the NOSPACE alarm stays raised until the operator reclaims space on every member and disarms it (etcdctl alarm disarm)",
				"size_mib", mib(after.Size), "in_use_mib", mib(after.InUse), "quota_mib", mib(after.Quota))
		}
		return
	}
	if float64(after.Size) >= m.cfg.DisarmBelow*float64(after.Quota) {
		if complain {
			m.complained = time.Now()
			m.log.Error("store full: reclaimed too little to accept writes again; lower the history limits or raise quota_mib",
				"size_mib", mib(after.Size), "in_use_mib", mib(after.InUse), "quota_mib", mib(after.Quota))
		}
		return
	}
	if err := m.s.DisarmNoSpace(ctx); err != nil {
		m.log.Error("store maintenance: disarm NOSPACE", "err", err)
		return
	}
	m.mu.Lock()
	m.stats.Disarms++
	m.alarmed = false
	m.mu.Unlock()
	m.log.Warn("store writable again: space reclaimed and the NOSPACE alarm disarmed",
		"size_mib", mib(after.Size), "in_use_mib", mib(after.InUse), "quota_mib", mib(after.Quota))
}

func (m *Maintainer) setSpace(sp Space) {
	m.mu.Lock()
	m.stats.LastSpace = sp
	m.mu.Unlock()
}

func mib(b int64) float64 { return float64(b*10/(1<<20)) / 10 }
