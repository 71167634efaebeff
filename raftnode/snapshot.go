package raftnode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotsRetained is how many snapshots the store keeps on disk.
const snapshotsRetained = 2

var (
	_ raft.SnapshotStore = (*privateSnapshotStore)(nil)
	_ raft.SnapshotSink  = (*privateSnapshotSink)(nil)
)

// privateSnapshotStore wraps raft's FileSnapshotStore, which creates its
// directories 0755 and its files 0644, so that every snapshot directory is
// 0700 and every file in it 0600. Permissions are tightened right after
// Create returns, before any state is written, and again after the snapshot
// is moved into place. Between raft's Create and the chmod there is a short
// window in which the new "<id>.tmp" directory is 0755 and holds meta.json
// (the cluster configuration, no secrets) and an empty state.bin at 0644;
// nobody else can reach them, since the enclosing snapshots/ and raft
// directories are 0700 from the start.
type privateSnapshotStore struct {
	*raft.FileSnapshotStore
	dir string // the "snapshots" directory holding one directory per snapshot
}

// newPrivateSnapshotStore opens the snapshot store under base/snapshots,
// creating that directory 0700 first and tightening any snapshot already in
// it.
func newPrivateSnapshotStore(base string, logger hclog.Logger) (*privateSnapshotStore, error) {
	dir := filepath.Join(base, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod snapshot dir: %w", err)
	}
	fss, err := raft.NewFileSnapshotStoreWithLogger(base, snapshotsRetained, logger)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read snapshot dir: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := tightenDir(filepath.Join(dir, e.Name())); err != nil {
				return nil, err
			}
		}
	}
	return &privateSnapshotStore{FileSnapshotStore: fss, dir: dir}, nil
}

// Create starts a new snapshot whose directory and files are private.
func (s *privateSnapshotStore) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport,
) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	// FileSnapshotStore writes into <id>.tmp and renames it to <id> on Close.
	if err := tightenDir(filepath.Join(s.dir, sink.ID()+".tmp")); err != nil {
		_ = sink.Cancel()
		return nil, err
	}
	return &privateSnapshotSink{SnapshotSink: sink, final: filepath.Join(s.dir, sink.ID())}, nil
}

// privateSnapshotSink re-tightens the snapshot directory once it is in place.
type privateSnapshotSink struct {
	raft.SnapshotSink
	final string
}

// Close finalizes the snapshot and makes sure its files are 0600.
func (s *privateSnapshotSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	if err := tightenDir(s.final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// tightenDir sets dir to 0700 and the regular files directly in it to 0600.
func tightenDir(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod snapshot: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := os.Chmod(filepath.Join(dir, e.Name()), 0o600); err != nil {
				return fmt.Errorf("chmod snapshot file: %w", err)
			}
		}
	}
	return nil
}
