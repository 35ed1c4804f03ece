package journal

import (
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// haltState is the kill switch as stored in the meta bucket.
type haltState struct {
	Halted bool      `json:"halted"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// decodeHalt decodes the stored kill switch; none stored means not halted.
func decodeHalt(v []byte) (haltState, error) {
	var h haltState
	if v == nil {
		return h, nil
	}
	if err := json.Unmarshal(v, &h); err != nil {
		return haltState{}, corrupt("halt state: %v", err)
	}
	return h, nil
}

// SetHalted sets the persisted kill switch: while it is set, nothing fires, and it stays
// set across restarts until it is cleared. reason and at say who set or cleared it and
// when; they are kept on resume too, so `journal stats` can tell when chaos came back.
// The write is fsynced before SetHalted returns.
func (j *Journal) SetHalted(halted bool, reason string, at time.Time) error {
	v, err := json.Marshal(haltState{Halted: halted, Reason: reason, At: at})
	if err != nil {
		return fmt.Errorf("set halt: %w", err)
	}
	err = j.update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyHalt, v)
	})
	if err != nil {
		return fmt.Errorf("set halt: %w", err)
	}
	return nil
}

// Halted reads the persisted kill switch, with the reason and time it was last set or
// cleared. A journal where it was never set is not halted.
func (j *Journal) Halted() (halted bool, reason string, at time.Time, err error) {
	var h haltState
	err = j.view(func(tx *bbolt.Tx) error {
		var err error
		h, err = decodeHalt(tx.Bucket(bucketMeta).Get(keyHalt))
		return err
	})
	if err != nil {
		return false, "", time.Time{}, fmt.Errorf("read halt: %w", err)
	}
	return h.Halted, h.Reason, h.At, nil
}
