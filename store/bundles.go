package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// PutBundle stores a bundle's canonical zip under its content hash for
// tenant owner, unless that tenant has it already (content addressed: one
// copy per distinct bundle). It reports whether it wrote one. The store
// does not look inside: package bundle checks a bundle before it gets here.
func (s *Store) PutBundle(ctx context.Context, owner, hash string, zip []byte) (bool, error) {
	if err := checkOwner(owner); err != nil {
		return false, fmt.Errorf("store: put bundle %s: %w", hash, err)
	}
	if hash == "" || len(zip) == 0 {
		return false, fmt.Errorf("store: put bundle %q: empty hash or bundle", hash)
	}
	ok, err := s.rdb.SetNX(ctx, s.keys.bundle(owner, hash), zip, 0).Result()
	if err != nil {
		return false, fmt.Errorf("store: put bundle %s: %w", hash, err)
	}
	return ok, nil
}

// GetBundle reads tenant owner's bundle hash; ErrNotFound if that tenant
// has none under this hash (another tenant's never counts).
func (s *Store) GetBundle(ctx context.Context, owner, hash string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.keys.bundle(owner, hash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("store: get bundle %s: %w", hash, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get bundle %s: %w", hash, err)
	}
	return b, nil
}
