package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCleanupWithoutDataDir(t *testing.T) {
	removed, err := Cleanup(filepath.Join(t.TempDir(), "none"), nil)
	if err != nil || len(removed) != 0 {
		t.Fatalf("Cleanup of a missing data dir = %v, %v; want nothing, nil", removed, err)
	}
}

func TestCleanupRefusesADataDirInUse(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{cfg: Config{DataDir: dir}}
	if err := a.prepareDataDir(); err != nil {
		t.Fatal(err)
	}
	defer a.lock.Close()
	if _, err := Cleanup(dir, nil); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("Cleanup of a locked data dir: %v, want ErrDataDirInUse", err)
	}
}

// TestCleanupNothingRecorded: a node without a data plane records nothing;
// cleanup touches nothing (not even a link named like its --wg-interface)
// and is idempotent.
func TestCleanupNothingRecorded(t *testing.T) {
	dir := t.TempDir()
	if err := writeJSONFile(filepath.Join(dir, nodeFileName), &nodeFile{NodeID: "n1", WGInterface: "wg0", Dataplane: "none"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		removed, err := Cleanup(dir, nil)
		if err != nil || len(removed) != 0 {
			t.Fatalf("Cleanup = %v, %v; want nothing, nil", removed, err)
		}
	}
}

// TestClaimsRecord: the record is written 0600 before a claim, rewritten
// only on change, and removed.
func TestClaimsRecord(t *testing.T) {
	dir := t.TempDir()
	c := &claims{path: filepath.Join(dir, claimsFileName)}
	if err := c.update(func(r *claimRecord) { r.VIPInterface, r.WGInterface = "eth0", "wg0" }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("claims record mode %v, want 0600", fi.Mode().Perm())
	}
	before := fi.ModTime()
	if err := c.update(func(r *claimRecord) {}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(c.path); !fi.ModTime().Equal(before) {
		t.Errorf("an unchanged record was written again")
	}
	if err := c.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record still there after remove: %v", err)
	}
}
