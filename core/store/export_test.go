package store

import "context"

// PutRaw writes value at key (relative to the prefix) behind Lucid's back,
// so tests can plant what Lucid itself never writes: garbage, old schemas.
func (s *Store) PutRaw(ctx context.Context, key, value string) error {
	_, err := s.cli.Put(ctx, s.key(key), value)
	return err
}
