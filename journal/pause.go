package journal

import (
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// keyPaused holds the paused experiments in the meta bucket, beside the halt switch.
var keyPaused = []byte("paused")

// Pause says why and since when an experiment is paused.
type Pause struct {
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// decodePaused decodes the stored pause flags; none stored means none paused.
func decodePaused(v []byte) (map[string]Pause, error) {
	m := map[string]Pause{}
	if v == nil {
		return m, nil
	}
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, corrupt("pause flags: %v", err)
	}
	return m, nil
}

// SetPaused persists experiment name's pause flag: a paused experiment's scheduled fires
// are skipped, also after a restart, until it is resumed. The write is fsynced before
// SetPaused returns. Resuming one that is not paused changes nothing.
func (j *Journal) SetPaused(name string, paused bool, reason string, at time.Time) error {
	err := j.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		m, err := decodePaused(meta.Get(keyPaused))
		if err != nil {
			return err
		}
		if paused {
			m[name] = Pause{Reason: reason, At: at}
		} else if _, ok := m[name]; ok {
			delete(m, name)
		} else {
			return nil
		}
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return meta.Put(keyPaused, v)
	})
	if err != nil {
		return fmt.Errorf("set paused %s: %w", name, err)
	}
	return nil
}

// Paused reads the persisted pause flags, by experiment name.
func (j *Journal) Paused() (map[string]Pause, error) {
	var m map[string]Pause
	err := j.view(func(tx *bbolt.Tx) error {
		var err error
		m, err = decodePaused(tx.Bucket(bucketMeta).Get(keyPaused))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read pause flags: %w", err)
	}
	return m, nil
}
