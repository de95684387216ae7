package keys

// Autolock wraps the key file with an unlock key the user keeps, so that a
// copy of the state directory, or the node restarted, cannot read the Raft
// data until someone gives the unlock key. Each method rewrites the key file
// before it returns; the data keys themselves do not change, so nothing
// already on disk is re-encrypted.

// Autolocked reports whether the key file is wrapped with an unlock key.
func (k *Keys) Autolocked() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.wrap != nil
}

// EnableAutolock draws a new unlock key and wraps the key file with it. The
// caller must show the key to the user once: without it a restarted node
// cannot read its data. It fails with ErrAutolocked if autolock is on
// already (the user's key stays valid; RotateUnlockKey replaces it).
func (k *Keys) EnableAutolock() (*UnlockKey, error) {
	u := NewUnlockKey()
	if err := k.setUnlockKey(u, func(on bool) error {
		if on {
			return ErrAutolocked
		}
		return nil
	}); err != nil {
		u.Wipe()
		return nil, err
	}
	k.log.Info("autolock enabled")
	return u, nil
}

// RotateUnlockKey draws a new unlock key and rewraps the key file with it;
// the old unlock key no longer unlocks it. It fails with ErrNotAutolocked
// when autolock is off.
func (k *Keys) RotateUnlockKey() (*UnlockKey, error) {
	u := NewUnlockKey()
	if err := k.setUnlockKey(u, func(on bool) error {
		if !on {
			return ErrNotAutolocked
		}
		return nil
	}); err != nil {
		u.Wipe()
		return nil, err
	}
	k.log.Info("unlock key rotated")
	return u, nil
}

// SetUnlockKey wraps the key file with u, whether autolock was on or not:
// it is how a manager applies a cluster-wide unlock key that another
// manager drew (NewUnlockKey). Setting the key already in use rewrites
// nothing. The caller may Wipe u afterwards.
func (k *Keys) SetUnlockKey(u *UnlockKey) error {
	err := k.setUnlockKey(u, nil)
	if err == nil {
		k.log.Info("unlock key set")
	}
	return err
}

// DisableAutolock writes the key file unwrapped, so the node restarts
// without an unlock key. It does nothing when autolock is off.
func (k *Keys) DisableAutolock() error {
	if !k.Autolocked() {
		return nil
	}
	err := k.change(func(deks []dek, _ *wrapping) ([]dek, *wrapping, error) {
		return deks, nil, nil
	})
	if err == nil {
		k.log.Info("autolock disabled")
	}
	return err
}

// setUnlockKey wraps the key file with u after check (given whether
// autolock is on) allows it.
func (k *Keys) setUnlockKey(u *UnlockKey, check func(on bool) error) error {
	nw, err := deriveWrapping(u)
	if err != nil {
		return err
	}
	same := false
	err = k.change(func(deks []dek, w *wrapping) ([]dek, *wrapping, error) {
		if check != nil {
			if err := check(w != nil); err != nil {
				return nil, nil, err
			}
		}
		if w != nil && *w == *nw {
			same = true
			return nil, nil, errUnchanged
		}
		return deks, nw, nil
	})
	if err != nil || same {
		nw.wipe()
	}
	return err
}
